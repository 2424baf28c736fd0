"""Stand-ins for trained runs, so analysis code is testable without training.

``long_tail_dataset`` is a small dataset with a Zipf-like popularity;
``fake_history`` imitates history.parquet; ``FakeRun`` has the attributes of
``adaptau_cli.runs.LoadedRun`` that the analysis code reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.eval.groups import popularity_groups


def long_tail_dataset(n_users=120, n_items=150, per_user=12, seed=0) -> PreparedDataset:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 1.1
    p /= p.sum()
    parts = {s: ([], []) for s in ("train", "valid", "test")}
    for u in range(n_users):
        items = rng.choice(n_items, per_user, replace=False, p=p)
        for s, chunk in zip(("train", "valid", "test"),
                            (items[:per_user - 4], items[per_user - 4:per_user - 2], items[per_user - 2:])):
            parts[s][0].extend([u] * len(chunk))
            parts[s][1].extend(chunk.tolist())
    arr = {s: (np.array(u), np.array(i)) for s, (u, i) in parts.items()}
    return PreparedDataset.from_arrays(arr["train"], arr["test"], arr["valid"], n_users, n_items, name="longtail")


def fake_history(n_epochs=6, n_groups=10, growing=True) -> pd.DataFrame:
    e = np.arange(n_epochs)
    frame = pd.DataFrame({"epoch": e, "loss": 5.0 - 0.1 * e,
                          "pos_score": (0.5 * e if growing else 0.3 + 0.01 * e).astype(float)})
    for g in range(n_groups):
        frame[f"item_norm_g{g}"] = 1.0 + (0.1 * (g + 1) * e if growing else 0.01 * e)
    return frame


@dataclasses.dataclass
class FakeRun:
    """What the analysis code reads from a LoadedRun; item norms grow with popularity if ``growing``."""

    dataset: PreparedDataset
    name: str = "fake"
    growing: bool = True
    history: pd.DataFrame | None = None
    norm: str = "none"
    seed: int = 0
    epoch: int = 5

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)
        self._u = torch.randn(self.dataset.n_users, 8, generator=g)
        base = torch.randn(self.dataset.n_items, 8, generator=g)
        scale = torch.tensor(np.log1p(self.dataset.item_popularity), dtype=torch.float32)[:, None] + 0.1
        self._i = base * scale if self.growing else base
        self.run_dir = Path("/nonexistent") / self.name
        self.checkpoint_path = self.run_dir / "checkpoint-best.pt"
        self.train_config = TrainConfig(norm=self.norm, tau_mode="none" if self.norm == "none" else "adap-tau")
        self.data_config = PreprocessConfig(dataset="synthetic-tiny")
        self.dataset_fingerprint = self.dataset.fingerprint

    def scoring_embeddings(self, dataset):
        if self.norm == "none":
            return self._u, self._i
        return torch.nn.functional.normalize(self._u, dim=1), torch.nn.functional.normalize(self._i, dim=1)

    def raw_item_norms(self, dataset):
        return self._i.norm(dim=1).numpy()


def group_of(dataset, n_groups=10, mode="mass"):
    return popularity_groups(dataset.item_popularity, n_groups, mode)
