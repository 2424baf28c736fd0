"""The honest path is the easy one: a given train/test split gets a seeded validation split carved out."""

from __future__ import annotations

import numpy as np

from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
from adaptau_cli.workflows.training import AUTO_VALID_RATIO, train_run


def lightgcn_folder(root):
    """A LightGCN train/test folder without valid.txt (as Yelp2018 and the paper's ML-1M come)."""
    rng = np.random.default_rng(0)
    root.mkdir()
    with open(root / "train.txt", "w") as tr, open(root / "test.txt", "w") as te:
        for u in range(60):
            items = rng.choice(40, size=12, replace=False)
            tr.write(" ".join(map(str, [u, *items[:10]])) + "\n")
            te.write(" ".join(map(str, [u, *items[10:]])) + "\n")
    return root


def quick(**kw):
    return TrainConfig(**{**dict(epochs=2, batch_size=128, num_negatives=16, threads=1, ks=(10, 20), seed=3), **kw})


def test_a_given_split_without_validation_gets_one_carved_and_recorded(tmp_path, capsys):
    src = lightgcn_folder(tmp_path / "data")
    result = train_run(quick(), PreprocessConfig(source=str(src)), tmp_path / "run", quiet=False)
    assert result.selection == "valid" and result.valid_metrics
    assert result.report["data_config"]["valid_ratio"] == AUTO_VALID_RATIO
    assert f"valid_ratio = {AUTO_VALID_RATIO}" in (tmp_path / "run" / "config.toml").read_text()
    assert "has no validation split: carving 10%" in capsys.readouterr().err
    # the carve is seeded: a second run on the same data selects on the very same validation items
    again = train_run(quick(), PreprocessConfig(source=str(src)), tmp_path / "run2")
    assert again.report["dataset"] == result.report["dataset"]


def test_the_published_protocol_keeps_the_full_train(tmp_path):
    src = lightgcn_folder(tmp_path / "data")
    result = train_run(quick(select_on="test"), PreprocessConfig(source=str(src)), tmp_path / "run")
    assert result.report["data_config"]["valid_ratio"] == 0.0 and result.report["dataset"]["valid"] == 0
    assert result.report["dataset"]["train"] == 600
