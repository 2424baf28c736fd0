"""The options commands share: Annotated types, and flag groups that several commands take together.

A flag group is a dataclass whose fields are command-line parameters. A command
declares ``data: TrainDataFlags`` and ``@flag_groups`` hands Typer the group's
fields as ordinary parameters (same names, flags, defaults and help, in the
same order), then calls the command with one group object holding their values.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from pathlib import Path
from typing import Annotated, Any, Optional, get_type_hints

import typer

from adaptau_cli.base.errors import UserError

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
SplitSeedOpt = Annotated[Optional[int], typer.Option(
    "--split-seed", help="Seed of the dataset split (preprocess's --seed); --seed is the training seed.")]
MirrorOpt = Annotated[Optional[Path], typer.Option(
    "--mirror", envvar="ADAPTAU_MIRROR", help="Local folder holding the registry's files (no internet).")]
HomeOpt = Annotated[Optional[Path], typer.Option(
    "--home", envvar="ADAPTAU_HOME", help="Dataset store root (default: the platform cache dir).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML settings file; flags override it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (default) | cpu | cuda.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch.")]
LogToOpt = Annotated[Optional[list[str]], typer.Option(
    "--log-to", help="Also log every epoch's numbers and the settings to tensorboard (RUN/tensorboard) and/or "
                     "mlflow; repeat or comma-separate (optional extras: pip install 'adaptau[tensorboard]', "
                     "'adaptau[mlflow]').", show_default=False, metavar="tensorboard|mlflow")]
MlflowUriOpt = Annotated[Optional[str], typer.Option(
    "--mlflow-uri", help="MLflow tracking URI for --log-to mlflow (default: a local file store, RUN/mlruns).")]

# analysis commands
RunsArg = Annotated[list[Path], typer.Argument(
    help="Run directories or checkpoint files (.pt); several give one side-by-side comparison.",
    show_default=False, metavar="RUN_OR_CHECKPOINT")]
RunArg = Annotated[Path, typer.Argument(help="Run directory or checkpoint file (.pt).", show_default=False,
                                        metavar="RUN_OR_CHECKPOINT")]
EvalSplitOpt = Annotated[Optional[str], typer.Option(
    "--split", help="Held-out split to rank: test (default; train and valid items masked) | valid.")]
GroupsOpt = Annotated[Optional[int], typer.Option("--groups", help="Popularity groups (default 10).")]
GroupingOpt = Annotated[Optional[str], typer.Option(
    "--grouping", help="mass (equal training interactions per group, default) | count (equal items).")]
BatchUsersOpt = Annotated[Optional[int], typer.Option(
    "--batch-users", help="Most users scored per block (default 1024; fewer when needed so a block of "
                          "scores stays in cache and under 256 MB).")]


# ---------------------------------------------------------------------------
# Flag groups
# ---------------------------------------------------------------------------

def flag_groups(command):
    """Expand the command's flag-group parameters into Typer parameters; regroup them on the call.

    A name used by two groups is refused by ``inspect.Signature`` (duplicate parameter).
    """
    hints = get_type_hints(command, include_extras=True)
    params, groups = [], {}
    for name, param in inspect.signature(command).parameters.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            groups[name] = hint
            group_hints = get_type_hints(hint, include_extras=True)
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                         annotation=group_hints[f.name]) for f in dataclasses.fields(hint)]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint))

    @functools.wraps(command)
    def call(**values: Any):
        for name, group in groups.items():
            values[name] = group(**{f.name: values.pop(f.name) for f in dataclasses.fields(group)})
        return command(**values)

    call.__signature__ = inspect.Signature(params)
    call.__annotations__ = {p.name: p.annotation for p in params}
    return call


@dataclasses.dataclass
class DataFlags:
    """What to read and how to clean and split it: PreprocessConfig's flags (``--seed`` seeds the split)."""

    dataset: DatasetArg = None
    source: SourceOpt = None
    format: FormatOpt = None
    user_col: UserColOpt = None
    item_col: ItemColOpt = None
    rating_col: RatingColOpt = None
    time_col: TimeColOpt = None
    time_format: TimeFormatOpt = None
    sep: SepOpt = None
    min_rating: MinRatingOpt = None
    user_core: UserCoreOpt = None
    item_core: ItemCoreOpt = None
    split: SplitOpt = None
    valid_ratio: ValidRatioOpt = None
    drop_cold: Annotated[Optional[bool], typer.Option(
        "--drop-cold", help="Remove valid/test interactions whose item never occurs in train (cold items); "
                            "a store entry of its own.")] = None
    split_seed: SeedOpt = None
    mirror: MirrorOpt = None
    home: HomeOpt = None

    @property
    def named(self) -> bool:
        """Whether a dataset was named (a registry name or --source)."""
        return self.dataset is not None or self.source is not None

    def overrides(self) -> dict[str, Any]:
        """The flags as PreprocessConfig overrides (None = not given); ``--split`` may carry ratios."""
        split, ratios = self.split, None
        if split is not None and ":" in split:          # e.g. temporal-user:0.8,0.1,0.1
            split, ratios = split.split(":", 1)
        elif split is not None and any(ch.isdigit() for ch in split):
            ratios, split = split, "random"
        values = dataclasses.asdict(self)
        seed = values.pop("split_seed")
        values.update({k: str(v) if v else None for k, v in values.items() if isinstance(v, Path)})
        return dict(values, split=split, ratios=ratios, seed=seed)


@dataclasses.dataclass
class TrainDataFlags(DataFlags):
    """DataFlags of ``train`` and ``estimate-tau``, where ``--seed`` is the training seed."""

    split_seed: SplitSeedOpt = None


@dataclasses.dataclass
class ModelFlags:
    """The model, loss and temperature flags of ``train`` (TrainConfig fields of the same names)."""

    model: Annotated[Optional[str], typer.Option("--model", help="mf|lightgcn (default mf).")] = None
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs (default 100).")] = None
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Pairs per batch (default 2048).")] = None
    num_negatives: Annotated[Optional[int], typer.Option(
        "--num-negatives",
        help="M negatives per positive (per-row) or per batch (shared); with all, only the L2 weight M/m; "
             "default 1024.")] = None
    negatives: Annotated[Optional[str], typer.Option(
        "--negatives",
        help="per-row (faithful) | shared (fast, default) | grouped (G shared blocks, one per slice of the "
             "batch) | in-batch (LightGCN setup) | all (full softmax).")] = None
    negative_groups: Annotated[Optional[int], typer.Option(
        "--negative-groups", help="With grouped: G blocks of --num-negatives items (default 16).")] = None
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (default 1e-3).")] = None
    optimizer: Annotated[Optional[str], typer.Option(
        "--optimizer", help="adam (published, default) | sparse-adam (lazy row-wise Adam: only the batch's rows "
                            "move; for large catalogues, MF with shared or grouped negatives).")] = None
    lr_decay: Annotated[Optional[float], typer.Option(
        "--lr-decay", help="Multiply lr by this after --lr-decay-patience epochs without gain "
                           "(default 1 = constant lr, as published).")] = None
    lr_decay_patience: Annotated[Optional[int], typer.Option(
        "--lr-decay-patience", help="Epochs without gain before each lr decay (default 10).")] = None
    l2: Annotated[Optional[float], typer.Option("--l2", help="L2 on the raw batch rows (default 1e-5).")] = None
    dim: Annotated[Optional[int], typer.Option("--dim", help="Embedding size (default 64).")] = None
    layers: Annotated[Optional[int], typer.Option("--layers", help="LightGCN layers (default 3).")] = None
    dropout: Annotated[Optional[float], typer.Option(
        "--dropout", help="Dropout on the MF user embedding / LightGCN layers (default 0).")] = None
    loss: Annotated[Optional[str], typer.Option(
        "--loss", help="softmax (default) | bpr | ccl (SimpleX) | directau | bsl (bilateral softmax) | "
                       "learned-tau (softmax with a trained tau); the last four: README, 'Rival losses'.")] = None
    tau_mode: Annotated[Optional[str], typer.Option(
        "--tau-mode", help="fixed | adap-tau0 | adap-tau (default) | none (tau = 1, for --norm none).")] = None
    tau: Annotated[Optional[float], typer.Option(
        "--tau", help="Temperature of --tau-mode fixed (default 0.16).")] = None
    norm: Annotated[Optional[str], typer.Option(
        "--norm", help="both (cosine, default) | user | item | none (inner product).")] = None
    warmup_epochs: Annotated[Optional[int], typer.Option(
        "--warmup-epochs", help="The most epochs on the data-only prior tau0 before the closed form "
                                "(default 100, the published warm-up).")] = None
    warmup_patience: Annotated[Optional[int], typer.Option(
        "--warmup-patience", help="End the warm-up after this many evaluations without a --monitor gain "
                                  "under the prior (default: --patience; 0 = off, a fixed count).")] = None
    tau_baseline: Annotated[Optional[str], typer.Option(
        "--tau-baseline", help="Baseline of the per-user loss: mean (default) | quantile.")] = None
    tau_quantile: Annotated[Optional[float], typer.Option(
        "--tau-quantile", help="Quantile for --tau-baseline quantile (default 0.9).")] = None
    tau_scale: Annotated[Optional[float], typer.Option(
        "--tau-scale", help="Scale of (L_u - baseline), the published t2 (default 1.0).")] = None
    tau_user_positive: Annotated[Optional[bool], typer.Option(
        "--tau-user-positive/--no-tau-user-positive",
        help="Scale the positive logit by tau_u too (default: yes, measured better on ML-1M; "
             "--no-tau-user-positive = the published code, global tau0 on the positive).")] = None
    positive_in_denominator: Annotated[Optional[bool], typer.Option(
        "--positive-in-denominator/--no-positive-in-denominator",
        help="Keep the positive in the softmax denominator (default: no, as the published code).")] = None
    eval_every: Annotated[Optional[int], typer.Option(
        "--eval-every", help="Validate every N epochs (default 1).")] = None
    monitor: Annotated[Optional[str], typer.Option(
        "--monitor", help="Early-stopping metric (default recall@20).")] = None
    patience: Annotated[Optional[int], typer.Option(
        "--patience", help="Epochs without gain before stopping (default 50).")] = None
    select_on: Annotated[Optional[str], typer.Option(
        "--select-on", help="valid (default) | test (the published protocol; labelled as such).")] = None
    ccl_margin: Annotated[Optional[float], typer.Option(
        "--ccl-margin", help="--loss ccl: negatives push only above this cosine (default 0.9, SimpleX's).")] = None
    ccl_negative_weight: Annotated[Optional[float], typer.Option(
        "--ccl-negative-weight", help="--loss ccl: weight w of the negatives' mean hinge (default 150, "
                                      "SimpleX's).")] = None
    directau_gamma: Annotated[Optional[float], typer.Option(
        "--directau-gamma", help="--loss directau: weight of the uniformity term (default 1, the authors' "
                                 "code).")] = None
    bsl_tau2: Annotated[Optional[float], typer.Option(
        "--bsl-tau2", help="--loss bsl: the exponent t2 on the negatives' sum, i.e. the positive scored at "
                           "temperature t2*tau (default 1.1, the authors' ML-1M value; 1 = softmax).")] = None
    learned_tau_init: Annotated[Optional[float], typer.Option(
        "--learned-tau-init", help="--loss learned-tau: the starting tau (default 0.07, CLIP's).")] = None
    learned_tau_min: Annotated[Optional[float], typer.Option(
        "--learned-tau-min", help="--loss learned-tau: the smallest tau (default 0.01: 1/tau <= 100, "
                                  "CLIP's clamp).")] = None
    learned_tau_max: Annotated[Optional[float], typer.Option(
        "--learned-tau-max", help="--loss learned-tau: the largest tau (default 2.0, as --tau-mode's).")] = None
    logq: Annotated[Optional[bool], typer.Option(
        "--logq/--no-logq", help="Softmax with --negatives in-batch: subtract log q_j, the log of each item's "
                                 "training popularity share, from its logits (Yi et al. 2019; default: no, "
                                 "as the published setups).")] = None


@dataclasses.dataclass
class RuntimeFlags:
    """Seed, device, threads and time budget of a ``train`` call (TrainConfig fields of the same names)."""

    seed: Annotated[Optional[int], typer.Option("--seed", help="Training seed (default 2023).")] = None
    device: DeviceOpt = None
    threads: ThreadsOpt = None
    time_limit: Annotated[Optional[float], typer.Option(
        "--time-limit", help="Minutes for this invocation: stop cleanly after the epoch that crosses it, "
                             "write the report; --resume continues (default 0 = no limit).")] = None


def train_overrides(*groups) -> dict[str, Any]:
    """The TrainConfig overrides of ``ModelFlags`` / ``RuntimeFlags`` groups (None = not given)."""
    return {k: v for group in groups for k, v in dataclasses.asdict(group).items()}


def parse_ks(text: str | None) -> tuple[int, ...] | None:
    """``--k 10,20,50`` as sorted distinct cut-offs (None: not given)."""
    if text is None:
        return None
    try:
        ks = tuple(sorted({int(t) for t in text.replace(" ", "").split(",") if t}))
    except ValueError:
        raise UserError(f"--k expects cut-offs such as 10,20,50, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise UserError(f"--k expects positive cut-offs such as 10,20,50, got {text!r}")
    return ks
