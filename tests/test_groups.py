"""Popularity groups partition the catalogue, in popularity order, with (nearly) equal mass or count."""

from __future__ import annotations

import numpy as np
import pytest

from adaptau_cli.base.errors import UserError
from adaptau_cli.eval.groups import group_summary, head_mask, popularity_groups


def _zipf_pop(seed, n=3000):
    return np.random.default_rng(seed).zipf(1.4, n).clip(max=5000) - 1   # includes zeros


@pytest.mark.parametrize("mode", ["mass", "count"])
@pytest.mark.parametrize("seed", range(3))
def test_groups_partition_items_in_popularity_order(mode, seed):
    pop = _zipf_pop(seed)
    g = popularity_groups(pop, 10, mode)
    assert g.shape == pop.shape and g.min() >= 0 and g.max() <= 9
    # monotone: every item of group a is at most as popular as every item of group a+1
    present = [a for a in range(10) if (g == a).any()]
    for a, b in zip(present, present[1:]):
        assert pop[g == a].max() <= pop[g == b].min()


@pytest.mark.parametrize("seed", range(3))
def test_mass_groups_have_nearly_equal_interactions(seed):
    pop = _zipf_pop(seed, 20000)
    g = popularity_groups(pop, 10, "mass")
    mass = np.bincount(g, weights=pop, minlength=10)
    target = pop.sum() / 10
    # each group is off by at most one item's popularity (an item is never split)
    assert np.abs(mass - target).max() <= pop.max()
    # and groups of a long tail hold very different numbers of items
    counts = np.bincount(g, minlength=10)
    assert counts[0] > 10 * counts[-1]


def test_count_groups_have_equal_sizes():
    pop = _zipf_pop(1, 1003)
    g = popularity_groups(pop, 10, "count")
    counts = np.bincount(g, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == 1003


def test_ties_are_broken_by_index_deterministically():
    pop = np.array([5, 5, 5, 5, 0, 0])
    g = popularity_groups(pop, 3, "count")
    assert g.tolist() == [1, 1, 2, 2, 0, 0]   # zeros first, then the 5s by index


def test_no_interactions_falls_back_to_equal_count():
    g = popularity_groups(np.zeros(10, dtype=int), 5, "mass")
    assert np.bincount(g).tolist() == [2] * 5


def test_bad_options_are_user_errors_and_value_errors():
    with pytest.raises(UserError, match="grouping"):
        popularity_groups(np.ones(3), 2, "median")
    with pytest.raises(ValueError):
        popularity_groups(np.ones(3), 0)


def test_group_summary_counts():
    pop = np.array([1, 2, 3, 10, 0])
    g = np.array([0, 0, 1, 1, 0])
    s = group_summary(pop, g, 2)
    assert s == {"items": [3, 2], "interactions": [3, 13], "min_popularity": [0, 3], "max_popularity": [2, 10]}


def ref_head(pop, share):
    order = sorted(range(len(pop)), key=lambda i: (-pop[i], i))
    total, acc, head = sum(pop), 0, set()
    for i in order:
        if acc >= share * total:
            break
        head.add(i)
        acc += pop[i]
    return head


@pytest.mark.parametrize("seed", range(5))
def test_head_is_smallest_set_of_most_popular_items_holding_share(seed):
    pop = _zipf_pop(seed, 500)
    mask = head_mask(pop, 0.2)
    assert set(np.flatnonzero(mask).tolist()) == ref_head(pop.tolist(), 0.2)
    assert pop[mask].sum() >= 0.2 * pop.sum()
    assert pop[mask].sum() - pop[mask].min() < 0.2 * pop.sum()   # minimal


def test_head_edge_cases():
    assert not head_mask(np.zeros(4, dtype=int)).any()
    assert head_mask(np.array([1, 1, 1, 1, 1]), 0.2).tolist() == [True, False, False, False, False]
    assert head_mask(np.array([1, 9]), 0.5).tolist() == [False, True]
    with pytest.raises(UserError):
        head_mask(np.ones(3), 1.5)
