"""Popularity groups: items sorted by training popularity and cut into G groups.

Group 0 holds the least popular items, group G-1 the most popular (the paper's
"group 10"). ``mass`` (default) gives every group about the same number of
training interactions, the convention the paper cites; ``count`` gives every
group about the same number of items. Ties in popularity are broken by item
index so the grouping is deterministic.
"""

from __future__ import annotations

import numpy as np


def popularity_groups(popularity: np.ndarray, n_groups: int = 10, mode: str = "mass") -> np.ndarray:
    """Return the group index (0 = least popular) of every item."""
    popularity = np.asarray(popularity, dtype=np.int64)
    n = popularity.shape[0]
    if n_groups < 1:
        raise ValueError("n_groups must be >= 1")
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
        raise ValueError(f"unknown grouping {mode!r} (expected 'mass' or 'count')")
    return groups
