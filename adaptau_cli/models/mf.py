"""Matrix factorization: one free embedding per user and per item.

The simplest backbone of the paper. ``forward()`` returns the full (user,
item) tables so every loss and evaluator treats MF and LightGCN alike; in
training mode dropout is applied to the user table (the published MF runs used
0.1 on the user embedding in some settings). The raw tables (``user_weight``,
``item_weight``) are what the L2 term and the magnitude analysis look at.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MF(nn.Module):
    """Matrix factorization: a free embedding per user and per item (dropout on the user table in training)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, dropout: float = 0.0):
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.dropout = float(dropout)
        self.user_weight = nn.Parameter(torch.empty(n_users, dim))
        self.item_weight = nn.Parameter(torch.empty(n_items, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform on both tables (as in the published code)."""
        nn.init.xavier_uniform_(self.user_weight)
        nn.init.xavier_uniform_(self.item_weight)

    def raw_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_weight, self.item_weight

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users = self.user_weight
        if self.training and self.dropout > 0:
            users = F.dropout(users, p=self.dropout, training=True)
        return users, self.item_weight
