"""``adaptau tune``: hyper-parameter search with Optuna (issue #17), one normal run per trial.

Why Optuna: a seeded TPE sampler, per-epoch pruning and a study that lives in
a database (so several processes, on one machine or many, share one search and
a rerun continues it) are what a search needs, and each is a library's to get
right, not ours. Optuna is an optional extra (``pip install 'adaptau[tune]'``),
imported only here and only when a search runs.

The search space is a set of numeric ``TrainConfig`` fields, each a range:
``--space lr=1e-4:1e-2:log --space warmup_epochs=1:100:int`` on the command
line, or a ``[tune.space]`` table in the ``--config`` file (``lr = "1e-4:1e-2:log"``
or ``lr = {low = 1e-4, high = 1e-2, log = true}``); flags win, name by name.
Every other setting is the base run's: ``[dataset]`` / ``[train]`` of the file
and the usual ``train`` flags. Both ends of every range are checked with the
trainer's own checks before anything trains.

Each trial trains a run directory ``OUT/trials/<number>`` (``adaptau
evaluate`` and the rest read it like any run) and reports the monitored
validation metric to the trial at every evaluation through
``train(..., on_epoch=...)``; when the pruner says so the trial is pruned
there (its run directory stays, resumable). The objective is the run's best
validation value of the monitored metric (``report.json``'s ``best_value``):
the test split is never looked at, so ``select_on = "test"`` is refused.

The study lives in ``OUT/study.db`` (SQLite) unless ``--storage URL`` names
another Optuna RDB storage (PostgreSQL, MySQL): processes given the same
storage and ``--study`` name share the study, each running its own
``--trials`` budget. After its budget a process writes, from the whole study:
``OUT/best.toml`` (what ``adaptau train --config`` takes: the base settings
with the best trial's values), ``OUT/trials.parquet`` (number, state, value,
duration, params, run dir), ``OUT/history.png`` (the optimisation history) and
``OUT/importance.json`` / ``.md`` (parameter importances, evaluator named).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence, get_type_hints

from adaptau_cli.base.console import info
from adaptau_cli.base.errors import AdaptauError, UserError
from adaptau_cli.base.files import ensure_dir, write_json, write_parquet, write_text
from adaptau_cli.base.settings import (
    PreprocessConfig,
    TrainConfig,
    from_dict,
    read_toml,
    run_config_toml,
    to_dict,
)

STUDY_DB = "study.db"
DEFAULT_STUDY = "adaptau"
OWNER_FILE = "tune.json"             # which study OUT's trial folders belong to
INSTALL_HINT = "pip install 'adaptau[tune]'"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
NOT_TUNABLE = {"threads": "how fast, not what is trained", "time_limit": "a budget, not a hyper-parameter"}
SPACE_SYNTAX = "write NAME=LOW:HIGH with :log and/or :int after it, e.g. lr=1e-4:1e-2:log or warmup_epochs=1:100:int"
# A setting that does nothing unless another one has this value: tuning it otherwise is wasted trials.
ONLY_WITH = {"tau": ("tau_mode", "fixed"), "tau_quantile": ("tau_baseline", "quantile"),
             "layers": ("model", "lightgcn")}
HEARTBEAT_SECONDS = 60               # a trial whose process died is marked FAIL after twice this without a beat


def require_optuna():
    """The optuna module, or a one-line UserError saying how to install the extra."""
    try:
        import optuna
    except ImportError:
        raise UserError("adaptau tune needs optuna, an optional extra", hint=INSTALL_HINT) from None
    return optuna


# ---------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Param:
    """One dimension of the search: a numeric TrainConfig field and its range."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: Any) -> float | int:
        """The trial's value of this field (Optuna records it as the trial's param ``name``)."""
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def text(self) -> str:
        flags = (":log" if self.log else "") + (":int" if self.integer else "")
        return f"{self.name}={self.low:g}:{self.high:g}{flags}"


def numeric_fields() -> dict[str, str]:
    """TrainConfig's numeric fields and their kind (``int`` / ``float``): what a space may range over."""
    kinds = {}
    for name, hint in get_type_hints(TrainConfig).items():
        text = str(hint).replace("typing.Optional[", "").replace(" | None", "").rstrip("]")
        if hint in (int, float) or text in ("int", "float", "<class 'int'>", "<class 'float'>"):
            kinds[name] = "int" if "int" in text else "float"
    return {k: v for k, v in kinds.items() if k not in NOT_TUNABLE}


def _number(text: Any, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {text!r} is not a number", hint=SPACE_SYNTAX) from None
    if isinstance(text, bool) or not math.isfinite(value):
        raise UserError(f"{where}: {text!r} is not a finite number", hint=SPACE_SYNTAX)
    return value


def make_param(name: str, low: Any, high: Any, log: bool = False, integer: bool = False,
               where: str | None = None) -> Param:
    """A checked Param: a tunable numeric field, a finite non-empty range, log only above 0, int ends whole."""
    where = where or f"--space {name}"
    kinds = numeric_fields()
    if name in NOT_TUNABLE:
        raise UserError(f"{where}: {name} is not tuned ({NOT_TUNABLE[name]})")
    if name not in kinds:
        raise UserError(f"{where}: {name!r} is not a numeric training setting",
                        hint=f"tunable: {', '.join(sorted(kinds))}")
    lo, hi = _number(low, where), _number(high, where)
    integer = bool(integer) or kinds[name] == "int"
    if not lo < hi:
        raise UserError(f"{where}: the range {lo:g}:{hi:g} is empty (LOW must be below HIGH)", hint=SPACE_SYNTAX)
    if log and lo <= 0:
        raise UserError(f"{where}: a log range needs LOW > 0, got {lo:g}", hint="drop :log or raise LOW")
    if integer and not (lo.is_integer() and hi.is_integer()):
        raise UserError(f"{where}: {name} takes integers, got {lo:g}:{hi:g}", hint=SPACE_SYNTAX)
    return Param(name, lo, hi, log=bool(log), integer=integer)


def parse_space_text(text: str, where: str | None = None) -> Param:
    """``NAME=LOW:HIGH[:log][:int]`` as a Param; UserError (one line) for anything else."""
    name, sep, spec = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise UserError(f"--space expects NAME=LOW:HIGH, got {text!r}", hint=SPACE_SYNTAX)
    return _param_from_spec(name, spec, where or f"--space {text}")


def _param_from_spec(name: str, spec: str, where: str) -> Param:
    parts = [p.strip() for p in spec.split(":")]
    flags = [p.lower() for p in parts[2:]]
    if len(parts) < 2 or any(f not in ("log", "int") for f in flags) or len(set(flags)) < len(flags):
        raise UserError(f"{where}: expected LOW:HIGH[:log][:int], got {spec!r}", hint=SPACE_SYNTAX)
    return make_param(name, parts[0], parts[1], log="log" in flags, integer="int" in flags, where=where)


def param_from_toml(name: str, value: Any, origin: str) -> Param:
    """A ``[tune.space]`` entry: ``"LOW:HIGH[:log][:int]"`` or ``{low = .., high = .., log = .., int = ..}``."""
    where = f"{origin}: [tune.space] {name}"
    if isinstance(value, str):
        return _param_from_spec(name, value, where)
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"low", "high", "log", "int"})
        if unknown or "low" not in value or "high" not in value:
            raise UserError(f"{where}: expected a table with low, high and optionally log, int",
                            hint=f'e.g. {name} = {{low = 1e-4, high = 1e-2, log = true}} or {name} = "1e-4:1e-2:log"')
        return make_param(name, value["low"], value["high"], bool(value.get("log")), bool(value.get("int")), where)
    raise UserError(f"{where}: expected \"LOW:HIGH[:log][:int]\" or a table, got {value!r}", hint=SPACE_SYNTAX)


def build_space(file_space: Mapping[str, Any] | None, flags: Sequence[str],
                origin: str = "config") -> tuple[Param, ...]:
    """The file's ``[tune.space]`` with the ``--space`` flags on top (same name: the flag wins)."""
    space = {name: param_from_toml(name, value, origin) for name, value in (file_space or {}).items()}
    for text in flags:
        param = parse_space_text(text)
        space[param.name] = param
    if not space:
        raise UserError("tune needs a search space", hint=f"{SPACE_SYNTAX} (or a [tune.space] table in --config)")
    return tuple(space.values())


def check_space(space: Sequence[Param], base: TrainConfig) -> None:
    """Both ends of every range must pass the trainer's checks (with the base settings), before any trial."""
    from adaptau_cli.engine.trainer import check_config

    for param in space:
        for end in (param.low, param.high):
            value = int(end) if param.integer else end
            try:
                check_config(apply_params(base, {param.name: value}))
            except UserError as exc:
                raise UserError(f"--space {param.text()}: {param.name} = {value:g} is refused: {exc.message}",
                                hint=exc.hint) from None


def space_notes(space: Sequence[Param], base: TrainConfig) -> list[str]:
    """Ranges that cannot change anything under the base settings (``tau`` without ``tau_mode = fixed`` ...)."""
    notes = []
    for param in space:
        if param.name in ONLY_WITH:
            other, wanted = ONLY_WITH[param.name]
            if getattr(base, other) != wanted:
                notes.append(f"{param.name} only acts with {other} = {wanted!r} (the base has "
                             f"{getattr(base, other)!r}): its trials will differ by noise only")
    return notes


def apply_params(base: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """``base`` with the trial's values, each coerced to its field's type (an int range on a float field ...)."""
    return from_dict(TrainConfig, {**to_dict(base), **params}, origin="tune")


# ---------------------------------------------------------------------------
# The settings of a search
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class TuneOptions:
    """``[tune]`` of the --config file and the tune flags (None: not given; flags win over the file)."""

    trials: int | None = None           # trials this process runs
    timeout: float | None = None        # minutes this process starts trials for
    study: str | None = None            # default DEFAULT_STUDY
    storage: str | None = None          # default sqlite:///OUT/study.db
    sampler: str | None = None          # tpe (default) | random
    seed: int | None = None             # the sampler's seed (default 2023)
    pruner: str | None = None           # median (default) | halving | none
    pruner_startup: int | None = None   # median: completed trials before any pruning (default 5)
    pruner_warmup: int | None = None    # epochs of each trial never pruned (default 0)
    space: dict[str, Any] | None = None  # [tune.space]


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """A checked search: the space, the budget, where the study lives, how trials are sampled and pruned."""

    space: tuple[Param, ...]
    trials: int | None = None
    timeout: float | None = None
    study: str = DEFAULT_STUDY
    storage: str | None = None
    sampler: str = "tpe"
    seed: int = 2023
    pruner: str = "median"
    pruner_startup: int = 5
    pruner_warmup: int = 0

    def storage_url(self, out: Path) -> str:
        return self.storage or f"sqlite:///{(Path(out) / STUDY_DB).resolve()}"


def tune_settings(config_file: str | Path | None, flags: Mapping[str, Any], space_flags: Sequence[str]) -> TuneSettings:
    """The search's settings: defaults < the file's ``[tune]`` < flags; the space merged name by name."""
    from adaptau_cli.base.settings import build

    has_table = config_file is not None and isinstance(read_toml(config_file).get("tune"), dict)
    opts = build(TuneOptions, config_file if has_table else None, "tune", flags)
    given = {k: v for k, v in dataclasses.asdict(opts).items() if v is not None and k != "space"}
    settings = TuneSettings(space=build_space(opts.space, space_flags, str(config_file)), **given)
    check_tune_settings(settings)
    return settings


def check_tune_settings(s: TuneSettings) -> None:
    """One readable line for a budget, sampler or pruner that cannot work."""
    if s.trials is None and s.timeout is None:
        raise UserError("tune needs a budget", hint="give --trials N and/or --timeout MINUTES")
    checks = [
        (s.trials is None or s.trials >= 0, f"--trials must be >= 0, got {s.trials}"),
        (s.timeout is None or (s.timeout > 0 and math.isfinite(s.timeout)),
         f"--timeout must be a positive number of minutes, got {s.timeout}"),
        (s.sampler in SAMPLERS, f"unknown sampler {s.sampler!r} (expected one of {', '.join(SAMPLERS)})"),
        (s.pruner in PRUNERS, f"unknown pruner {s.pruner!r} (expected one of {', '.join(PRUNERS)})"),
        (s.pruner_startup >= 0, f"--pruner-startup must be >= 0, got {s.pruner_startup}"),
        (s.pruner_warmup >= 0, f"--pruner-warmup must be >= 0, got {s.pruner_warmup}"),
        (0 <= s.seed < 2**32, f"--seed must be in [0, 2**32), got {s.seed}"),
        (bool(s.study.strip()), "--study must not be empty"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    names = [p.name for p in s.space]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"the space names a setting twice: {', '.join(twice)}")


def check_base(train_cfg: TrainConfig) -> None:
    """The base run must select on validation (the objective never reads test) and evaluate at least once."""
    if train_cfg.select_on != "valid":
        raise UserError("tune selects on the validation split; select_on = 'test' would tune on test",
                        hint="drop --select-on test (tune carves a validation split when the data has none)")
    if train_cfg.epochs < 1:
        raise UserError(f"each trial needs --epochs >= 1, got {train_cfg.epochs}")


# ---------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------

def redact(url: str) -> str:
    """A storage URL without its password (what files and messages show)."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


def claim_out(out: Path, settings: TuneSettings) -> None:
    """OUT's trial folders belong to one study: refuse another (its trial numbers would collide)."""
    import json

    owner = {"study": settings.study, "storage": redact(settings.storage) if settings.storage else None}
    path = out / OWNER_FILE
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        held = None
    if held is not None and (held.get("study"), held.get("storage")) != (owner["study"], owner["storage"]):
        where = held.get("storage") or f"{out / STUDY_DB}"
        raise UserError(f"{out} holds the trials of study {held.get('study')!r} on {where}",
                        hint="use another --out for another study, or the same --study and --storage to continue")
    if held is None:
        write_json(path, owner)


def open_storage(optuna: Any, url: str, attempts: int = 6) -> Any:
    """The RDB storage: a heartbeat marks the trials of a dead process FAIL; SQLite waits for its lock.

    Processes started together on a fresh database all create its tables and
    stamp its schema version: the losers get a database error (measured: 7 of
    20 processes, four at a time, on SQLite) and simply open it again. Any other
    failure (a bad URL, a missing driver) is one line at once.
    """
    from sqlalchemy.exc import DBAPIError

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=2 * HEARTBEAT_SECONDS)
        except DBAPIError as exc:
            if attempt == attempts - 1:
                raise _storage_error(url, exc) from None
            time.sleep(0.2 * (attempt + 1))
        except Exception as exc:  # noqa: BLE001 - sqlalchemy's URL and driver errors, optuna's schema checks
            raise _storage_error(url, exc) from None
    raise AssertionError("unreachable")


def _storage_error(url: str, exc: Exception) -> UserError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return UserError(f"cannot open the study storage {redact(url)}: {type(exc).__name__}: {first}",
                     hint="check --storage (e.g. postgresql://user:pass@host/db; its driver installed)")


def make_sampler(optuna: Any, settings: TuneSettings, n_existing: int) -> Any:
    """The seeded sampler of this process.

    Its seed mixes ``--seed`` with the trials already in the study: a rerun
    continuing a study must not draw the same start-up points again (the
    first trials are random draws from the seed), yet the same command on
    the same study draws the same.
    """
    import numpy as np

    seed = int(np.random.SeedSequence([settings.seed, n_existing]).generate_state(1)[0])
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(optuna: Any, settings: TuneSettings) -> Any:
    """median / halving / none; ``pruner_warmup`` epochs of every trial are never pruned."""
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.pruner_warmup + 1 if settings.pruner_warmup else "auto")
    return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup,
                                       n_warmup_steps=settings.pruner_warmup + 1)   # steps are epochs, from 1


def open_study(optuna: Any, settings: TuneSettings, out: Path) -> Any:
    """Create or load the study (maximizing the monitored metric) with this process's sampler and pruner."""
    storage = open_storage(optuna, settings.storage_url(out))
    try:
        n_existing = len(storage.get_all_trials(storage.get_study_id_from_name(settings.study), deepcopy=False))
    except KeyError:                                   # a new study
        n_existing = 0
    study = optuna.create_study(storage=storage, study_name=settings.study, direction="maximize",
                                load_if_exists=True, sampler=make_sampler(optuna, settings, n_existing),
                                pruner=make_pruner(optuna, settings))
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"study {settings.study!r} minimizes; adaptau tune maximizes a ranking metric",
                        hint="use another --study")
    return study


STUDY_BASE_ATTR = "adaptau_base"
RUNTIME_FIELDS = ("threads", "device", "time_limit")   # how a trial runs, not what it computes: may differ


def base_record(plan: "TunePlan") -> dict[str, Any]:
    """What every trial of a study must share: the dataset and the untuned settings (JSON-plain)."""
    import json

    tuned = {p.name for p in plan.settings.space}
    train = {k: v for k, v in to_dict(plan.train_cfg).items() if k not in tuned and k not in RUNTIME_FIELDS}
    return json.loads(json.dumps({"dataset_fingerprint": plan.dataset.fingerprint, "train": train}))


def check_study_base(study: Any, plan: "TunePlan") -> None:
    """Record the study's base settings on first use; refuse a process whose base differs.

    Trials are only comparable on one dataset with one set of untuned settings: a
    second machine started with other epochs (or data) would mix in values that
    say nothing about the parameters.
    """
    mine, held = base_record(plan), study.user_attrs.get(STUDY_BASE_ATTR)
    if held is None:
        study.set_user_attr(STUDY_BASE_ATTR, mine)
        return
    if held["dataset_fingerprint"] != mine["dataset_fingerprint"]:
        raise UserError(f"study {plan.settings.study!r} was run on another dataset "
                        f"(fingerprint {held['dataset_fingerprint']}, this one {mine['dataset_fingerprint']})",
                        hint="use the study's dataset options, or another --study")
    changed = sorted(k for k in set(held["train"]) | set(mine["train"])
                     if held["train"].get(k) != mine["train"].get(k))
    if changed:
        what = ", ".join(f"{k} was {held['train'].get(k)!r}, now {mine['train'].get(k)!r}" for k in changed[:4])
        raise UserError(f"study {plan.settings.study!r} has other base settings: {what}",
                        hint="give the settings the study was started with, or another --study")


# ---------------------------------------------------------------------------
# One trial
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class TunePlan:
    """What every trial shares: the base settings, the prepared dataset, the space and OUT."""

    out: Path
    data_cfg: PreprocessConfig
    train_cfg: TrainConfig
    dataset: Any                       # PreparedDataset, prepared once for all trials
    settings: TuneSettings

    @property
    def column(self) -> str:
        """The history column the trials report and are pruned on (validation, never test)."""
        return f"valid_{self.train_cfg.monitor}"


def trial_dir(out: Path, number: int) -> Path:
    return Path(out) / "trials" / str(number)


def pruning_callback(optuna: Any, trial: Any, column: str):
    """``on_epoch`` for a trial: report the monitored value at each evaluation; prune when the pruner says so.

    The exception ends ``train`` after that epoch's checkpoint: the run directory stays whole and resumable.
    """
    def on_epoch(row: dict[str, Any]) -> None:
        value = row.get(column)
        if value is None or not math.isfinite(float(value)):
            return                                     # not an evaluation epoch (--eval-every)
        epoch = int(row["epoch"])
        trial.report(float(value), step=epoch)
        if trial.should_prune():
            trial.set_user_attr("pruned_at_epoch", epoch)
            raise optuna.TrialPruned(f"pruned after epoch {epoch} ({column} {float(value):.4f})")
    return on_epoch


def run_trial(optuna: Any, trial: Any, plan: TunePlan) -> float:
    """Train the trial's run; its best validation value of the monitored metric (NaN: it failed, see ``error``)."""
    from adaptau_cli.engine.trainer import check_config, train

    run_dir = trial_dir(plan.out, trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    try:
        cfg = check_config(apply_params(plan.train_cfg, {p.name: p.suggest(trial) for p in plan.settings.space}))
        result = train(cfg, plan.data_cfg, plan.dataset, run_dir, quiet=True,
                       on_epoch=pruning_callback(optuna, trial, plan.column))
    except AdaptauError as exc:                  # diverged, refused settings: this trial fails, the study goes on
        trial.set_user_attr("error", exc.one_line())
        return float("nan")
    trial.set_user_attr("best_epoch", result.best_epoch)
    best = result.report.get("best_value")
    return float(best) if best is not None else float("nan")


def trial_line(study: Any, trial: Any, monitor: str) -> str:
    """One status line per finished trial (with the values it tried)."""
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    state = trial.state.name.lower()
    if state == "complete":
        what = f"valid {monitor} {trial.value:.4f}"
    elif state == "pruned":
        what = f"pruned after epoch {trial.user_attrs.get('pruned_at_epoch', trial.last_step)}"
    else:
        what = f"failed: {trial.user_attrs.get('error', 'see the log')}"
    try:
        best = f" (best: trial {study.best_trial.number}, {study.best_value:.4f})"
    except ValueError:
        best = ""
    return f"trial {trial.number}: {what}{best}  {params}"


# ---------------------------------------------------------------------------
# The outputs
# ---------------------------------------------------------------------------

def trials_frame(study: Any):
    """Every trial of the study: number, state, value, duration, its params (``params_<name>``), run dir."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = t.duration.total_seconds() if t.duration is not None else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "duration_s": duration,
                     "datetime_start": t.datetime_start, "datetime_complete": t.datetime_complete,
                     "last_epoch": t.last_step, "run_dir": t.user_attrs.get("run_dir"),
                     "error": t.user_attrs.get("error"),
                     **{f"params_{k}": v for k, v in t.params.items()}})
    return pd.DataFrame(rows)


def complete_trials(optuna: Any, study: Any) -> list[Any]:
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]


def best_toml(plan: TunePlan, best: Any) -> str:
    """``[dataset]`` + ``[train]``: the base run with the best trial's values (``adaptau train --config`` takes it)."""
    cfg = apply_params(plan.train_cfg, best.params)
    header = (f"# adaptau tune: study {plan.settings.study!r}, best trial {best.number}: "
              f"valid {plan.train_cfg.monitor} = {best.value:.6g}\n"
              f"# tuned: {', '.join(f'{k} = {v!r}' for k, v in best.params.items())}\n")
    return header + run_config_toml(plan.data_cfg, cfg)


def plot_history(frame, monitor: str):
    """The optimisation history: each trial's value (pruned: its last report) and the best so far."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.add_subplot()
    for state, marker, label in (("COMPLETE", "o", "complete"), ("PRUNED", "x", "pruned (last report)")):
        part = frame[(frame["state"] == state) & frame["value"].notna()]
        if len(part):
            ax.scatter(part["number"], part["value"], marker=marker, label=label, alpha=0.8)
    ordered = frame.sort_values("number")
    best = ordered["value"].where(ordered["state"] == "COMPLETE").cummax()     # NaN until the first completion
    if best.notna().any():
        ax.step(ordered["number"], best, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"valid {monitor}")
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no trial has a value yet (all failed or running)", ha="center", transform=ax.transAxes)
    return fig


def importance_evaluator(optuna: Any) -> tuple[Any, str]:
    """PED-ANOVA where Optuna has it (3.6+; numpy only), else fANOVA (needs scikit-learn)."""
    if hasattr(optuna.importance, "PedAnovaImportanceEvaluator"):
        return optuna.importance.PedAnovaImportanceEvaluator(), "PedAnovaImportanceEvaluator"
    return optuna.importance.FanovaImportanceEvaluator(seed=0), "FanovaImportanceEvaluator"


def param_importances(optuna: Any, study: Any, n_complete: int) -> dict[str, Any]:
    """``optuna.importance.get_param_importances`` over the completed trials, or why there are none."""
    evaluator, name = importance_evaluator(optuna)
    out: dict[str, Any] = {"evaluator": f"optuna.importance.{name}", "completed_trials": n_complete,
                           "importances": {}, "note": None}
    if n_complete < 2:
        out["note"] = f"needs at least 2 completed trials, the study has {n_complete}"
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["importances"] = {k: float(v) for k, v in
                                  optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
    except ImportError as exc:
        out["note"] = f"{name} needs a package that is missing ({exc}); pip install scikit-learn"
    except (RuntimeError, ValueError) as exc:
        out["note"] = f"{name} could not assess this study: {exc}"
    return out


def importance_md(result: Mapping[str, Any], study_name: str) -> str:
    lines = [f"# Parameter importances: study {study_name}", "",
             f"- evaluator: `{result['evaluator']}`", f"- completed trials: {result['completed_trials']}", ""]
    if result["importances"]:
        lines += ["| parameter | importance |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in sorted(result["importances"].items(), key=lambda kv: -kv[1])]
        lines += ["", "_Importances sum to 1; they rank how much of the objective's spread each parameter "
                      "explains over the completed trials._"]
    else:
        lines.append(f"_No importances: {result['note']}._")
    return "\n".join(lines) + "\n"


def write_outputs(optuna: Any, study: Any, plan: TunePlan) -> dict[str, Any]:
    """best.toml, trials.parquet, history.png and importance.json|md from the whole study (atomic files)."""
    from adaptau_cli.workflows.plots import save_figure

    out = plan.out
    frame = trials_frame(study)
    written: dict[str, Any] = {"trials": str(write_parquet(out / "trials.parquet", frame))}
    done = complete_trials(optuna, study)
    if done:
        best = max(done, key=lambda t: t.value)
        written["best_toml"] = str(write_text(out / "best.toml", best_toml(plan, best)))
    if len(frame):
        written["history_png"] = str(save_figure(plot_history(frame, plan.train_cfg.monitor), out / "history.png"))
    importance = param_importances(optuna, study, len(done))
    written["importance_json"] = str(write_json(out / "importance.json", importance))
    written["importance_md"] = str(write_text(out / "importance.md", importance_md(importance, plan.settings.study)))
    return {"files": written, "importance": importance}


# ---------------------------------------------------------------------------
# The whole search
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class TuneResult:
    """What the search found; ``to_dict()`` is the ``--json`` payload."""

    out: Path
    study: str
    storage: str
    monitor: str
    ran: int                                 # trials this process ran
    counts: dict[str, int]                   # the study's trials per state
    best: dict[str, Any] | None
    outputs: dict[str, Any]
    importance: dict[str, Any]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "study": self.study, "storage": self.storage, "monitor": self.monitor,
                "objective": f"best valid {self.monitor} of the trial's run", "ran": self.ran,
                "trials": self.counts, "best": self.best, "outputs": self.outputs,
                "importance": self.importance, "notes": self.notes}


def plan_search(settings: TuneSettings, train_cfg: TrainConfig, data_cfg: PreprocessConfig, out: str | Path,
                quiet: bool) -> TunePlan:
    """Check everything, claim OUT and prepare the dataset once: every refusal comes before any trial."""
    from adaptau_cli.engine.trainer import check_config
    from adaptau_cli.workflows.training import dataset_for_training

    train_cfg = check_config(train_cfg)
    check_base(train_cfg)
    check_space(settings.space, train_cfg)
    out = ensure_dir(out, "tune output folder")
    claim_out(out, settings)
    data_cfg, dataset = dataset_for_training(data_cfg, train_cfg, quiet)
    return TunePlan(out=out, data_cfg=data_cfg, train_cfg=train_cfg, dataset=dataset, settings=settings)


def tune(settings: TuneSettings, train_cfg: TrainConfig, data_cfg: PreprocessConfig, out: str | Path,
         quiet: bool = True) -> TuneResult:
    """Run this process's budget of trials on the (shared) study, then write the outputs from the whole study."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    plan = plan_search(settings, train_cfg, data_cfg, out, quiet)
    notes = space_notes(settings.space, plan.train_cfg)
    for note in notes:
        info(f"[yellow]note:[/] {note}", quiet)
    study = open_study(optuna, settings, plan.out)
    check_study_base(study, plan)
    info("study {study} on {storage}: {n} trials so far; {budget}", quiet, study=settings.study,
         storage=redact(settings.storage_url(plan.out)), n=len(study.get_trials(deepcopy=False)),
         budget=_budget_text(settings))
    ran: list[int] = []                                # this process's trials (other processes add theirs)

    def after_trial(s: Any, t: Any) -> None:
        ran.append(t.number)
        info("{line}", quiet, line=trial_line(s, t, plan.train_cfg.monitor))

    if settings.trials != 0:
        study.optimize(lambda trial: run_trial(optuna, trial, plan), n_trials=settings.trials,
                       timeout=settings.timeout * 60 if settings.timeout else None, gc_after_trial=True,
                       callbacks=[after_trial])
    written = write_outputs(optuna, study, plan)
    all_trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in all_trials) for state in optuna.trial.TrialState}
    done = complete_trials(optuna, study)
    best = max(done, key=lambda t: t.value) if done else None
    return TuneResult(out=plan.out, study=settings.study, storage=redact(settings.storage_url(plan.out)),
                      monitor=plan.train_cfg.monitor, ran=len(ran),
                      counts={"total": len(all_trials), **{k: v for k, v in counts.items() if v}},
                      best=None if best is None else {"number": best.number, "value": best.value,
                                                      "params": dict(best.params),
                                                      "run_dir": best.user_attrs.get("run_dir")},
                      outputs=written["files"], importance=written["importance"], notes=notes)


def _budget_text(settings: TuneSettings) -> str:
    parts = [f"{settings.trials} more trials" if settings.trials is not None else "",
             f"{settings.timeout:g} min of new trials" if settings.timeout else ""]
    text = " or ".join(p for p in parts if p)
    return f"running {text}" + (" (whichever ends first)" if all(parts) else "")
