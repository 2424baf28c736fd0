"""`adaptau train` as one workflow: prepare the data the run needs, then train.

Why a workflow above the trainer: the honest protocol should be the easy one.
A dataset that comes with only train and test files (the LightGCN splits:
Yelp2018, Gowalla, Amazon-Book, the paper's ML-1M) has nothing to select an
epoch on; instead of stopping with an error, a seeded validation split of
``AUTO_VALID_RATIO`` of each user's training items is carved out (the split
seed decides which), announced in one line, and recorded where a user looks:
the dataset's manifest (its ``valid_ratio`` option) and the run's config.toml
and report. ``--select-on test`` (the published protocol) keeps the full train.

Workflows that train many runs into folders of their own (``compare``,
``sweep``) ask ``run_state`` whether a folder's run is new, finished (reuse
it) or interrupted (resume it), so that a rerun costs only what is missing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from adaptau_cli.base.console import info
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, to_dict
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.data.prepare import prepare_dataset
from adaptau_cli.engine import checkpoint
from adaptau_cli.engine.distributed import is_worker
from adaptau_cli.engine.rundir import RunTarget
from adaptau_cli.engine.tracking import check_backends, open_trackers, parse_backends
from adaptau_cli.engine.trainer import RESUME_MAY_CHANGE, TrainResult, check_config, train

AUTO_VALID_RATIO = 0.1


def dataset_for_training(data_cfg: PreprocessConfig, train_cfg: TrainConfig,
                         quiet: bool = True) -> tuple[PreprocessConfig, PreparedDataset]:
    """The dataset a run of ``train_cfg`` trains on, with a validation split carved out when it needs one."""
    dataset = prepare_dataset(data_cfg, quiet=quiet)
    wants_valid = train_cfg.select_on == "valid"
    given = (dataset.manifest.get("options") or {}).get("split") == "given"
    if wants_valid and len(dataset.split("valid")) == 0 and given and not data_cfg.valid_ratio:
        data_cfg = dataclasses.replace(data_cfg, valid_ratio=AUTO_VALID_RATIO)
        info(f"{dataset.name} has no validation split: carving {AUTO_VALID_RATIO:.0%} of each user's training "
             f"items out for epoch selection (split seed {data_cfg.seed}; --select-on test keeps the full "
             "train, the published protocol)", quiet)
        dataset = prepare_dataset(data_cfg, quiet=quiet)
    return data_cfg, dataset


def train_run(train_cfg: TrainConfig, data_cfg: PreprocessConfig, out: str | Path, resume: bool = False,
              quiet: bool = True, log_to: Sequence[str] = (), mlflow_uri: str | None = None) -> TrainResult:
    """Prepare (or reuse) the dataset, carve a validation split if selection needs one, and train.

    ``log_to``: tracking backends (``engine.tracking``: tensorboard, mlflow) that log every epoch;
    a missing package is refused before the data is prepared.
    """
    log_to = parse_backends(log_to)
    check_backends(log_to, mlflow_uri)
    if is_worker():                      # rank 0 of a torchrun group logs for the group
        log_to = ()
    data_cfg, dataset = dataset_for_training(data_cfg, train_cfg, quiet)   # train() checks the settings
    with open_trackers(log_to, out, train_cfg, data_cfg, resume, mlflow_uri) as trackers:
        return train(train_cfg, data_cfg, dataset, out, resume=resume, quiet=quiet, on_epoch=trackers.callback)


def train_target(target: RunTarget, train_cfg: TrainConfig, data_cfg: PreprocessConfig,
                 quiet: bool = False, log_to: Sequence[str] = (), mlflow_uri: str | None = None) -> TrainResult:
    """``adaptau train``: check the settings, then ``train_run`` into the target's run directory."""
    train_cfg = check_config(train_cfg)
    return train_run(train_cfg, data_cfg, target.run_dir(data_cfg, train_cfg), resume=target.resume, quiet=quiet,
                     log_to=log_to, mlflow_uri=mlflow_uri)


# ---------------------------------------------------------------------------
# A run folder's state: new, finished (reuse) or interrupted (resume)
# ---------------------------------------------------------------------------

def read_report(run_dir: Path) -> dict[str, Any] | None:
    """The run's report.json, or None when it is missing or half written (the run did not finish)."""
    try:
        return json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def refuse_other_settings(run_dir: Path, recorded: Mapping[str, Any], train_cfg: TrainConfig) -> None:
    """UserError when a run folder holds a run of other settings than the config asks for now.

    What a resumed run may change (epochs, threads, device, time limit,
    patience) is not counted: the same run continues under them.
    """
    wanted = to_dict(train_cfg)
    changed = sorted(k for k in recorded if k in wanted and k not in RESUME_MAY_CHANGE and recorded[k] != wanted[k])
    if changed:
        what = ", ".join(f"{k} was {recorded[k]!r}, now {wanted[k]!r}" for k in changed)
        raise UserError(f"{run_dir} holds a run of other settings: {what}",
                        hint="remove that folder, or choose another --out")


def run_state(run_dir: Path, train_cfg: TrainConfig, fingerprint: str) -> str:
    """``new`` (nothing to continue), ``finished`` (reuse it) or ``interrupted`` (resume it).

    Finished: a report that was not cut by a time limit, from a run that
    stopped early or reached the epochs asked for. A killed run has a last
    checkpoint and no (or an older) report: it is resumed, and the trainer
    checks that its settings and dataset are the ones asked for.
    """
    if not (run_dir / checkpoint.LAST).is_file():
        return "new"
    report = read_report(run_dir)
    if report is None:
        return "interrupted"
    refuse_other_settings(run_dir, report.get("train_config") or {}, train_cfg)
    done = not report.get("time_limited") and (report.get("stopped_early")
                                               or int(report.get("epochs_run", 0)) >= train_cfg.epochs)
    if done and (report.get("dataset") or {}).get("fingerprint") != fingerprint:
        raise UserError(f"{run_dir} was trained on another dataset than the config gives now",
                        hint="remove that folder, or choose another --out")
    return "finished" if done else "interrupted"
