"""Per-epoch experiment tracking: ``adaptau train --log-to tensorboard`` and/or ``--log-to mlflow``.

Why a tracker is a callback: the trainer already hands every epoch's history
row to ``train(..., on_epoch=...)`` once the epoch is checkpointed, so a
tracker needs no hook of its own and sees exactly what ``history.parquet``
records (loss, τ0, the τ_u quantiles, the metrics, the item norm per
popularity group, the timings): every number of the row, flags as 0/1, the
epoch as the step. The run's settings are logged once, as hyper-parameters.

Both backends are optional extras, imported only when asked for
(``check_backends`` says what to install, in one line, before any data is
read or any epoch trained):

- ``tensorboard``: ``torch.utils.tensorboard.SummaryWriter`` (needs the
  ``tensorboard`` package) writing under ``RUN/tensorboard/``; the settings as
  the HParams plugin's session and as a ``config`` text.
- ``mlflow``: ``MlflowClient`` (``mlflow-skinny`` is enough) with the tracking
  URI given, by default a local ``file:`` store under ``RUN/mlruns`` (never the
  network); the run id is kept in ``RUN/mlflow.json`` so a resumed run logs on.

Nothing is written before the first epoch: a run the trainer refuses (the
folder already holds one, bad settings) leaves no logs behind. A resumed run
continues the same logs, step = epoch (TensorBoard purges any step logged past
the checkpoint; a backend that had no logs yet is filled in from
``history.parquet`` first).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from adaptau_cli.base import files as io
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, run_config_toml, to_dict

BACKENDS = ("tensorboard", "mlflow")
INSTALL_HINTS = {"tensorboard": "pip install 'adaptau[tensorboard]'", "mlflow": "pip install 'adaptau[mlflow]'"}
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"
MLFLOW_RUN_FILE = "mlflow.json"
MLFLOW_EXPERIMENT = "adaptau"
PARAM_LIMIT = 500            # the shortest param value every MLflow version stores (2.x: 500, 3.x: 6000)


# ---------------------------------------------------------------------------
# What to log
# ---------------------------------------------------------------------------

def parse_backends(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--log-to`` values (repeated and/or comma-separated) as distinct backend names, in order."""
    names = [v.strip().lower() for value in values or () for v in str(value).split(",") if v.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise UserError(f"unknown --log-to {unknown[0]!r} (expected one of {', '.join(BACKENDS)})")
    return tuple(dict.fromkeys(names))


def check_backends(backends: Sequence[str], mlflow_uri: str | None = None) -> None:
    """UserError with the pip line when a backend's package is missing (or --mlflow-uri has no mlflow).

    Called before the data is prepared: a missing extra must not cost a download and a failed run.
    """
    if mlflow_uri is not None and "mlflow" not in backends:
        raise UserError("--mlflow-uri needs --log-to mlflow")
    for name in backends:
        try:
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (imports tensorboard)
            else:
                from mlflow.tracking import MlflowClient  # noqa: F401
        except ImportError:
            raise UserError(f"--log-to {name} needs the {name} package", hint=INSTALL_HINTS[name]) from None


def metric_key(column: str) -> str:
    """The name a history column is logged under: ``valid_recall@20`` -> ``valid_recall_at_20``.

    MLflow refuses ``@`` in a metric name; both backends use the same names so they read alike.
    """
    return column.replace("@", "_at_")


def epoch_numbers(row: Mapping[str, Any]) -> dict[str, float]:
    """Every number of a history row (flags as 0/1) but the epoch, keyed by ``metric_key``.

    NaN is left out: it marks a metric not computed that epoch (``--eval-every``), not a value.
    """
    out = {}
    for column, value in row.items():
        if column == "epoch" or isinstance(value, str) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[metric_key(column)] = number
    return out


def run_params(train_cfg: TrainConfig, data_cfg: PreprocessConfig) -> dict[str, Any]:
    """The run's settings as flat hyper-parameters: ``[train]`` keys as they are, ``[dataset]`` ones as ``dataset.x``.

    Lists become text and None is dropped: both backends take only scalars.
    """
    flat = {**to_dict(train_cfg), **{f"dataset.{k}": v for k, v in to_dict(data_cfg).items()}}
    return {k: (str(v) if isinstance(v, (list, tuple)) else v) for k, v in flat.items() if v is not None}


# ---------------------------------------------------------------------------
# The backends
# ---------------------------------------------------------------------------

class TensorBoardTracker:
    """Scalars per epoch in ``RUN/tensorboard/`` (one events file per invocation; TensorBoard reads them all)."""

    name = "tensorboard"

    def __init__(self, run_dir: Path):
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer: Any = None

    def start(self, params: Mapping[str, Any], config_text: str, first_epoch: int, resume: bool) -> bool:
        """Open the writer; True when it continues earlier logs (then the settings were logged already).

        On resume ``purge_step`` drops anything logged past the checkpoint, so a step is never logged twice.
        """
        from torch.utils.tensorboard import SummaryWriter

        continuing = resume and self.log_dir.is_dir() and any(self.log_dir.glob("events.out.tfevents.*"))
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=first_epoch if continuing else None)
        if not continuing:
            self._log_settings(params, config_text)
        return continuing

    def _log_settings(self, params: Mapping[str, Any], config_text: str) -> None:
        """The settings as an HParams session (in this run's own folder) and as the config.toml text."""
        from torch.utils.tensorboard.summary import hparams

        monitor = metric_key(f"{params.get('select_on', 'valid')}_{params.get('monitor', 'recall@20')}")
        for summary in hparams(dict(params), {monitor: 0.0}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "```toml\n" + config_text + "```", 0)

    def log_epoch(self, epoch: int, numbers: Mapping[str, float]) -> None:
        for key, value in numbers.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()          # an epoch is minutes of work: a killed run keeps its logs up to its checkpoint

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowTracker:
    """Metrics per epoch in one MLflow run, params once; the run id kept in ``RUN/mlflow.json``."""

    name = "mlflow"

    def __init__(self, run_dir: Path, uri: str | None):
        self.run_dir = Path(run_dir)
        self.uri = uri or (self.run_dir / MLFLOW_DIR).resolve().as_uri()
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, params: Mapping[str, Any], config_text: str, first_epoch: int, resume: bool) -> bool:
        """Continue the run of ``RUN/mlflow.json`` when resuming on the same URI, else start one; True = continued."""
        if self.uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode and refuses it unless this is set;
            # a local file store next to the run is the point here (no server, no network).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        self.run_id = self._previous_run() if resume else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return True
        experiment = self._experiment_id()
        run = self.client.create_run(experiment, run_name=self.run_dir.name,
                                     tags={"adaptau.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        io.write_json(self.run_dir / MLFLOW_RUN_FILE, {"tracking_uri": self.uri, "experiment_id": experiment,
                                                       "run_id": self.run_id})
        self._log_settings(params, config_text)
        return False

    def _previous_run(self) -> str | None:
        """The run id this run directory logged to before, if it was on this tracking URI and still exists."""
        import json

        try:
            saved = json.loads((self.run_dir / MLFLOW_RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("tracking_uri") != self.uri:
            return None
        try:
            return self.client.get_run(saved["run_id"]).info.run_id
        except Exception:  # noqa: BLE001 - a deleted run or another store: start a new one
            return None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(MLFLOW_EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(MLFLOW_EXPERIMENT)
        except Exception:  # noqa: BLE001 - another process created it meanwhile
            return self.client.get_experiment_by_name(MLFLOW_EXPERIMENT).experiment_id

    def _log_settings(self, params: Mapping[str, Any], config_text: str) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in params.items()]
        for start in range(0, len(items), 100):          # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=items[start:start + 100])
        self.client.log_text(self.run_id, config_text, "config.toml")

    def log_epoch(self, epoch: int, numbers: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, epoch) for k, v in numbers.items()])

    def close(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


# ---------------------------------------------------------------------------
# All of them, as one on_epoch callback
# ---------------------------------------------------------------------------

class Trackers:
    """The asked-for trackers as one ``on_epoch`` callback and a context that closes them with the run's status.

    The backends start on the first epoch, after the trainer accepted the run
    directory, so a refused run writes no logs.
    """

    def __init__(self, trackers: Sequence[Any], run_dir: Path, params: Mapping[str, Any], config_text: str,
                 resume: bool):
        self.trackers, self.run_dir, self.params = list(trackers), Path(run_dir), dict(params)
        self.config_text, self.resume, self.started = config_text, resume, False

    @property
    def callback(self) -> Callable[[dict[str, Any]], None] | None:
        """What to pass as ``train(on_epoch=...)``: None when nothing is tracked."""
        return self if self.trackers else None

    def __call__(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        if not self.started:
            self._start(epoch)
        numbers = epoch_numbers(row)
        for tracker in self.trackers:
            tracker.log_epoch(epoch, numbers)

    def _start(self, first_epoch: int) -> None:
        """Start every backend; one with no earlier logs of a resumed run gets its earlier epochs first."""
        self.started = True
        earlier = self._earlier_rows(first_epoch) if self.resume else []
        for tracker in self.trackers:
            continuing = tracker.start(self.params, self.config_text, first_epoch, self.resume)
            if not continuing:
                for row in earlier:
                    tracker.log_epoch(int(row["epoch"]), epoch_numbers(row))

    def _earlier_rows(self, first_epoch: int) -> list[dict[str, Any]]:
        """History rows before ``first_epoch`` (what the run did before this invocation)."""
        import pandas as pd

        path = self.run_dir / "history.parquet"
        if not path.is_file():
            return []
        frame = pd.read_parquet(path)
        return [row for row in frame.to_dict("records") if int(row["epoch"]) < first_epoch]

    def __enter__(self) -> "Trackers":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FINISHED" if exc_type is None else "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        for tracker in self.trackers:
            tracker.close(status)


def open_trackers(backends: Sequence[str], run_dir: str | Path, train_cfg: TrainConfig,
                  data_cfg: PreprocessConfig, resume: bool = False, mlflow_uri: str | None = None) -> Trackers:
    """The trackers ``--log-to`` asks for (checked: a missing package is a UserError), not started yet."""
    backends = parse_backends(backends)
    check_backends(backends, mlflow_uri)
    run_dir = Path(run_dir)
    made = [TensorBoardTracker(run_dir) if name == "tensorboard" else MlflowTracker(run_dir, mlflow_uri)
            for name in backends]
    config_text = run_config_toml(data_cfg, train_cfg)
    return Trackers(made, run_dir, run_params(train_cfg, data_cfg), config_text, resume)
