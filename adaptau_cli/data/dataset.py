"""The in-memory prepared dataset every engine function works on.

It is what ``store.load_dataset`` returns and what tests build directly with
``PreparedDataset.from_arrays``: dense int32 user/item indices per split, the
original ids, and CSR views for training and full-ranking evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Interactions:
    """One split: parallel arrays of user index, item index and (optional) timestamp."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @staticmethod
    def empty() -> "Interactions":
        return Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32))


@dataclasses.dataclass(eq=False)
class PreparedDataset:
    name: str
    n_users: int
    n_items: int
    splits: dict[str, Interactions]
    user_ids: np.ndarray            # index -> original user id
    item_ids: np.ndarray            # index -> original item id
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_arrays(cls, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                    valid: tuple[np.ndarray, np.ndarray] | None = None, n_users: int | None = None,
                    n_items: int | None = None, name: str = "inline") -> "PreparedDataset":
        """Build a dataset from index arrays (tests, benchmarks, in-memory use)."""
        parts = {"train": train, "test": test, "valid": valid if valid is not None else (np.zeros(0), np.zeros(0))}
        splits = {k: Interactions(np.asarray(u, np.int32), np.asarray(i, np.int32)) for k, (u, i) in parts.items()}
        nu = n_users if n_users is not None else int(max((s.users.max(initial=-1) for s in splits.values()))) + 1
        ni = n_items if n_items is not None else int(max((s.items.max(initial=-1) for s in splits.values()))) + 1
        return cls(name=name, n_users=nu, n_items=ni, splits=splits,
                   user_ids=np.arange(nu), item_ids=np.arange(ni))

    def split(self, name: str) -> Interactions:
        return self.splits.get(name) or Interactions.empty()

    @property
    def train(self) -> Interactions:
        return self.split("train")

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary user x item matrix of one split (float32, sorted indices, no duplicates)."""
        return self._csr_cache(name)

    def _csr_cache(self, name: str) -> sp.csr_matrix:
        cache = self.__dict__.setdefault("_csr", {})
        if name not in cache:
            s = self.split(name)
            m = sp.csr_matrix((np.ones(len(s), np.float32), (s.users, s.items)),
                              shape=(self.n_users, self.n_items))
            m.sum_duplicates()
            m.data[:] = 1.0
            m.sort_indices()
            cache[name] = m
        return cache[name]

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Training interactions per item (the popularity every group and bias metric uses)."""
        return np.bincount(self.train.items, minlength=self.n_items).astype(np.int64)

    @cached_property
    def user_activity(self) -> np.ndarray:
        return np.bincount(self.train.users, minlength=self.n_users).astype(np.int64)

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the index arrays: a checkpoint is only valid for the same fingerprint."""
        h = hashlib.sha256(f"{self.n_users}:{self.n_items}".encode())
        for name in SPLITS:
            s = self.split(name)
            h.update(name.encode())
            h.update(np.ascontiguousarray(s.users, np.int32).tobytes())
            h.update(np.ascontiguousarray(s.items, np.int32).tobytes())
        return h.hexdigest()[:16]
