"""Backbones that return (user_emb, item_emb) tables: MF and LightGCN."""

from __future__ import annotations

from adaptau_cli.models.lightgcn import LightGCN, normalized_adjacency
from adaptau_cli.models.mf import MF

MODELS = ("mf", "lightgcn")


def build_model(name: str, n_users: int, n_items: int, dim: int = 64, layers: int = 3,
                dropout: float = 0.0):
    """A fresh backbone by name (LightGCN still needs ``set_graph``)."""
    if name == "mf":
        return MF(n_users, n_items, dim, dropout)
    if name == "lightgcn":
        return LightGCN(n_users, n_items, dim, layers, dropout)
    raise ValueError(f"unknown model {name!r} (expected one of {', '.join(MODELS)})")


__all__ = ["MF", "LightGCN", "MODELS", "build_model", "normalized_adjacency"]
