"""Statistics of interaction data shared by the data and evaluation layers."""

from __future__ import annotations

import numpy as np


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal; (n-1)/n = one takes all)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.shape[0], x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))
