"""The ``adaptau`` command line: parse options, call one engine function, render.

No math, file formats or training loops live here. Every command accepts
``--config FILE.toml`` (flags override the file), ``--json`` for machine output
on stdout and ``--quiet`` for scripts. User errors exit with code 2 and one
readable line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors click; older releases depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from adaptau_cli import __version__
from adaptau_cli.base.console import err_console
from adaptau_cli.base.errors import EXIT_INTERNAL, AdaptauError

_STATE = {"debug": False}


def _report(exc: BaseException) -> int:
    """Print one readable line for an error escaping a command; return the exit code."""
    if _STATE["debug"]:
        traceback.print_exc()
    if isinstance(exc, AdaptauError):
        err_console.print(f"[bold red]error:[/] {exc.one_line()}", highlight=False, soft_wrap=True)
        return exc.exit_code
    err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                      "(rerun with --debug for the traceback)", highlight=False, soft_wrap=True)
    return EXIT_INTERNAL


def _stdout_closed() -> int:
    """The reader of stdout left (``adaptau ... | head``): stop quietly, as Unix tools do.

    stdout is pointed at /dev/null so that Python's final flush does not raise again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. CliRunner)
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe


class _ErrorReportingGroup(TyperGroup):
    """Turns engine errors into one line + exit code inside click itself.

    Doing it here (not only in ``main``) means ``CliRunner().invoke(app, ...)``
    sees exactly what a user sees: exit code 2 for user errors, no traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click_exceptions.ClickException,
                KeyboardInterrupt):
            raise
        except BrokenPipeError:
            raise typer.Exit(_stdout_closed()) from None
        except Exception as exc:  # noqa: BLE001 - every other error gets one line
            raise typer.Exit(_report(exc)) from None


app = typer.Typer(
    name="adaptau",
    help="Train and evaluate normalized-embedding recommenders with an adaptive temperature (Adap-τ).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=_ErrorReportingGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adaptau {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Adap-τ: normalized embeddings with an adaptive temperature, from raw logs to honest metrics."""
    _STATE["debug"] = debug


# ---------------------------------------------------------------------------
# Options shared by every command that names a dataset (same as `preprocess`).
# ---------------------------------------------------------------------------
DatasetArg = Annotated[Optional[str], typer.Argument(
    help="Registry name (ml-100k, ml-1m, gowalla, yelp2018, amazon-book, synthetic); omit with --source.")]
SourceOpt = Annotated[Optional[Path], typer.Option("--source", help="Your own data: a file or a folder.")]
FormatOpt = Annotated[Optional[str], typer.Option(
    "--format", help="auto|lightgcn|csv|tsv|recbole|movielens|udata|parquet (default: auto-detect).")]
UserColOpt = Annotated[Optional[str], typer.Option("--user-col", help="User column (CSV/TSV/parquet).")]
ItemColOpt = Annotated[Optional[str], typer.Option("--item-col", help="Item column (CSV/TSV/parquet).")]
RatingColOpt = Annotated[Optional[str], typer.Option("--rating-col", help="Rating column, if any.")]
TimeColOpt = Annotated[Optional[str], typer.Option("--time-col", help="Timestamp column, if any.")]
TimeFormatOpt = Annotated[Optional[str], typer.Option(
    "--time-format", help="strftime format of date-string timestamps, e.g. '%d/%m/%Y %H:%M:%S' "
                          "(default: numbers or ISO dates; day/month order read off the values).")]
SepOpt = Annotated[Optional[str], typer.Option("--sep", help="Field separator (default: detected).")]
MinRatingOpt = Annotated[Optional[float], typer.Option(
    "--min-rating", help="Explicit -> implicit: keep interactions with rating >= this.")]
UserCoreOpt = Annotated[Optional[int], typer.Option("--user-core", help="Iterative k-core: min interactions per user.")]
ItemCoreOpt = Annotated[Optional[int], typer.Option("--item-core", help="Iterative k-core: min interactions per item.")]
SplitOpt = Annotated[Optional[str], typer.Option(
    "--split", help="auto|given|random|temporal-global|temporal-user|loo-last|loo-random, "
                    "or train,valid,test ratios such as 0.8,0.1,0.1 (random per user); "
                    "NAME:RATIOS sets both, e.g. temporal-user:0.8,0.1,0.1.")]
ValidRatioOpt = Annotated[Optional[float], typer.Option(
    "--valid-ratio", help="Carve a per-user validation set of this share out of a given train split.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
MirrorOpt = Annotated[Optional[Path], typer.Option(
    "--mirror", envvar="ADAPTAU_MIRROR", help="Local folder holding the registry's files (no internet).")]
HomeOpt = Annotated[Optional[Path], typer.Option(
    "--home", envvar="ADAPTAU_HOME", help="Dataset store root (default: the platform cache dir).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML settings file; flags override it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def preprocess_overrides(dataset, source, format, user_col, item_col, rating_col, time_col, sep,
                         min_rating, user_core, item_core, split, valid_ratio, seed, mirror, home,
                         time_format=None) -> dict:
    """The dataset flags as PreprocessConfig overrides (None = not given)."""
    ratios = None
    if split is not None and ":" in split:          # e.g. temporal-user:0.8,0.1,0.1
        split, ratios = split.split(":", 1)
    elif split is not None and any(ch.isdigit() for ch in split):
        ratios, split = split, "random"
    return dict(dataset=dataset, source=str(source) if source else None, format=format,
                user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col,
                time_format=time_format, sep=sep, min_rating=min_rating, user_core=user_core, item_core=item_core,
                split=split, ratios=ratios, valid_ratio=valid_ratio, seed=seed,
                mirror=str(mirror) if mirror else None, home=str(home) if home else None)


# ---------------------------------------------------------------------------
# data commands: preprocess, datasets                          (issue: data)
# ---------------------------------------------------------------------------
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild even if this dataset is already prepared.")]
ListOpt = Annotated[bool, typer.Option("--list", help="Show the registry and the prepared datasets, then exit.")]


@app.command("preprocess")
def preprocess_cmd(
    dataset: DatasetArg = None,
    source: SourceOpt = None,
    format: FormatOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    time_col: TimeColOpt = None,
    time_format: TimeFormatOpt = None,
    sep: SepOpt = None,
    min_rating: MinRatingOpt = None,
    user_core: UserCoreOpt = None,
    item_core: ItemCoreOpt = None,
    split: SplitOpt = None,
    valid_ratio: ValidRatioOpt = None,
    seed: SeedOpt = None,
    mirror: MirrorOpt = None,
    home: HomeOpt = None,
    force: ForceOpt = False,
    list_: ListOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download or read a dataset, clean and split it, and store it as parquet (reused when unchanged)."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import PreprocessConfig, build
    from adaptau_cli.data.prepare import list_datasets, prepare

    if list_:
        emit(list_datasets(home), as_json, _render_datasets)
        return
    cfg = build(PreprocessConfig, config, "dataset", preprocess_overrides(
        dataset, source, format, user_col, item_col, rating_col, time_col, sep, min_rating, user_core,
        item_core, split, valid_ratio, seed, mirror, home, time_format))
    result = prepare(cfg, force=force, quiet=quiet)
    emit(_preprocess_payload(result), as_json, None if quiet else _render_preprocess)


@app.command("datasets")
def datasets_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Show the dataset registry and the datasets prepared in the store."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.data.prepare import list_datasets

    emit(list_datasets(home), as_json, _render_datasets)


def _preprocess_payload(result) -> dict:
    m = result.dataset.manifest
    return {"name": m.get("name"), "path": str(result.path), "reused": result.reused,
            "seconds": round(result.seconds, 3), "n_users": m.get("n_users"), "n_items": m.get("n_items"),
            "content_hash": m.get("content_hash"), "source": m.get("source"), "options": m.get("options"),
            "cleaning": m.get("cleaning"), "stats": m.get("stats")}


def _render_preprocess(p: dict) -> None:
    from rich.table import Table

    how = "reused" if p["reused"] else f"built in {p['seconds']:.2f} s"
    opts = p.get("options") or {}
    table = Table(title=f"{p['name']}: {p['n_users']:,} users x {p['n_items']:,} items, "
                        f"split {opts.get('split')}", caption=how, title_justify="left", caption_justify="left")
    for col in ("split", "users", "items", "interactions", "density", "popularity Gini"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name in ("train", "valid", "test", "all"):
        s = (p.get("stats") or {}).get(name, {})
        table.add_row(name, f"{s.get('users', 0):,}", f"{s.get('items', 0):,}", f"{s.get('interactions', 0):,}",
                      f"{s.get('density', 0):.5f}", f"{s.get('gini', 0):.3f}")
    err_console.print(table)
    cleaning = p.get("cleaning") or {}
    removed = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in cleaning.items()
                        if k in ("duplicates_removed", "kcore_removed", "split_dropped") and v)
    if removed:
        err_console.print(f"cleaning: {removed}", highlight=False)
    err_console.print(f"store: {p['path']}", highlight=False, soft_wrap=True)


def _render_datasets(p: dict) -> None:
    from rich.table import Table

    reg = Table(title="Registry", title_justify="left")
    for col in ("name", "size", "downloaded", "prepared"):
        reg.add_column(col, overflow="fold")
    for e in p["registry"]:
        reg.add_row(e["name"], e.get("stats") or "", "built-in" if e["kind"] == "synthetic" else
                    ("yes" if e["downloaded"] else "no"), str(e["prepared"]))
    err_console.print(reg)
    prepared = Table(title=f"Prepared in {p['root']}", title_justify="left")
    for col in ("name", "split", "users", "items", "train", "valid", "test", "folder"):
        prepared.add_column(col, justify="right" if col in ("users", "items", "train", "valid", "test") else "left",
                            overflow="fold")
    for d in p["prepared"]:
        inter = d.get("interactions") or {}
        prepared.add_row(d["name"] or "?", str(d.get("split")), f"{d.get('n_users') or 0:,}",
                         f"{d.get('n_items') or 0:,}", *(f"{inter.get(k) or 0:,}" for k in ("train", "valid", "test")),
                         Path(d["path"]).name)
    err_console.print(prepared)
    if not p["prepared"]:
        err_console.print("nothing prepared yet: try `adaptau preprocess synthetic`", highlight=False)



# ---------------------------------------------------------------------------
# training commands: train, estimate-tau                       (issue: engine)
# ---------------------------------------------------------------------------
SplitSeedOpt = Annotated[Optional[int], typer.Option(
    "--split-seed", help="Seed of the dataset split (preprocess's --seed); --seed is the training seed.")]


def _section_settings(cls, config_file, section: str, overrides: dict):
    """Settings of one [section] of a TOML file (absent section: defaults) < flags."""
    from adaptau_cli.base import settings as cfgmod

    if config_file is not None:
        data = cfgmod.read_toml(config_file)
        if section not in data and any(isinstance(v, dict) for v in data.values()):
            config_file = None  # the file has other sections only
    return cfgmod.build(cls, config_file, section, overrides)


def _dataset_settings(config_file, dataset, source, format, user_col, item_col, rating_col, time_col, sep,
                      min_rating, user_core, item_core, split, valid_ratio, split_seed, mirror, home,
                      time_format=None):
    from adaptau_cli.base.settings import PreprocessConfig

    overrides = preprocess_overrides(dataset, source, format, user_col, item_col, rating_col, time_col, sep,
                                     min_rating, user_core, item_core, split, valid_ratio, split_seed, mirror, home,
                                     time_format)
    data_cfg = _section_settings(PreprocessConfig, config_file, "dataset", overrides)
    # a dataset named on the command line replaces the one of the file
    if dataset and not source:
        data_cfg.source = None
    elif source and not dataset:
        data_cfg.dataset = None
    return data_cfg


def _default_run_dir(data_cfg, train_cfg) -> Path:
    name = data_cfg.dataset or Path(data_cfg.source or "data").stem
    base = Path("runs") / f"{name}-{train_cfg.model}-{train_cfg.tau_mode}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


@app.command("train")
def train_cmd(
    dataset: DatasetArg = None, source: SourceOpt = None, format: FormatOpt = None, user_col: UserColOpt = None,
    item_col: ItemColOpt = None, rating_col: RatingColOpt = None, time_col: TimeColOpt = None,
    time_format: TimeFormatOpt = None, sep: SepOpt = None,
    min_rating: MinRatingOpt = None, user_core: UserCoreOpt = None, item_core: ItemCoreOpt = None,
    split: SplitOpt = None, valid_ratio: ValidRatioOpt = None, split_seed: SplitSeedOpt = None,
    mirror: MirrorOpt = None, home: HomeOpt = None,
    model: Annotated[Optional[str], typer.Option("--model", help="mf|lightgcn (default mf).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs (default 100).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Pairs per batch (default 2048).")] = None,
    num_negatives: Annotated[Optional[int], typer.Option(
        "--num-negatives",
        help="M negatives per positive (per-row) or per batch (shared); with all, only the L2 weight M/m; "
             "default 1024.")] = None,
    negatives: Annotated[Optional[str], typer.Option(
        "--negatives",
        help="per-row (faithful) | shared (fast, default) | grouped (G shared blocks, one per slice of the "
             "batch) | in-batch (LightGCN setup) | all (full softmax).")] = None,
    negative_groups: Annotated[Optional[int], typer.Option(
        "--negative-groups", help="With grouped: G blocks of --num-negatives items (default 16).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (default 1e-3).")] = None,
    lr_decay: Annotated[Optional[float], typer.Option(
        "--lr-decay", help="Multiply lr by this after --lr-decay-patience epochs without gain "
                           "(default 1 = constant lr, as published).")] = None,
    lr_decay_patience: Annotated[Optional[int], typer.Option(
        "--lr-decay-patience", help="Epochs without gain before each lr decay (default 10).")] = None,
    l2: Annotated[Optional[float], typer.Option("--l2", help="L2 on the raw batch rows (default 1e-5).")] = None,
    dim: Annotated[Optional[int], typer.Option("--dim", help="Embedding size (default 64).")] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", help="LightGCN layers (default 3).")] = None,
    dropout: Annotated[Optional[float], typer.Option(
        "--dropout", help="Dropout on the MF user embedding / LightGCN layers (default 0).")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="softmax (default) | bpr.")] = None,
    tau_mode: Annotated[Optional[str], typer.Option(
        "--tau-mode", help="fixed | adap-tau0 | adap-tau (default) | none (tau = 1, for --norm none).")] = None,
    tau: Annotated[Optional[float], typer.Option("--tau", help="Temperature of --tau-mode fixed (default 0.16).")] = None,
    norm: Annotated[Optional[str], typer.Option(
        "--norm", help="both (cosine, default) | user | item | none (inner product).")] = None,
    warmup_epochs: Annotated[Optional[int], typer.Option(
        "--warmup-epochs", help="Epochs on the data-only prior tau0 before the closed form (default 2); "
                                "with --warmup-patience, the most.")] = None,
    warmup_patience: Annotated[Optional[int], typer.Option(
        "--warmup-patience", help="End the warm-up after this many evaluations without a --monitor gain "
                                  "under the prior (default 0 = off: a fixed count).")] = None,
    tau_baseline: Annotated[Optional[str], typer.Option(
        "--tau-baseline", help="Baseline of the per-user loss: mean (default) | quantile.")] = None,
    tau_quantile: Annotated[Optional[float], typer.Option(
        "--tau-quantile", help="Quantile for --tau-baseline quantile (default 0.9).")] = None,
    tau_scale: Annotated[Optional[float], typer.Option(
        "--tau-scale", help="Scale of (L_u - baseline), the published t2 (default 1.0).")] = None,
    tau_user_positive: Annotated[Optional[bool], typer.Option(
        "--tau-user-positive/--no-tau-user-positive",
        help="Scale the positive logit by tau_u too (default: yes, measured better on ML-1M; "
             "--no-tau-user-positive = the published code, global tau0 on the positive).")] = None,
    positive_in_denominator: Annotated[Optional[bool], typer.Option(
        "--positive-in-denominator/--no-positive-in-denominator",
        help="Keep the positive in the softmax denominator (default: no, as the published code).")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Validate every N epochs (default 1).")] = None,
    monitor: Annotated[Optional[str], typer.Option("--monitor", help="Early-stopping metric (default recall@20).")] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Epochs without gain before stopping (default 50).")] = None,
    select_on: Annotated[Optional[str], typer.Option(
        "--select-on", help="valid (default) | test (the published protocol; labelled as such).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default runs/NAME-MODEL-TAUMODE).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this directory.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Training seed (default 2023).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto (default) | cpu | cuda.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch.")] = None,
    time_limit: Annotated[Optional[float], typer.Option(
        "--time-limit", help="Minutes for this invocation: stop cleanly after the epoch that crosses it, "
                             "write the report; --resume continues (default 0 = no limit).")] = None,
    quiet: QuietOpt = False, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Train MF or LightGCN with a fixed, Adap-τ0 or Adap-τ temperature; write a run directory."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.errors import UserError
    from adaptau_cli.base.settings import TrainConfig, legacy_train_defaults
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.engine.trainer import check_config
    from adaptau_cli.engine.trainer import train as run_training

    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise UserError("--resume and --out name different run directories")
        out = resume
        if config is None:
            if not (Path(resume) / "config.toml").is_file():
                raise UserError(f"nothing to resume: {Path(resume) / 'config.toml'} not found")
            config = Path(resume) / "config.toml"
    data_cfg = _dataset_settings(config, dataset, source, format, user_col, item_col, rating_col, time_col, sep,
                                 min_rating, user_core, item_core, split, valid_ratio, split_seed, mirror, home,
                                 time_format)
    overrides = dict(model=model, epochs=epochs, batch_size=batch_size, num_negatives=num_negatives,
                     negatives=negatives, negative_groups=negative_groups, lr=lr, lr_decay=lr_decay, lr_decay_patience=lr_decay_patience,
                     l2=l2, dim=dim, layers=layers, dropout=dropout, loss=loss,
                     tau_mode=tau_mode, tau=tau, norm=norm, warmup_epochs=warmup_epochs,
                     warmup_patience=warmup_patience, tau_baseline=tau_baseline,
                     tau_quantile=tau_quantile, tau_scale=tau_scale, tau_user_positive=tau_user_positive,
                     positive_in_denominator=positive_in_denominator, eval_every=eval_every, monitor=monitor,
                     patience=patience, select_on=select_on, seed=seed, device=device, threads=threads,
                     time_limit=time_limit)
    if resume is not None and config == Path(resume) / "config.toml":
        for key, value in legacy_train_defaults(config).items():
            overrides[key] = value if overrides.get(key) is None else overrides[key]
    train_cfg = check_config(_section_settings(TrainConfig, config, "train", overrides))
    ds = prepare_dataset(data_cfg, quiet=quiet)
    out = Path(out) if out is not None else _default_run_dir(data_cfg, train_cfg)
    result = run_training(train_cfg, data_cfg, ds, out, resume=resume is not None, quiet=quiet)
    payload = {k: v for k, v in result.report.items() if k not in ("train_config", "data_config")}

    def render(p):
        from rich.table import Table

        from adaptau_cli.base.console import err_console

        table = Table(title=f"{out}: best epoch {p['best_epoch']} of {p['epochs_run']} "
                            f"(selected on {p['selection']})")
        table.add_column("split")
        ks = sorted({int(k.split("@")[1]) for k in (p["test_metrics"] or p["valid_metrics"] or {})})
        for k in ks:
            table.add_column(f"recall@{k}", justify="right")
            table.add_column(f"ndcg@{k}", justify="right")
        for name, metrics in (("valid", p["valid_metrics"]), ("test", p["test_metrics"])):
            if metrics:
                label = name + (" (published protocol)" if name == "test" and p["selection"] != "valid" else "")
                table.add_row(label, *[f"{metrics[f'{m}@{k}']:.4f}" for k in ks for m in ("recall", "ndcg")])
        err_console.print(table)
        err_console.print(f"tau0 {p['tau0_final']:.4f}  positive in denominator: "
                          f"{'yes' if p['positive_in_denominator'] else 'no'}  run: {out}", highlight=False)

    emit(payload, as_json, None if quiet else render)


@app.command("estimate-tau")
def estimate_tau_cmd(
    dataset: DatasetArg = None, source: SourceOpt = None, format: FormatOpt = None, user_col: UserColOpt = None,
    item_col: ItemColOpt = None, rating_col: RatingColOpt = None, time_col: TimeColOpt = None,
    time_format: TimeFormatOpt = None, sep: SepOpt = None,
    min_rating: MinRatingOpt = None, user_core: UserCoreOpt = None, item_core: ItemCoreOpt = None,
    split: SplitOpt = None, valid_ratio: ValidRatioOpt = None, split_seed: SplitSeedOpt = None,
    mirror: MirrorOpt = None, home: HomeOpt = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", help="A run directory or checkpoint: also estimate from its embeddings.")] = None,
    gap: Annotated[Optional[float], typer.Option("--gap", help="Assumed mu+ - mu of the prior (default 0.7).")] = None,
    quantile: Annotated[Optional[float], typer.Option(
        "--user-quantile", help="Users with training count above this quantile enter (default 0.2).")] = None,
    as_json: JsonOpt = False, quiet: QuietOpt = False, config: ConfigOpt = None,
) -> None:
    """Print tau0 and w0 = 1/tau0 with every ingredient (data-only prior; closed form given a checkpoint)."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import TrainConfig
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.engine.runs import load_run, open_run_dataset
    from adaptau_cli.workflows.estimate import estimate_tau

    run = load_run(checkpoint) if checkpoint is not None else None
    named = any(v is not None for v in (dataset, source, config))
    if run is not None and not named:
        ds = open_run_dataset(run)
        train_cfg = run.train_config
    else:
        data_cfg = _dataset_settings(config, dataset, source, format, user_col, item_col, rating_col, time_col,
                                     sep, min_rating, user_core, item_core, split, valid_ratio, split_seed,
                                     mirror, home, time_format)
        ds = prepare_dataset(data_cfg, quiet=quiet)
        base = run.train_config if run is not None else None
        train_cfg = base or _section_settings(TrainConfig, config, "train", {})
    if gap is not None:
        train_cfg.warmup_gap = gap
    if quantile is not None:
        train_cfg.user_quantile_filter = quantile
    est = estimate_tau(ds, train_cfg, run)

    def render(e):
        from rich.table import Table

        from adaptau_cli.base.console import err_console

        table = Table(title=f"tau0 of {e['dataset']}", show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        rows = [("n' (users above the quantile)", e["n_users_filtered"]), ("m (items)", e["n_items"]),
                ("|D'| (their training pairs)", e["n_pairs_filtered"]),
                ("log(n'm / 2|D'|)", f"{e['log_term']:.4f}"),
                (f"prior tau0 (gap {e['warmup_gap']:g})", f"{e['prior_tau0']:.4f}"),
                ("prior w0 = 1/tau0", f"{e['prior_w0']:.4f}")]
        if e["checkpoint"]:
            rows += [("checkpoint", f"{e['checkpoint']} (epoch {e['epoch']})"),
                     ("mu+ (positive pairs)", f"{e['mu_pos']:.6f}"), ("mu (all pairs)", f"{e['mu']:.6f}"),
                     ("sigma+^2", f"{e['var_pos']:.6f}"), ("sigma^2", f"{e['var']:.6f}"),
                     ("tau0 full", f"{e['tau0_full']:.4f}"), ("w0 full", f"{e['w0_full']:.4f}"),
                     ("tau0 simplified", f"{e['tau0_simplified']:.4f}"),
                     ("w0 simplified", f"{e['w0_simplified']:.4f}"),
                     ("tau0 training would use", f"{e['tau0_used']:.4f}")]
            if e["guard_reason"]:
                rows.append(("guard", e["guard_reason"]))
        for what, value in rows:
            table.add_row(what, str(value))
        err_console.print(table)

    emit(est.to_dict(), as_json, render)


# ---------------------------------------------------------------------------
# analysis commands: evaluate, analyze-magnitude, recommend, quickstart
# ---------------------------------------------------------------------------
RunsArg = Annotated[list[Path], typer.Argument(
    help="Run directories or checkpoint files (.pt); several give one side-by-side comparison.",
    show_default=False, metavar="RUN_OR_CHECKPOINT")]
EvalSplitOpt = Annotated[Optional[str], typer.Option(
    "--split", help="Held-out split to rank: test (default; train and valid items masked) | valid.")]
GroupsOpt = Annotated[Optional[int], typer.Option("--groups", help="Popularity groups (default 10).")]
GroupingOpt = Annotated[Optional[str], typer.Option(
    "--grouping", help="mass (equal training interactions per group, default) | count (equal items).")]
BatchUsersOpt = Annotated[Optional[int], typer.Option(
    "--batch-users", help="Most users scored per block (default 1024; fewer when needed so a block of "
                          "scores stays in cache and under 256 MB).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (default) | cpu | cuda.")]


def _eval_settings(config, split=None, k=None, groups=None, grouping=None, batch_users=None, device=None,
                   score=None):
    """EvaluateConfig: defaults < the [evaluate] section of --config (or its top level) < flags."""
    from adaptau_cli.base import settings as cfgmod
    from adaptau_cli.workflows.evaluate import check_config

    overrides = dict(split=split, ks=_parse_ks(k) if k is not None else None, groups=groups, grouping=grouping,
                     batch_users=batch_users, device=device, score=score)
    if config is not None:
        data = cfgmod.read_toml(config)
        if "evaluate" not in data and any(isinstance(v, dict) for v in data.values()):
            config = None  # e.g. a run's config.toml: no [evaluate] section, nothing to take
    return check_config(cfgmod.build(cfgmod.EvaluateConfig, config, "evaluate", overrides))


def _parse_ks(text: str) -> tuple[int, ...]:
    from adaptau_cli.base.errors import UserError

    try:
        ks = tuple(sorted({int(t) for t in text.replace(" ", "").split(",") if t}))
    except ValueError:
        raise UserError(f"--k expects cut-offs such as 10,20,50, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise UserError(f"--k expects positive cut-offs such as 10,20,50, got {text!r}")
    return ks


@app.command("evaluate")
def evaluate_cmd(
    runs: RunsArg,
    split: EvalSplitOpt = None,
    k: Annotated[Optional[str], typer.Option("--k", help="Cut-offs, comma-separated (default 10,20,50).")] = None,
    groups: GroupsOpt = None, grouping: GroupingOpt = None, batch_users: BatchUsersOpt = None,
    device: DeviceOpt = None,
    score: Annotated[Optional[str], typer.Option(
        "--score", help="model (default: rank as trained, cosine if normalized) | raw (the un-normalized "
                        "inner product: puts the item magnitudes back into a normalized model's score) | "
                        "raw^A (rank by ‖e_i‖^A·cos: A = 0 cosine, 1 raw).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Also write the table to report.md, report.csv or report.json.")] = None,
    quiet: QuietOpt = False, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Full-ranking metrics, per-popularity-group view and popularity bias of one or more runs."""
    from adaptau_cli.base.console import emit, info
    from adaptau_cli.workflows.evaluate import evaluate_runs
    from adaptau_cli.workflows.reports import (
        evaluation_payload,
        render_evaluation,
        write_evaluation_report,
    )

    cfg = _eval_settings(config, split, k, groups, grouping, batch_users, device, score)
    evals = evaluate_runs(runs, cfg, progress=lambda label: info(f"evaluated {label}", quiet))
    if out is not None:
        write_evaluation_report(evals, out)
        info(f"report written to {out}", quiet)
    emit(evaluation_payload(evals), as_json, None if quiet else (lambda _: render_evaluation(evals)))


@app.command("analyze-magnitude")
def analyze_magnitude_cmd(
    runs: RunsArg,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder for the PNGs (default: plots/ in the first run's directory).")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Cut-off of the per-group recall (default 20).")] = None,
    split: EvalSplitOpt = None, groups: GroupsOpt = None, grouping: GroupingOpt = None,
    device: DeviceOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """The paper's Figure 1 for your runs: item-norm growth, positive score, per-group recall, norm vs popularity."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.files import write_json
    from adaptau_cli.workflows.magnitude import analyze_runs, summary_rows
    from adaptau_cli.workflows.plots import write_magnitude_plots

    cfg = _eval_settings(config, split, None, groups, grouping, None, device)
    results = analyze_runs(runs, cfg, k=k or 20)
    if out is None:
        first = Path(runs[0])
        out = (first if first.is_dir() else first.parent) / "plots"
    written, skipped = write_magnitude_plots(results, out)
    write_json(Path(out) / "magnitude.json", {"runs": [r.to_dict() for r in results],
                                              "summary": summary_rows(results)})
    payload = {"out": str(out), "plots": {p: str(f) for p, f in written.items()}, "skipped": skipped,
               "summary": summary_rows(results), "notes": {r.label: r.notes for r in results if r.notes}}

    def render(p):
        from rich.table import Table

        from adaptau_cli.base.console import err_console

        kk = k or 20
        rows = p["summary"]
        err_console.print("[bold]item-embedding magnitude vs popularity[/] (g0 = least popular group)",
                          highlight=False)
        table = Table()
        table.add_column("measure")
        for row in rows:
            table.add_column(row["run"], justify="right")

        def arrow(a, b):
            return "-" if a is None else f"{a:.3f} → {b:.3f}"

        table.add_row("norm / tau mode", *[f"{r['norm']} / {r['tau_mode']}" for r in rows])
        table.add_row("epochs in history", *[str(r["epochs"]) for r in rows])
        table.add_row("mean item norm, g0 (first → last epoch)",
                      *[arrow(r["norm_least_popular_first"], r["norm_least_popular_last"]) for r in rows])
        table.add_row("mean item norm, top group",
                      *[arrow(r["norm_most_popular_first"], r["norm_most_popular_last"]) for r in rows])
        table.add_row("mean positive score", *[arrow(r["pos_score_first"], r["pos_score_last"]) for r in rows])
        table.add_row(f"recall@{kk}", *[f"{r[f'recall@{kk}']:.4f}" for r in rows])
        table.add_row("  from g0 / top group", *[f"{r[f'recall@{kk}_least_popular']:.4f} / "
                                                   f"{r[f'recall@{kk}_most_popular']:.4f}" for r in rows])
        table.add_row("Spearman ρ(norm, popularity)", *[f"{r['spearman_norm_popularity']:.3f}" for r in rows])
        err_console.print(table)
        for label, notes in p["notes"].items():
            for note in notes:
                err_console.print(f"[yellow]note[/] {label}: {note}", highlight=False)
        for line in p["skipped"]:
            err_console.print(f"[yellow]note[/] {line}", highlight=False)
        for panel, path in p["plots"].items():
            err_console.print(f"({panel}) {path}", highlight=False, soft_wrap=True)

    emit(payload, as_json, None if quiet else render)


@app.command("recommend")
def recommend_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory or checkpoint file (.pt).", show_default=False,
                                        metavar="RUN_OR_CHECKPOINT")],
    users: Annotated[str, typer.Option(
        "--users", help="User ids as in your data: comma-separated, or a file (.txt one per line, .csv/.parquet "
                        "with a user column).", show_default=False)],
    k: Annotated[int, typer.Option("--k", help="Items per user.")] = 20,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Write to FILE.csv, FILE.parquet or FILE.json (columns user, rank, item, score).")] = None,
    skip_unknown: Annotated[bool, typer.Option(
        "--skip-unknown", help="Leave out ids the dataset does not know instead of failing.")] = False,
    exclude_seen: Annotated[bool, typer.Option(
        "--exclude-seen", help="Also exclude the user's validation and test items (training items always are).")] = False,
    device: DeviceOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Top-K unseen items for given users, with your original user and item ids."""
    from adaptau_cli.base.console import emit, info
    from adaptau_cli.base.runtime import resolve_device
    from adaptau_cli.workflows.recommend import recommend, write_recommendations

    recs = recommend(run, users, k=k, skip_unknown=skip_unknown, exclude_seen=exclude_seen,
                     device=resolve_device(device or "auto"))
    if recs.unknown:
        info(f"[yellow]skipped {len(recs.unknown)} unknown user id(s):[/] {', '.join(recs.unknown[:10])}", quiet)
    if out is not None:
        write_recommendations(recs, out)
        info(f"{len(recs.frame)} recommendations for {recs.frame['user'].nunique()} user(s) written to {out}", quiet)

    def render(_):
        from rich.table import Table

        from adaptau_cli.base.console import err_console

        table = Table(title=f"top-{k} for {recs.frame['user'].nunique()} user(s) ({recs.label})", title_justify="left")
        for col in ("user", "rank", "item", "score"):
            table.add_column(col, justify="left" if col == "user" else "right")
        shown = recs.frame.head(200)
        for row in shown.itertuples(index=False):
            table.add_row(str(row.user), str(row.rank), str(row.item), f"{row.score:.4f}")
        err_console.print(table)
        if len(recs.frame) > len(shown):
            err_console.print(f"... {len(recs.frame) - len(shown)} more rows (use --out or --json)")

    emit(recs.to_dict(), as_json, None if (quiet or out is not None) else render)


@app.command("quickstart")
def quickstart_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything it makes.")] = Path("adaptau-quickstart"),
    small: Annotated[bool, typer.Option(
        "--small", help="The tiny sample and 3 epochs: seconds instead of minutes (for tests, a first look).")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch.")] = None,
    quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """The whole story on the built-in sample.

    Preprocess, estimate-tau, train no-norm and Adap-τ MF, evaluate, plot.
    """
    from adaptau_cli.base.console import emit, err_console
    from adaptau_cli.workflows.quickstart import run_quickstart

    result = run_quickstart(out, small=small, quiet=quiet or as_json, threads=threads)

    def render(r):
        from rich.table import Table

        names = list(r["runs"])
        err_console.print(f"[bold]{r['dataset']}[/]: test split, MF without normalization vs Adap-τ",
                          highlight=False)
        table = Table()
        table.add_column("metric")
        for n in names:
            table.add_column(n, justify="right")
        for m in ("recall@20", "ndcg@20", "aplt@20", "coverage@20"):
            table.add_row(m, *[f"{r['metrics'][n][m]:.4f}" for n in names])
        table.add_row("item norm, top / bottom group", *[f"{r['norm_ratio'][n]:.2f}" for n in names])
        table.add_row("Spearman ρ(item norm, popularity)", *[f"{r['spearman'][n]:.3f}" for n in names])
        err_console.print(table)
        err_console.print(f"done in {r['seconds']:.0f} s. Outputs in [bold]{r['out']}[/]:", highlight=False)
        for n, d in r["runs"].items():
            err_console.print(f"  run {n}: {d}", highlight=False, soft_wrap=True)
        err_console.print(f"  side-by-side evaluation: {r['reports']['md']} (also .json, .csv)", highlight=False,
                          soft_wrap=True)
        err_console.print(f"  Figure 1 plots: {Path(r['out']) / 'plots'}/ "
                          f"({', '.join(Path(p).name for p in r['plots'].values())})", highlight=False,
                          soft_wrap=True)

    emit(result.to_dict(), as_json, None if quiet else render)



def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turn known errors into one line + exit code."""
    try:
        app(args=argv, prog_name="adaptau", standalone_mode=True)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(_stdout_closed())
    except AdaptauError as exc:
        sys.exit(_report(exc))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # an internal failure: still one line unless --debug
        sys.exit(_report(exc))
