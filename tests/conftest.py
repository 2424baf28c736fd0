"""Shared fixtures: an isolated store root, the read-only real datasets, tiny in-memory data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from adaptau_cli.data.dataset import PreparedDataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own ADAPTAU_HOME so nothing touches the user's cache."""
    home = tmp_path_factory.mktemp("adaptau_home")
    monkeypatch.setenv("ADAPTAU_HOME", str(home))
    monkeypatch.delenv("ADAPTAU_MIRROR", raising=False)
    return home


@pytest.fixture
def adaptau_home() -> Path:
    return Path(os.environ["ADAPTAU_HOME"])


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The built-in synthetic-tiny sample (300 users x 200 items) in a store of its own, prepared once per module."""
    from adaptau_cli.base.settings import PreprocessConfig
    from adaptau_cli.data.prepare import prepare_dataset

    cfg = PreprocessConfig(dataset="synthetic-tiny", home=str(tmp_path_factory.mktemp("store")))
    return cfg, prepare_dataset(cfg)


@pytest.fixture
def tiny_dataset() -> PreparedDataset:
    """40 users x 30 items with a long tail, every user with train, valid and test items."""
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 30
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    parts = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u in range(n_users):
        items = rng.choice(n_items, size=8, replace=False, p=pop / pop.sum())
        for split, chunk in zip(("train", "valid", "test"), (items[:6], items[6:7], items[7:])):
            parts[split][0].extend([u] * len(chunk))
            parts[split][1].extend(chunk.tolist())
    arr = {k: (np.array(u), np.array(i)) for k, (u, i) in parts.items()}
    return PreparedDataset.from_arrays(arr["train"], arr["test"], arr["valid"], n_users, n_items, name="tiny")
