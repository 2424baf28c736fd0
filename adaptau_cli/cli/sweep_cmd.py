"""``adaptau sweep``: fixed-τ grid vs Adap-τ0 vs Adap-τ on one dataset, the paper's Figure 2 (issue #17)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adaptau_cli.base.errors import UserError
from adaptau_cli.cli.options import (
    ConfigOpt,
    JsonOpt,
    ModelFlags,
    QuietOpt,
    RuntimeFlags,
    TrainDataFlags,
    flag_groups,
    train_overrides,
)

DEFAULT_TAUS_TEXT = "0.04,0.08,0.12,0.16,0.2,0.3,0.5"
TausOpt = Annotated[str, typer.Option(
    "--taus", help="The fixed temperatures of the grid, comma-separated (each trained with --tau-mode fixed "
                   "--tau T); Adap-τ0 and Adap-τ are always trained too.")]
BaselineOpt = Annotated[bool, typer.Option(
    "--with-baseline", help="Also train the un-normalized model (--norm none --tau-mode none).")]
JobsOpt = Annotated[int, typer.Option(
    "--jobs", help="Trainings side by side, each its own `adaptau train` process. Each gets --threads T = the "
                   "CPUs this process may use divided by the number running at once (min(N, runs left)), at "
                   "least 1; --threads T gives every training T instead.")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Folder for sweep.md / .csv / .json, plots/sweep.png, and runs/, configs/, logs/ of each "
                  "training; rerun with the same --out to reuse finished runs and resume interrupted ones.",
    show_default=False)]


def parse_taus(text: str) -> tuple[float, ...]:
    """``--taus 0.04,0.08`` as floats in the given order (the workflow refuses τ <= 0 and duplicates)."""
    parts = [t.strip() for t in text.split(",")]
    try:
        taus = tuple(float(t) for t in parts if t)
    except ValueError:
        raise UserError(f"--taus expects positive numbers such as 0.04,0.08,0.16, got {text!r}") from None
    if not taus or len(taus) < len(parts):
        raise UserError(f"--taus expects positive numbers such as 0.04,0.08,0.16, got {text!r}")
    return taus


def refuse_temperature_flags(model: ModelFlags) -> None:
    """The sweep sets --tau-mode and --tau per run: given on the command line they would mean nothing."""
    given = [flag for flag, value in (("--tau-mode", model.tau_mode), ("--tau", model.tau)) if value is not None]
    if given:
        raise UserError(f"the sweep sets {' and '.join(given)} per run",
                        hint="give the grid with --taus; Adap-τ0 and Adap-τ are always trained")


@flag_groups
def sweep_cmd(*, data: TrainDataFlags, model: ModelFlags, runtime: RuntimeFlags, taus: TausOpt = DEFAULT_TAUS_TEXT,
              with_baseline: BaselineOpt = False, jobs: JobsOpt = 1, out: OutOpt = None, quiet: QuietOpt = False,
              as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """τ sensitivity: train a fixed-τ grid, Adap-τ0 and Adap-τ (each selected on validation); table and plot."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, build
    from adaptau_cli.workflows.sweep import SweepSettings, sweep

    if out is None:
        raise UserError("sweep needs --out FOLDER (for its table, plot and the runs it trains)")
    refuse_temperature_flags(model)
    settings = SweepSettings(taus=parse_taus(taus), with_baseline=with_baseline, jobs=jobs)
    data_cfg = build(PreprocessConfig, config, "dataset", data.overrides())
    train_cfg = build(TrainConfig, config, "train", train_overrides(model, runtime))
    result = sweep(data_cfg, train_cfg, settings, out, quiet=quiet)
    emit(result.to_dict(), as_json, None if quiet else render_sweep)


def render_sweep(p: dict[str, Any]) -> None:
    """The sweep's table on stderr: τ, validation and test metrics, relative test Recall@20."""
    from rich import box
    from rich.table import Table

    from adaptau_cli.base.console import err_console, plain
    from adaptau_cli.workflows.sweep import REL, fmt_value, tau_cell

    err_console.print(f"[bold]{plain(p['dataset']['name'])}[/]: R@20, N@20 = test Recall@20, NDCG@20; rel. = R@20 / "
                      f"the best fixed τ's ({plain(p['best_grid_point'] or 'none')}); val = validation",
                      highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("run", "τ", "val R@20", "R@20", "N@20", "rel.", "epochs", "wall s", "status"):
        table.add_column(col, justify="left" if col in ("run", "τ", "status") else "right", no_wrap=True)
    for row in p["runs"]:
        epochs = f"{row['best_epoch']}/{row['epochs_run']}" if row["epochs_run"] is not None else "n/a"
        table.add_row(plain(row["name"]), tau_cell(row, short=True), fmt_value(row["valid_recall@20"]),
                      fmt_value(row["test_recall@20"]), fmt_value(row["test_ndcg@20"]), fmt_value(row[REL], 3),
                      epochs, fmt_value(row["wall_seconds"], 1), row["status"])
    err_console.print(table)
    err_console.print(f"written: {plain(p['outputs']['md'])} (also .csv, .json), plot {plain(p['outputs']['plot'])}",
                      highlight=False, soft_wrap=True)


COMMANDS = {"sweep": sweep_cmd}
