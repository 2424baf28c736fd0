"""Popularity groups and the head / long-tail cut, both from training popularity.

Group 0 holds the least popular items, group G-1 the most popular (the paper's
"group 10"). ``mass`` (default) gives every group about the same number of
training interactions, the convention the paper cites; ``count`` gives every
group about the same number of items. Ties in popularity are broken by item
index so the grouping is deterministic.

The long tail (for APLT) is everything outside the *head*: the smallest set of
most popular items that together hold ``head_share`` (default 20%) of the
training interactions. With a long-tailed catalogue that head is a few percent
of the items, so "tail" means "not one of the blockbusters".
"""

from __future__ import annotations

import numpy as np

from adaptau_cli.base.errors import UserError

GROUPINGS = ("mass", "count")


class GroupingError(UserError, ValueError):
    """A bad grouping option (a UserError for the CLI, a ValueError for library callers)."""


def popularity_groups(popularity: np.ndarray, n_groups: int = 10, mode: str = "mass") -> np.ndarray:
    """Return the group index (0 = least popular) of every item."""
    popularity = np.asarray(popularity, dtype=np.int64)
    n = popularity.shape[0]
    if n_groups < 1:
        raise GroupingError(f"the number of popularity groups must be >= 1, got {n_groups}")
    order = np.lexsort((np.arange(n), popularity))  # ascending popularity, then index
    groups = np.empty(n, dtype=np.int64)
    if mode == "count":
        groups[order] = (np.arange(n) * n_groups) // max(n, 1)
    elif mode == "mass":
        total = popularity.sum()
        if total == 0:
            groups[order] = (np.arange(n) * n_groups) // max(n, 1)
        else:
            # an item belongs to the group in which the midpoint of its mass falls
            cum = np.cumsum(popularity[order])
            mid = cum - popularity[order] / 2.0
            groups[order] = np.minimum((mid * n_groups / total).astype(np.int64), n_groups - 1)
    else:
        raise GroupingError(f"unknown grouping {mode!r} (expected 'mass' or 'count')")
    return groups


def group_summary(popularity: np.ndarray, groups: np.ndarray, n_groups: int) -> dict[str, list]:
    """Per group: number of items, training interactions, and the popularity range."""
    popularity = np.asarray(popularity, dtype=np.int64)
    items = np.bincount(groups, minlength=n_groups)
    mass = np.bincount(groups, weights=popularity, minlength=n_groups)
    lo = [int(popularity[groups == g].min()) if items[g] else 0 for g in range(n_groups)]
    hi = [int(popularity[groups == g].max()) if items[g] else 0 for g in range(n_groups)]
    return {"items": items.astype(int).tolist(), "interactions": mass.astype(int).tolist(),
            "min_popularity": lo, "max_popularity": hi}


def head_mask(popularity: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """Boolean mask of the head: the fewest most-popular items holding ``head_share`` of interactions.

    Items are taken in descending popularity (ties: lower index first) until their
    cumulative interactions reach ``head_share`` of the total; the long tail is
    ``~head_mask``. A catalogue without interactions has no head.
    """
    if not 0.0 <= head_share <= 1.0:
        raise GroupingError(f"head share must be in [0, 1], got {head_share}")
    popularity = np.asarray(popularity, dtype=np.int64)
    n = popularity.shape[0]
    mask = np.zeros(n, dtype=bool)
    total = popularity.sum()
    if total == 0 or head_share == 0.0:
        return mask
    order = np.lexsort((np.arange(n), -popularity))  # descending popularity, then index
    cum = np.cumsum(popularity[order])
    n_head = int(np.searchsorted(cum, head_share * total - 1e-9 * total)) + 1
    mask[order[:min(n_head, n)]] = True
    return mask
