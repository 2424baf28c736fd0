"""LightGCN: linear propagation over the user-item graph, mean of layers 0..L.

``A_hat = D^-1/2 A D^-1/2`` on the bipartite graph of the training pairs (n+m
nodes, no self-loops, duplicate pairs counted once); ``E_{k+1} = A_hat E_k``
and the output is ``mean(E_0, ..., E_L)`` split back into (user, item) tables.
Nodes without edges keep their layer-0 embedding scaled by 1/(L+1).

The graph is not a parameter: it is attached with ``set_graph`` (built from the
dataset's training split), so a checkpoint holds only the layer-0 tables and
the graph is rebuilt from the same dataset (whose fingerprint is checked).
Dropout, when set, is applied to each propagated layer's output in training.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """Symmetric-normalized (n+m)×(n+m) adjacency, sparse CSR float32, without self-loops."""
    key = np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64))
    u = key // n_items
    i = key % n_items + n_users
    rows = np.concatenate([u, i])
    cols = np.concatenate([i, u])
    n = n_users + n_items
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    dinv = np.zeros(n)
    dinv[deg > 0] = deg[deg > 0] ** -0.5
    vals = (dinv[rows] * dinv[cols]).astype(np.float32)
    order = np.lexsort((cols, rows))
    crow = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR mm is what we need
        warnings.simplefilter("ignore")
        adj = torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols[order]),
                                      torch.from_numpy(vals[order]), (n, n), check_invariants=False)
    return adj.to(device)


class _SymmetricSpmm(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse A: the backward is ``A @ grad`` (no transpose).

    torch's generic sparse backward transposes the CSR matrix every call,
    which is ~6x slower on CPU; A_hat is symmetric by construction.
    """

    @staticmethod
    def forward(ctx, x, adj):
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad):
        return torch.sparse.mm(ctx.adj, grad.contiguous()), None


class LightGCN(nn.Module):
    """LightGCN: layer-0 tables propagated over the training graph (``bind``), mean of layers 0..L."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 3, dropout: float = 0.0):
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.layers = int(layers)
        self.dropout = float(dropout)
        self.user_weight = nn.Parameter(torch.empty(n_users, dim))
        self.item_weight = nn.Parameter(torch.empty(n_items, dim))
        self.graph: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user_weight)
        nn.init.xavier_uniform_(self.item_weight)

    def bind(self, users: np.ndarray, items: np.ndarray) -> "LightGCN":
        """Attach the training graph (needed before ``forward``; the backbone protocol's optional hook)."""
        self.graph = normalized_adjacency(users, items, self.n_users, self.n_items, self.user_weight.device)
        return self

    set_graph = bind

    def raw_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer-0 tables (the L2 term and the magnitudes are taken on these)."""
        return self.user_weight, self.item_weight

    def _apply(self, fn, *args, **kwargs):  # keep the graph on the module's device
        out = super()._apply(fn, *args, **kwargs)
        if self.graph is not None:
            self.graph = self.graph.to(self.user_weight.device)
        return out

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graph is None:
            raise RuntimeError("LightGCN.forward needs set_graph(...) first")
        emb = torch.cat([self.user_weight, self.item_weight], 0)
        total = emb
        for _ in range(self.layers):
            emb = _SymmetricSpmm.apply(emb, self.graph)
            if self.training and self.dropout > 0:
                emb = F.dropout(emb, p=self.dropout, training=True)
            total = total + emb
        out = total / (self.layers + 1)
        return out[: self.n_users], out[self.n_users:]
