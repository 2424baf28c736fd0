"""What the engine needs of a model: the backbone protocol.

Any ``torch.nn.Module`` is a backbone when

* ``forward()`` returns ``(user_embeddings, item_embeddings)``: the full
  (n_users, d) and (n_items, d) tables the model scores with (a two-tower with
  item side features, a GNN, a plain embedding table ...);
* ``raw_tables()`` returns the raw parameter tables ``(users, items)`` that the
  L2 term is taken on and whose row norms the magnitude analysis reads (for MF
  the same tables; for LightGCN the layer-0 tables, not the propagated ones).

Optionally ``bind(train_users, train_items)``: called once with the training
pairs before training or scoring (LightGCN attaches its graph there). The
trainer names no model: MF and LightGCN are two implementations of this.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Backbone(Protocol):
    """A model the engine can train: full (user, item) tables out, raw parameter tables on request."""

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user embeddings (n_users, d), item embeddings (n_items, d)) as the model scores them."""
        ...

    def raw_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw (user, item) parameter tables: the L2 term and the magnitude analysis use these."""
        ...
