"""``adaptau tune``: hyper-parameter search on Optuna, one run directory per trial (issue #17)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adaptau_cli.base.errors import UserError
from adaptau_cli.cli.options import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    ModelFlags,
    QuietOpt,
    ThreadsOpt,
    TrainDataFlags,
    flag_groups,
    train_overrides,
)

SpaceOpt = Annotated[Optional[list[str]], typer.Option(
    "--space", help="A range to search: NAME=LOW:HIGH, then :log and/or :int, e.g. lr=1e-4:1e-2:log, "
                    "dropout=0:0.3, warmup_epochs=1:100:int (any numeric train setting); repeat per setting. "
                    "Also [tune.space] in --config.", show_default=False, metavar="NAME=LOW:HIGH[:log][:int]")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Folder of the search: study.db, trials/<number>/, best.toml, trials.parquet, history.png, "
                  "importance.md|json.", show_default=False)]
TrialsOpt = Annotated[Optional[int], typer.Option(
    "--trials", help="Trials this process runs (added to the study; 0 = only rewrite the outputs).")]
TimeoutOpt = Annotated[Optional[float], typer.Option(
    "--timeout", help="Minutes this process starts new trials for (a trial under way finishes).")]
StudyOpt = Annotated[Optional[str], typer.Option("--study", help="Study name (default adaptau).")]
StorageOpt = Annotated[Optional[str], typer.Option(
    "--storage", help="Optuna RDB storage URL shared by several processes or machines, e.g. "
                      "postgresql://user:pass@host/db (default sqlite:///OUT/study.db).")]
SamplerOpt = Annotated[Optional[str], typer.Option("--sampler", help="tpe (default) | random.")]
SeedOpt = Annotated[Optional[int], typer.Option(
    "--seed", help="The sampler's seed (default 2023); give each concurrent process its own.")]
PrunerOpt = Annotated[Optional[str], typer.Option(
    "--pruner", help="Stop bad trials early on the validation metric: median (default) | halving | none.")]
PrunerStartupOpt = Annotated[Optional[int], typer.Option(
    "--pruner-startup", help="median: completed trials before any pruning (default 5).")]
PrunerWarmupOpt = Annotated[Optional[int], typer.Option(
    "--pruner-warmup", help="Epochs of every trial that are never pruned (default 0).")]
TrainSeedOpt = Annotated[Optional[int], typer.Option(
    "--train-seed", help="Every trial's training seed (default: the config's, else 2023).")]


@flag_groups
def tune_cmd(*, data: TrainDataFlags, model: ModelFlags, space: SpaceOpt = None, out: OutOpt = None,
             trials: TrialsOpt = None, timeout: TimeoutOpt = None, study: StudyOpt = None,
             storage: StorageOpt = None, sampler: SamplerOpt = None, seed: SeedOpt = None, pruner: PrunerOpt = None,
             pruner_startup: PrunerStartupOpt = None, pruner_warmup: PrunerWarmupOpt = None,
             train_seed: TrainSeedOpt = None, device: DeviceOpt = None, threads: ThreadsOpt = None,
             quiet: QuietOpt = False, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Search hyper-parameters with Optuna (TPE, pruning per epoch); every trial is a run in OUT/trials/."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, build
    from adaptau_cli.workflows.tune import require_optuna, tune, tune_settings

    require_optuna()                                  # the missing extra is said before anything else
    if out is None:
        raise UserError("tune needs --out FOLDER (for its study, trial runs and reports)")
    settings = tune_settings(config, {"trials": trials, "timeout": timeout, "study": study, "storage": storage,
                                      "sampler": sampler, "seed": seed, "pruner": pruner,
                                      "pruner_startup": pruner_startup, "pruner_warmup": pruner_warmup}, space or ())
    data_cfg = build(PreprocessConfig, config, "dataset", data.overrides())
    train_cfg = build(TrainConfig, config, "train", {**train_overrides(model), "seed": train_seed,
                                                     "device": device, "threads": threads})
    result = tune(settings, train_cfg, data_cfg, out, quiet=quiet)
    emit(result.to_dict(), as_json, None if quiet else render_tune)


def render_tune(p: dict[str, Any]) -> None:
    """The best trial, the study's counts and importances, and where the outputs are (stderr)."""
    from rich import box
    from rich.table import Table

    from adaptau_cli.base.console import err_console, plain

    counts = ", ".join(f"{v} {k}" for k, v in p["trials"].items() if k != "total")
    err_console.print(f"study [bold]{plain(p['study'])}[/] ({plain(p['storage'])}): {p['trials']['total']} trials "
                      f"({counts}); this process ran {p['ran']}", highlight=False, soft_wrap=True)
    best = p["best"]
    if best is None:
        err_console.print("no completed trial yet: no best.toml", highlight=False)
    else:
        table = Table(title=f"best: trial {best['number']}, valid {plain(p['monitor'])} {best['value']:.4f}",
                      title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("parameter")
        table.add_column("value", justify="right")
        table.add_column("importance", justify="right")
        imp = p["importance"]["importances"]
        for name, value in best["params"].items():
            table.add_row(plain(name), f"{value:.4g}" if isinstance(value, float) else str(value),
                          f"{imp[name]:.3f}" if name in imp else "")
        err_console.print(table)
    for note in p["notes"]:
        err_console.print(f"note: {plain(note)}", highlight=False, soft_wrap=True)
    err_console.print(f"written: {', '.join(plain(Path(f).name) for f in p['outputs'].values())} in "
                      f"{plain(p['out'])}; train the best with: adaptau train --config "
                      f"{plain(Path(p['out']) / 'best.toml')}", highlight=False, soft_wrap=True)


COMMANDS = {"tune": tune_cmd}
