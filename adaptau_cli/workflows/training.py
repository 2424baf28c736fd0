"""`adaptau train` as one workflow: prepare the data the run needs, then train.

Why a workflow above the trainer: the honest protocol should be the easy one.
A dataset that comes with only train and test files (the LightGCN splits:
Yelp2018, Gowalla, Amazon-Book, the paper's ML-1M) has nothing to select an
epoch on; instead of stopping with an error, a seeded validation split of
``AUTO_VALID_RATIO`` of each user's training items is carved out (the split
seed decides which), announced in one line, and recorded where a user looks:
the dataset's manifest (its ``valid_ratio`` option) and the run's config.toml
and report. ``--select-on test`` (the published protocol) keeps the full train.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from adaptau_cli.base.console import info
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.data.prepare import prepare_dataset
from adaptau_cli.engine.rundir import RunTarget
from adaptau_cli.engine.trainer import TrainResult, check_config, train

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
              quiet: bool = True) -> TrainResult:
    """Prepare (or reuse) the dataset, carve a validation split if selection needs one, and train."""
    data_cfg, dataset = dataset_for_training(data_cfg, train_cfg, quiet)   # train() checks the settings
    return train(train_cfg, data_cfg, dataset, out, resume=resume, quiet=quiet)


def train_target(target: RunTarget, train_cfg: TrainConfig, data_cfg: PreprocessConfig,
                 quiet: bool = False) -> TrainResult:
    """``adaptau train``: check the settings, then ``train_run`` into the target's run directory."""
    train_cfg = check_config(train_cfg)
    return train_run(train_cfg, data_cfg, target.run_dir(data_cfg, train_cfg), resume=target.resume, quiet=quiet)
