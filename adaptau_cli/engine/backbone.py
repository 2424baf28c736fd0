"""A backbone as the engine uses it: checked once, scored in eval mode (see ``models.protocol``)."""

from __future__ import annotations

import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.method.losses import maybe_normalize, normalize_flags
from adaptau_cli.models.protocol import Backbone


def check_backbone(model: torch.nn.Module, n_users: int, n_items: int) -> None:
    """Refuse, with one line, a model that does not implement ``Backbone`` for this dataset's sizes."""
    name = type(model).__name__
    if not isinstance(model, torch.nn.Module) or not isinstance(model, Backbone):
        raise UserError(f"{name} is not a backbone: it needs forward() -> (user_emb, item_emb) "
                        "and raw_tables() -> (user_table, item_table)",
                        hint="see adaptau_cli.models.protocol and examples/custom_model.py")
    for what, table, n in zip(("user", "item"), model.raw_tables(), (n_users, n_items)):
        if table.dim() != 2 or table.shape[0] != n:
            raise UserError(f"{name}.raw_tables(): the {what} table has shape {tuple(table.shape)}, "
                            f"but the dataset has {n} {what}s")


@torch.no_grad()
def scoring_embeddings(model: torch.nn.Module, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scoring users, scoring items, raw items) in eval mode: ranking = inner product of the first two.

    "raw items" are the model's item output before normalization (what
    ``--score raw`` ranks by); the magnitude analysis reads ``raw_tables()``.
    """
    was_training = model.training
    model.eval()
    try:
        users, items = model()
    finally:
        model.train(was_training)
    users, items = users.detach(), items.detach()
    nu, ni = normalize_flags(norm)
    return maybe_normalize(users, nu), maybe_normalize(items, ni), items
