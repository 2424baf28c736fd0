"""Paired tests, effect sizes, Holm's correction and the seeds' summary, against scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from adaptau_cli.eval.significance import (
    cohen_dz,
    holm,
    mean_sd,
    paired_differences,
    paired_t,
    rank_biserial,
    wilcoxon,
)

RNG = np.random.default_rng(17)
# (a, b) pairs that exercise scipy's branches: exact (small, no ties), ties, zeros, large n (normal approximation)
CASES = {
    "small exact": (np.array([0.9, 0.8, 0.75, 0.6, 0.55, 0.3, 0.2]), np.array([0.5, 0.85, 0.2, 0.1, 0.5, 0.4, 0.0])),
    "ties": (np.array([1.0, 2, 3, 4, 5, 6, 7, 8]), np.array([0.0, 1, 2, 5, 4, 5, 9, 6])),
    "zeros and ties": (np.array([0.5, 0.25, 0.0, 1.0, 0.5, 0.0, 0.75, 0.25, 0.5]),
                       np.array([0.25, 0.25, 0.0, 0.5, 0.75, 0.25, 0.75, 0.0, 0.0])),
    "large, recall-like": (RNG.integers(0, 5, 400) / 4, RNG.integers(0, 5, 400) / 4),
    "large, continuous": (RNG.normal(0.3, 0.1, 300), RNG.normal(0.28, 0.1, 300)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_wilcoxon_matches_scipy(name):
    a, b = CASES[name]
    ref = st.wilcoxon(a - b, zero_method="wilcox", alternative="two-sided")
    got = wilcoxon(a, b)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert got.statistic == pytest.approx(ref.statistic)
    assert got.n == len(a) and got.n_nonzero == int(np.count_nonzero(a - b))
    assert got.mean_diff == pytest.approx(np.mean(a - b))


@pytest.mark.parametrize("name", list(CASES))
def test_paired_t_matches_scipy(name):
    a, b = CASES[name]
    ref = st.ttest_rel(a, b)
    got = paired_t(a, b)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    d = a - b
    assert got.effect == pytest.approx(np.mean(d) / np.std(d, ddof=1))


def test_hand_computed_cases():
    # five positive differences: R+ = 15, R- = 0; exact two-sided p = 2 / 2^5
    w = wilcoxon([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert (w.statistic, w.p_value, w.effect) == (0.0, pytest.approx(0.0625), 1.0)
    # |d| of the non-zero differences 0.5, 0.5, 1, 1, 2 ranks 1.5, 1.5, 3.5, 3.5, 5; R+ = 13.5, R- = 1.5
    d = np.array([0.5, -0.5, 1, 1, 2, 0, 0])
    assert rank_biserial(d) == pytest.approx((13.5 - 1.5) / 15)
    assert wilcoxon(d, np.zeros_like(d)).statistic == 1.5
    assert cohen_dz(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)   # mean 2, sd 1


def test_edge_cases_have_fixed_answers():
    zeros = wilcoxon([0.3, 0.5, 0.1], [0.3, 0.5, 0.1])
    assert (zeros.p_value, zeros.effect, zeros.n_nonzero) == (1.0, 0.0, 0) and zeros.note
    tz = paired_t([0.3, 0.5, 0.1], [0.3, 0.5, 0.1])
    assert (tz.statistic, tz.p_value, tz.effect) == (0.0, 1.0, 0.0)
    for fn in (wilcoxon, paired_t):
        few = fn([0.4], [0.1])
        assert few.n == 1 and math.isnan(few.p_value) and math.isnan(few.effect) and "fewer than 2" in few.note
        assert math.isnan(fn([], []).p_value)
    const = paired_t([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])          # every difference 0.1 (up to rounding)
    assert const.p_value < 1e-6 and const.effect > 100
    exact_const = paired_t([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert (exact_const.statistic, exact_const.p_value, exact_const.effect) == (math.inf, 0.0, math.inf)


def test_nan_pairs_are_left_out():
    a = np.array([0.9, np.nan, 0.7, 0.4, 0.8, 0.1, 0.65])
    b = np.array([0.1, 0.3, np.nan, 0.5, 0.2, 0.05, 0.6])
    keep = ~(np.isnan(a) | np.isnan(b))
    assert paired_differences(a, b).tolist() == (a[keep] - b[keep]).tolist()
    for fn in (wilcoxon, paired_t):
        assert fn(a, b) == fn(a[keep], b[keep])
        assert fn(a, b).n == 5
    with pytest.raises(ValueError):
        paired_differences([1.0, 2.0], [1.0])


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])           # capped at 1, then carried up
    assert holm([0.2]) == pytest.approx([0.2])                     # a family of one is not adjusted
    out = holm([0.01, math.nan, 0.04])                             # NaN: no test, not counted in m
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError):
        holm([0.5, 1.5])


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.floats(0.0, 1.0), min_size=1, max_size=30))
def test_holm_properties(p):
    p = np.asarray(p)
    adj = holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)                        # keeps the order of the raw p-values
    assert np.all(adj <= np.minimum(1.0, len(p) * p) + 1e-15)      # never above Bonferroni
    perm = np.random.default_rng(len(p)).permutation(len(p))
    assert holm(p[perm]) == pytest.approx(adj[perm])               # the same family in any order


def test_mean_sd_over_seeds():
    assert mean_sd([0.1, 0.2, 0.3]) == pytest.approx((0.2, 0.1))
    mean, sd = mean_sd([0.25])
    assert mean == 0.25 and math.isnan(sd)
    assert all(math.isnan(v) for v in mean_sd([]))


# per-user metric values: few distinct levels, so ties and zero differences are the rule
LEVELS = hs.sampled_from([0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0])


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(LEVELS, LEVELS), min_size=2, max_size=80))
def test_paired_tests_agree_with_scipy_for_any_sample(pairs):
    a, b = (np.array(x) for x in zip(*pairs))
    w, t = wilcoxon(a, b), paired_t(a, b)
    back = wilcoxon(b, a)
    assert back.p_value == w.p_value and back.effect == -w.effect   # symmetric in A and B
    assert 0.0 <= w.p_value <= 1.0 and -1.0 <= w.effect <= 1.0
    d = a - b
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        assert (w.p_value, t.p_value) == (1.0, 1.0)
        return
    ref = st.wilcoxon(d, zero_method="wilcox")
    assert w.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    s = len(nonzero) * (len(nonzero) + 1) / 2
    assert abs(w.effect) == pytest.approx(1 - 2 * ref.statistic / s)  # r and scipy's min(R+, R-) agree
    if np.std(d, ddof=1) > 1e-12 * max(1.0, abs(np.mean(d))):
        assert t.p_value == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-9, abs=1e-300)
