"""The popularity view of top-K lists and their popularity-bias metrics.

Popularity view (items grouped by training popularity, ``adaptau_cli.eval.groups``):
for each group its share of the top-K hits, its recall contribution (the mean
over users of hits in the group / |held-out|, so the groups sum to recall@K)
and its share of the top-K slots (exposure).

Popularity-bias metrics of the top-K lists: ARP (mean training popularity of
the recommended items, averaged over users), APLT (share of recommended items
from the long tail, i.e. outside the head holding ``head_share`` = 20% of the
training interactions, see ``groups.head_mask``), item coverage (share of the
catalogue recommended to at least one user) and the Gini coefficient of
exposure (how unequally the top-K slots are spread over all items; 0 = even,
-> 1 = a few items take every slot).
"""

from __future__ import annotations

import numpy as np

from adaptau_cli.data.stats import gini

BIAS_METRICS = ("arp", "aplt", "coverage", "gini")


def group_view(topk: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray, item_groups: np.ndarray,
               n_groups: int, k: int) -> dict[str, list[float]]:
    """Per popularity group @K: share of hits, recall contribution, share of top-K slots.

    ``recall_contribution`` sums over groups to recall@K; ``hit_share`` and
    ``exposure_share`` each sum to 1 (hit_share is all zeros when nothing was hit).
    """
    top = topk[:, :k]
    h = hits[:, :k]
    g = item_groups[top]
    n_users = max(top.shape[0], 1)
    hit_counts = np.bincount(g[h], minlength=n_groups).astype(np.float64)
    weight = np.broadcast_to((1.0 / np.maximum(n_relevant, 1))[:, None], h.shape)[h]
    contrib = np.bincount(g[h], weights=weight, minlength=n_groups) / n_users
    slots = np.bincount(g.ravel(), minlength=n_groups).astype(np.float64)
    total_hits = hit_counts.sum()
    return {
        "hit_share": (hit_counts / total_hits if total_hits else hit_counts * 0).tolist(),
        "recall_contribution": contrib.tolist(),
        "exposure_share": (slots / max(slots.sum(), 1.0)).tolist(),
        "hits": hit_counts.astype(int).tolist(),
    }


def bias_metrics(topk: np.ndarray, popularity: np.ndarray, tail: np.ndarray, k: int) -> dict[str, float]:
    """ARP, APLT, item coverage and Gini of exposure of the top-``k`` lists."""
    top = topk[:, :k]
    n_items = popularity.shape[0]
    if top.size == 0:
        return {f"{m}@{k}": float("nan") for m in BIAS_METRICS}
    exposure = np.bincount(top.ravel(), minlength=n_items)
    return {
        f"arp@{k}": float(popularity[top].mean(1).mean()),
        f"aplt@{k}": float(tail[top].mean(1).mean()),
        f"coverage@{k}": float((exposure > 0).sum() / n_items),
        f"gini@{k}": gini(exposure),
    }
