"""Typed settings: dataclasses, read from a TOML file, overridden by CLI flags.

Every command builds its settings the same way, with ``build``: defaults from
the dataclass, then the ``--config FILE.toml`` values (its ``[section]``, or the
whole file when it has no sections), then every flag the user actually gave
(flags left at ``None`` do not override); the settings that take one word of a
fixed set are checked against ``CHOICES``. ``dump_toml`` writes a run's
settings back so that ``config.toml`` reruns it.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, get_args, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from adaptau_cli.base.errors import UserError

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None


def section_values(config_file: str | Path | None, section: str | None) -> dict[str, Any] | None:
    """What a TOML file holds for ``[section]``: that table, or the whole file when it has no
    tables at all; ``None`` when there is no file, or only other sections (a run's config.toml
    given to ``evaluate``)."""
    if config_file is None:
        return None
    data = read_toml(config_file)
    if section and isinstance(data.get(section), dict):
        return data[section]
    if any(isinstance(v, dict) for v in data.values()):
        return None
    return data


def build(cls: type[T], config_file: str | Path | None = None, section: str | None = None,
          overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None) -> T:
    """The settings of a command: defaults < ``base`` < the file's ``[section]`` < non-None overrides.

    ``base`` holds values that replace a default but not the file (a resumed run's
    ``LEGACY_TRAIN_DEFAULTS``). An override that names one member of an ``EXCLUSIVE``
    group (``dataset`` / ``source``) drops the others the file gave: a dataset named on
    the command line replaces the file's. The result's choices are checked (``check_choices``).
    """
    from_file = section_values(config_file, section)
    if from_file is not None and cls.__name__ == "TrainConfig":
        from_file = flatten_parts(from_file, str(config_file))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values = {**(base or {}), **(from_file or {})}
    for group in EXCLUSIVE.get(cls, ()):
        if any(k in given for k in group):
            for k in group:
                values.pop(k, None)
    values.update(given)
    cfg = from_dict(cls, values, origin=str(config_file) if from_file is not None else "options")
    return check_choices(cfg)


def from_dict(cls: type[T], values: Mapping[str, Any], origin: str = "options") -> T:
    """Build a dataclass from a mapping, rejecting unknown keys with a readable error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"{origin}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}",
                        hint=f"known settings: {', '.join(sorted(fields))}")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = _coerce(value, hints[key], key, origin)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{origin}: {exc}") from None


_KIND_TEXT = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
              "tuple[int]": "a list of integers", "tuple[float]": "a list of numbers", "tuple[str]": "a list of strings"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _kind(hint: Any) -> str | None:
    """The kind of value a field takes: float, int, bool, str, tuple[...] (None: anything)."""
    if hint in (float, int, bool, str):
        return hint.__name__
    text = str(hint).replace("typing.Optional[", "").replace(" | None", "")
    if text.rstrip("]") in ("float", "int", "bool", "str"):
        return text.rstrip("]")
    if text.startswith("tuple["):
        inner = text[len("tuple["):].split(",")[0].strip()
        return f"tuple[{inner}]" if inner in ("int", "float", "str") else "tuple[str]"
    return None


def _coerce(value: Any, hint: Any, key: str, origin: str) -> Any:
    """``value`` as the field's type; a wrong type (``split = 5``, ``lr = "fast"``) is one readable error."""
    if value is None:
        return None
    kind = _kind(hint)
    if kind is None:
        return value
    try:
        return _convert(value, kind)
    except (TypeError, ValueError):
        raise UserError(f"{origin}: setting {key!r} expects {_KIND_TEXT[kind]}, got {value!r}",
                        hint=f"write it as {key} = ... with {_KIND_TEXT[kind]}") from None


def _convert(value: Any, kind: str) -> Any:
    if kind.startswith("tuple["):
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise TypeError
        inner = kind[len("tuple["):-1]
        return tuple(_convert(v, inner) for v in value)
    if kind == "str":
        if not isinstance(value, (str, Path)):
            raise TypeError
        return str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError
    if kind == "int":
        number = float(value) if isinstance(value, str) and not value.strip().lstrip("+-").isdigit() else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    return float(value)


# Settings added after runs were first written, with the value that gives the old behaviour: a run's
# config.toml that lacks one was trained without it, so resuming it must not switch the new default on.
LEGACY_TRAIN_DEFAULTS = {"warmup_patience": 0}


def legacy_train_defaults(run_config: str | Path) -> dict[str, Any]:
    """The settings a run's ``config.toml`` predates, at the value its run was trained with."""
    train = read_toml(run_config).get("train", {})
    return {k: v for k, v in LEGACY_TRAIN_DEFAULTS.items() if k not in train}


def to_dict(obj: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(obj).items()}


def dump_toml(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """Write ``{section: {key: scalar | list}}`` as TOML (None values are omitted).

    ``tomli_w`` writes it: every string escaped as the TOML spec asks (control
    characters, DEL, quotes), floats as TOML floats (nan, inf) — a hand-written
    writer got DEL wrong.
    """
    import tomli_w

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    tables = {name: {k: plain(v) for k, v in table.items() if v is not None} for name, table in sections.items()}
    return tomli_w.dumps(tables)


def run_config_toml(data_cfg: Any, train_cfg: Any) -> str:
    """A run's ``config.toml`` text: ``[dataset]`` + ``[train]``, what ``adaptau train --config`` takes."""
    return dump_toml({"dataset": to_dict(data_cfg), "train": to_dict(train_cfg)})


# --------------------------------------------------------------------------
# Settings of each command. Defaults are documented in the README.
# --------------------------------------------------------------------------

@dataclasses.dataclass
class PreprocessConfig:
    """What to read and how to clean and split it; hashed into the store folder name."""

    dataset: str | None = None          # registry name (ml-100k, ml-1m, gowalla, yelp2018, amazon-book, synthetic)
    source: str | None = None           # a file or folder of the user's own data
    format: str = "auto"                # auto|lightgcn|csv|tsv|recbole|movielens|udata|parquet
    user_col: str | None = None
    item_col: str | None = None
    rating_col: str | None = None
    time_col: str | None = None
    time_format: str | None = None      # strftime format of date-string timestamps, e.g. %d/%m/%Y %H:%M
    sep: str | None = None
    min_rating: float | None = None     # explicit -> implicit: keep rating >= min_rating
    user_core: int = 0                  # iterative k-core, run to a fixed point
    item_core: int = 0
    split: str = "auto"                 # auto|given|random|temporal-global|temporal-user|loo-last|loo-random
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    valid_ratio: float = 0.0            # carve a per-user validation set out of a given train split
    drop_cold: bool = False             # remove valid/test interactions whose item never occurs in train
    seed: int = 2023
    mirror: str | None = None           # local folder with the registry's files (offline machines)
    home: str | None = None             # store root; default $ADAPTAU_HOME or the platform cache dir

    def __post_init__(self) -> None:
        # A run's config.toml must reopen the same data from any working directory.
        if self.source:
            try:
                self.source = str(Path(self.source).expanduser().resolve())
            except (RuntimeError, OSError) as exc:   # a symbolic-link loop (RuntimeError before 3.13)
                raise UserError(f"cannot read --source {self.source}: {exc}",
                                hint="point --source at the file or folder itself") from None


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs besides the data; written to the run's config.toml.

    Defaults follow the published MF setup (dim 64, batch 2048, M = 1024, Adam)
    except, each chosen by a rule that does not depend on the dataset and
    measured on ML-1M and Yelp2018 (docs/results.md, "Yelp2018"):
    ``negatives = "grouped"`` with ``negative_groups = 16`` (16 blocks of M
    uniform items, each shared by 1/16 of the batch: ~2x a shared step, ~25x
    cheaper than the published per-row negatives; on a 38k-item catalogue one
    shared block of 1024 gives an item a negative gradient in ~2.5% of the
    steps and plateaued 3-4% below the paper, 16 blocks track the authors' log);
    the warm-up rule: the prior τ0 is kept while it still improves the monitored
    metric, until ``warmup_patience`` evaluations pass without a gain — by default
    the run's own selection ``patience`` (the published 50), the same test that
    would end the run — and at most ``warmup_epochs = 100`` (the published
    length); early stopping waits for the warm-up's end. A count of epochs means
    ten times less movement at lr 1e-4 than at 1e-3: the rule ends the warm-up
    by what the run does (Yelp2018 at lr 1e-4: the prior still gains at epoch 84,
    the cap ends it; ML-1M at lr 1e-3, patience 10: it ends when the prior
    stalls). ``warmup_patience = 0`` gives a fixed count of ``warmup_epochs``. And model
    selection on the validation split (``select_on = "test"`` is the published
    protocol, labelled as such). ``positive_in_denominator = False`` keeps the
    published code's choice (positive left out of the softmax denominator; on
    ML-1M, MF, 30 epochs, it made no difference: valid recall@20 .2399 vs
    .2402 with it in). ``tau_user_positive = True`` departs from the published
    code (which scaled the positive logit by the global 1/τ0): letting τ_u scale
    the positive too was better on ML-1M (MF, shared negatives, 10% validation
    split: best valid recall@20 .2551 at epoch 23 vs .2437 within 60 epochs;
    ndcg@20 .2031 vs .1937 at 30 epochs). ``tau0_formula = "simplified"`` is
    the published (μ+ - μ)/log term; ``full`` uses the variances too. τ0 and τ_u are clamped to
    [``tau_min``, ``tau_max``] = [0.02, 2.0] (see adaptau_cli/tau.py for why).
    For BPR, ``num_negatives`` negatives are averaged per row (1 = classic BPR).
    ``negatives = "all"`` is the full softmax over the catalogue (small catalogues;
    ``num_negatives`` then only sets the L2 weight M/m of each item, per-row's expectation).
    ``lr_decay < 1`` departs from the published constant learning rate: when the
    monitored metric has not improved for ``lr_decay_patience`` epochs (counted
    from the last gain or the last decay), lr is multiplied by ``lr_decay``, down
    to ``lr_min`` — reduce-on-plateau, for squeezing the last fraction of a percent
    out of a run that has flattened (docs/results.md measures it on ML-1M).
    """

    model: str = "mf"                   # mf|lightgcn
    dim: int = 64
    layers: int = 3                     # LightGCN propagation layers
    epochs: int = 100
    batch_size: int = 2048
    num_negatives: int = 1024
    negatives: str = "grouped"          # per-row|shared|grouped|in-batch|all
    negative_groups: int = 16           # grouped: G blocks of num_negatives, each shared by B/G rows
    lr: float = 1e-3
    optimizer: str = "adam"             # adam (published, dense) | sparse-adam (lazy row-wise Adam for large
                                        # catalogues: engine/optimizers.py, measured in docs/scaling.md)
    lr_decay: float = 1.0               # multiply lr by this after lr_decay_patience epochs without gain (1 = off)
    lr_decay_patience: int = 10
    lr_min: float = 1e-6                # decay never goes below this
    l2: float = 1e-5
    dropout: float = 0.0
    loss: str = "softmax"               # softmax|bpr|ccl|directau|bsl|learned-tau (the last four: rivals.py)
    norm: str = "both"                  # both|user|item|none
    tau_mode: str = "adap-tau"          # fixed|adap-tau0|adap-tau|none
    tau: float = 0.16                   # the fixed temperature (tau_mode=fixed)
    positive_in_denominator: bool = False
    warmup_epochs: int = 100            # the most epochs on the prior (published: exactly 100)
    warmup_patience: int | None = None  # end the warm-up after this many evaluations without a gain
                                        # (None: the selection ``patience``; 0 = off, a fixed count)
    warmup_gap: float = 0.7             # assumed mu+ - mu during warm-up
    user_quantile_filter: float = 0.2   # users with count > this quantile enter tau0
    tau_min: float = 0.02               # clamp range for tau0 / tau_u
    tau_max: float = 2.0
    tau_baseline: str = "mean"          # mean|quantile
    tau_quantile: float = 0.9
    tau_scale: float = 1.0              # the published t2
    tau_user_positive: bool = True      # tau_u scales the positive logit too (measured better on ML-1M)
    tau0_formula: str = "simplified"    # simplified|full (closed form used after warm-up)
    eval_every: int = 1
    monitor: str = "recall@20"
    patience: int = 50
    select_on: str = "valid"            # valid|test (test = the published protocol, labelled)
    ks: tuple[int, ...] = (10, 20, 50)
    groups: int = 10
    grouping: str = "mass"              # mass|count
    seed: int = 2023
    device: str = "auto"                # auto|cpu|cuda
    threads: int | None = None
    time_limit: float = 0.0             # minutes per invocation, 0 = none; stops after the epoch that crosses it
    # The rival losses (issue #17, adaptau_cli/method/rivals.py); each default is its paper's or its code's.
    ccl_margin: float = 0.9             # CCL margin m on the negatives' cosine: SimpleX's config (Mao et al. 2021)
    ccl_negative_weight: float = 150.0  # CCL weight w of the negatives' mean: SimpleX's config (with 1000 negatives)
    directau_gamma: float = 1.0         # DirectAU's uniformity weight γ: the authors' code default (gamma: 1)
    bsl_tau2: float = 1.1               # BSL's t2, the exponent on the negatives' sum (positive at temperature
                                        # t2·τ): the authors' per-row ML-1M value (their README); 1 = softmax
    learned_tau_init: float = 0.07      # learned-tau's starting τ: CLIP's (Radford et al. 2021)
    learned_tau_min: float = 0.01       # learned-tau's clamp: CLIP keeps 1/τ <= 100
    learned_tau_max: float = 2.0        # (CLIP has no upper clamp; this is tau_max, the adaptive modes' bound)
    logq: bool = False                  # softmax with in-batch negatives: subtract log q_j (Yi et al. 2019);
                                        # off = the published setups (LightGCN's in-batch softmax is uncorrected)

    def __post_init__(self) -> None:
        # resolved here, so that config.toml records the number that ran (and a resumed run keeps it)
        if self.warmup_patience is None:
            self.warmup_patience = self.patience

    def parts(self) -> "TrainParts":
        """The typed parts (model, loss, temperature, optimizer, selection, runtime) of these settings."""
        return train_parts(self)


# --------------------------------------------------------------------------
# The parts of a training run's settings
# --------------------------------------------------------------------------
# TrainConfig keeps every setting flat: that is the [train] table of every TOML file and every
# run's config.toml since 0.1, so old files load as they are. Each component takes its own typed
# part (``cfg.parts().temperature`` for the TemperatureController, ``.loss`` for AdapTauLoss ...),
# and a file may also group settings in sub-tables such as [train.temperature] (read by ``build``).


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    name: str = "mf"
    dim: int = 64
    layers: int = 3
    dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class LossSettings:
    loss: str = "softmax"
    norm: str = "both"
    negatives: str = "grouped"
    num_negatives: int = 1024
    negative_groups: int = 16
    positive_in_denominator: bool = False
    l2: float = 1e-5
    ccl_margin: float = 0.9             # the rival losses' settings: defaults and why in TrainConfig
    ccl_negative_weight: float = 150.0
    directau_gamma: float = 1.0
    bsl_tau2: float = 1.1
    learned_tau_init: float = 0.07
    learned_tau_min: float = 0.01
    learned_tau_max: float = 2.0
    logq: bool = False


@dataclasses.dataclass(frozen=True)
class TemperatureSettings:
    """How temperatures are chosen (``TemperatureController``); defaults as ``TrainConfig``'s."""

    mode: str = "adap-tau"              # fixed|adap-tau0|adap-tau|none
    tau: float = 0.16                   # fixed mode
    warmup_epochs: int = 100
    warmup_patience: int = 50           # TrainConfig's default is its own selection patience (50)
    warmup_gap: float = 0.7
    user_quantile_filter: float = 0.2
    formula: str = "simplified"         # simplified|full
    baseline: str = "mean"              # mean|quantile
    quantile: float = 0.9
    scale: float = 1.0
    user_positive: bool = True          # τ_u scales the positive logit too (False: the published choice)
    tau_min: float = 0.02
    tau_max: float = 2.0

    @property
    def adaptive(self) -> bool:
        return self.mode in ("adap-tau0", "adap-tau")


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    lr: float = 1e-3
    name: str = "adam"                  # adam|sparse-adam
    lr_decay: float = 1.0
    lr_decay_patience: int = 10
    lr_min: float = 1e-6
    epochs: int = 100
    batch_size: int = 2048


@dataclasses.dataclass(frozen=True)
class SelectionSettings:
    select_on: str = "valid"
    monitor: str = "recall@20"
    patience: int = 50
    eval_every: int = 1
    ks: tuple[int, ...] = (10, 20, 50)
    groups: int = 10                    # popularity groups of the per-epoch magnitude record
    grouping: str = "mass"


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    seed: int = 2023
    device: str = "auto"
    threads: int | None = None
    time_limit: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainParts:
    model: ModelSettings
    loss: LossSettings
    temperature: TemperatureSettings
    optimizer: OptimizerSettings
    selection: SelectionSettings
    runtime: RuntimeSettings


# part -> (its class, {part field: TrainConfig field}); every TrainConfig field is in exactly one part
TRAIN_PARTS: dict[str, tuple[type, dict[str, str]]] = {
    "model": (ModelSettings, {"name": "model", "dim": "dim", "layers": "layers", "dropout": "dropout"}),
    "loss": (LossSettings, {f: f for f in ("loss", "norm", "negatives", "num_negatives", "negative_groups",
                                            "positive_in_denominator", "l2", "ccl_margin", "ccl_negative_weight",
                                            "directau_gamma", "bsl_tau2", "learned_tau_init", "learned_tau_min",
                                            "learned_tau_max", "logq")}),
    "temperature": (TemperatureSettings, {
        "mode": "tau_mode", "tau": "tau", "warmup_epochs": "warmup_epochs", "warmup_patience": "warmup_patience",
        "warmup_gap": "warmup_gap", "user_quantile_filter": "user_quantile_filter", "formula": "tau0_formula",
        "baseline": "tau_baseline", "quantile": "tau_quantile", "scale": "tau_scale",
        "user_positive": "tau_user_positive", "tau_min": "tau_min", "tau_max": "tau_max"}),
    "optimizer": (OptimizerSettings, {"name": "optimizer", **{f: f for f in ("lr", "lr_decay", "lr_decay_patience",
                                                                             "lr_min", "epochs", "batch_size")}}),
    "selection": (SelectionSettings, {f: f for f in ("select_on", "monitor", "patience", "eval_every", "ks",
                                                      "groups", "grouping")}),
    "runtime": (RuntimeSettings, {f: f for f in ("seed", "device", "threads", "time_limit")}),
}


def train_parts(cfg: "TrainConfig") -> TrainParts:
    """The typed parts of a flat ``TrainConfig``."""
    return TrainParts(**{name: cls(**{pf: getattr(cfg, tf) for pf, tf in fields.items()})
                         for name, (cls, fields) in TRAIN_PARTS.items()})


def flatten_parts(table: Mapping[str, Any], origin: str = "options") -> dict[str, Any]:
    """A [train] table whose settings may sit in part sub-tables ([train.temperature] mode = ...) made flat."""
    flat = {k: v for k, v in table.items() if not (k in TRAIN_PARTS and isinstance(v, dict))}
    for name, (_, fields) in TRAIN_PARTS.items():
        sub = table.get(name)
        if not isinstance(sub, dict):
            continue
        unknown = sorted(set(sub) - set(fields))
        if unknown:
            raise UserError(f"{origin}: unknown setting(s) {', '.join(unknown)} in [train.{name}]",
                            hint=f"known there: {', '.join(fields)}")
        for key, value in sub.items():
            if fields[key] in flat:
                raise UserError(f"{origin}: {fields[key]} is set both in [train] and as {key} in [train.{name}]")
            flat[fields[key]] = value
    return flat


@dataclasses.dataclass
class EvaluateConfig:
    split: str = "test"                 # valid|test
    ks: tuple[int, ...] = (10, 20, 50)
    groups: int = 10
    grouping: str = "mass"              # mass|count
    batch_users: int = 1024             # users scored per block (upper bound, see max_block_mb)
    max_block_mb: float = 256.0         # one block of scores never exceeds this (bounded memory)
    head_share: float = 0.2             # head = most popular items holding this share of interactions
    device: str = "auto"
    score: str = "model"                # model: as trained | raw: un-normalized inner product | raw^A: ‖e_i‖^A·cos


# --------------------------------------------------------------------------
# Choices: every setting that takes one word of a fixed set, typed and checked here.
# --------------------------------------------------------------------------
# The engine and the data layer check again (a library call skips the CLI); the messages match.
Model = Literal["mf", "lightgcn"]
Negatives = Literal["per-row", "shared", "grouped", "in-batch", "all"]
Loss = Literal["softmax", "bpr", "ccl", "directau", "bsl", "learned-tau"]
Norm = Literal["both", "user", "item", "none"]
TauMode = Literal["fixed", "adap-tau0", "adap-tau", "none"]
TauBaseline = Literal["mean", "quantile"]
Tau0Formula = Literal["simplified", "full"]
SelectOn = Literal["valid", "test"]
Grouping = Literal["mass", "count"]
EvalSplit = Literal["valid", "test"]
Format = Literal["auto", "lightgcn", "csv", "tsv", "recbole", "movielens", "udata", "parquet"]
SplitMethod = Literal["auto", "given", "random", "temporal-global", "temporal-user", "loo-last", "loo-random"]

CUSTOM_MODEL_PREFIX = "custom:"   # a run of a user's own backbone records its model as custom:ClassName


@dataclasses.dataclass(frozen=True)
class Choice:
    """One choice setting: the words it takes and how a wrong one is reported."""

    label: str                          # as in the message: "unknown {label} 'x'"
    kind: Any                           # the Literal of its words
    expected: str | None = "one of"     # "(expected one of a, b)"; another text; None: no such part
    hint: str | None = None
    fold_case: bool = False             # 'CSV' is csv; an empty value is the first word (auto)
    quote_folded: bool = False          # the message quotes the folded word, not the value as given
    also: str | None = None             # a prefix that is accepted as well (custom models)

    @property
    def values(self) -> tuple[str, ...]:
        return get_args(self.kind)

    def check(self, value: Any) -> None:
        word = str(value or self.values[0]).lower() if self.fold_case else value
        if word in self.values or (self.also and isinstance(word, str) and word.startswith(self.also)):
            return
        message = f"unknown {self.label} {word if self.quote_folded else value!r}"
        if self.expected == "one of":
            message += f" (expected one of {', '.join(self.values)})"
        elif self.expected:
            message += f" (expected {self.expected})"
        raise UserError(message, hint=self.hint)


CHOICES: dict[type, dict[str, Choice]] = {
    PreprocessConfig: {
        "format": Choice("format", Format, None, fold_case=True, hint="use one of " + "|".join(get_args(Format))),
        "split": Choice("split", SplitMethod, None, fold_case=True, quote_folded=True,
                        hint=f"use one of {', '.join(get_args(SplitMethod))} or ratios like 0.8,0.1,0.1"),
    },
    TrainConfig: {
        "model": Choice("model", Model, also=CUSTOM_MODEL_PREFIX),
        "negatives": Choice("negatives", Negatives),
        "loss": Choice("loss", Loss),
        "norm": Choice("norm", Norm),
        "tau_mode": Choice("tau mode", TauMode),
        "tau_baseline": Choice("tau baseline", TauBaseline),
        "tau0_formula": Choice("tau0 formula", Tau0Formula),
        "select_on": Choice("select-on", SelectOn),
        "grouping": Choice("grouping", Grouping),
    },
    EvaluateConfig: {
        "split": Choice("split", EvalSplit, "'valid' or 'test'"),
        "grouping": Choice("grouping", Grouping, "'mass' or 'count'"),
    },
}

# Settings of which a command line gives one: naming one there drops the others a file gave.
EXCLUSIVE: dict[type, tuple[tuple[str, ...], ...]] = {PreprocessConfig: (("dataset", "source"),)}


def check_choices(cfg: T) -> T:
    """Reject a setting outside its ``CHOICES`` with the one-line message the engine gives."""
    for name, choice in CHOICES.get(type(cfg), {}).items():
        choice.check(getattr(cfg, name))
    return cfg
