"""Is a difference between two models real? Paired tests over users, effect sizes, Holm's correction.

Two models ranked for the same test users give paired samples (one metric value
per user and model). ``adaptau compare`` asks of every pair of methods whether
the per-user differences are centred away from zero:

- ``wilcoxon``: the Wilcoxon signed-rank test, two-sided. It is
  ``scipy.stats.wilcoxon(d, zero_method="wilcox", method="auto")``: zero
  differences are dropped before ranking, tied ``|d|`` share their average rank,
  the p-value is exact for small samples without zeros or ties and otherwise
  from the normal approximation with the tie correction (scipy's rules). The
  effect size is the matched-pairs rank-biserial correlation
  r = (R+ − R−) / (R+ + R−) over the same non-zero differences (Kerby 2014):
  +1 when every user is better under A, −1 when every user is better under B.
- ``paired_t``: the paired t-test (``scipy.stats.ttest_rel``), effect size
  Cohen's d_z = mean(d) / sd(d) (sample sd, ddof = 1).

Per-user ranking metrics are bounded, discrete and often zero, so the Wilcoxon
test is the primary one; the t-test is reported beside it because its effect
size reads in standard deviations. What these wrappers add to scipy is a fixed
answer at the edges, where scipy warns or returns NaN: pairs with a NaN on
either side are left out; fewer than 2 pairs give NaN (no test); differences
that are all zero give p = 1 and effect 0 (no evidence of any difference);
constant non-zero differences give t = ±inf, p = 0, d_z = ±inf for the t-test.

``holm`` adjusts a family of p-values for multiple comparisons (Holm 1979,
written here, not taken from a library); ``mean_sd`` summarizes a metric
over training seeds.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import numpy as np
import scipy.stats as st


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """One paired test of A against B (differences d = A − B over the pairs used)."""

    test: str            # "wilcoxon" | "t-test"
    n: int               # pairs used (a NaN on either side leaves the pair out)
    n_nonzero: int       # pairs whose difference is not zero (what the Wilcoxon test ranks)
    mean_diff: float     # mean of A − B
    statistic: float     # Wilcoxon: min(R+, R−) as scipy reports it; t-test: t
    p_value: float       # two-sided
    effect: float        # Wilcoxon: rank-biserial r; t-test: Cohen's d_z
    note: str = ""       # why a value is a convention rather than scipy's (edge cases)


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """A − B for the pairs where both values are numbers (a NaN on either side drops the pair)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need two 1-d arrays of the same length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]


def rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (R+ − R−) / (R+ + R−) over the non-zero differences.

    Ranks of |d| with ties averaged, zeros dropped first: the same ranks the
    Wilcoxon test (``zero_method="wilcox"``) uses, so the effect and the test agree.
    0 when no difference is non-zero.
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    ranks = st.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def cohen_dz(d: np.ndarray) -> float:
    """Cohen's d_z = mean(d) / sd(d) (ddof = 1): 0 when all d are 0, ±inf when d is a non-zero constant."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return math.nan
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    if sd == 0.0:
        return 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / sd


def _too_few(test: str, d: np.ndarray) -> PairedTest:
    return PairedTest(test, len(d), int(np.count_nonzero(d)), float(np.mean(d)) if len(d) else math.nan,
                      math.nan, math.nan, math.nan, "fewer than 2 pairs: no test")


def _all_zero(test: str, d: np.ndarray) -> PairedTest:
    return PairedTest(test, len(d), 0, 0.0, 0.0, 1.0, 0.0, "all differences are zero")


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of A − B (scipy, ``zero_method="wilcox"``) with the rank-biserial r."""
    d = paired_differences(a, b)
    if len(d) < 2:
        return _too_few("wilcoxon", d)
    if not np.any(d):
        return _all_zero("wilcoxon", d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # scipy warns on a single non-zero difference
        res = st.wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    return PairedTest("wilcoxon", len(d), int(np.count_nonzero(d)), float(np.mean(d)), float(res.statistic),
                      float(res.pvalue), rank_biserial(d))


def paired_t(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided paired t-test of A − B (scipy ``ttest_rel``) with Cohen's d_z."""
    d = paired_differences(a, b)
    if len(d) < 2:
        return _too_few("t-test", d)
    if not np.any(d):
        return _all_zero("t-test", d)
    mean = float(np.mean(d))
    if float(np.std(d, ddof=1)) == 0.0:                      # scipy returns this too, with a warning
        return PairedTest("t-test", len(d), len(d), mean, math.copysign(math.inf, mean), 0.0, cohen_dz(d),
                          "every difference is the same non-zero value")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # precision warnings on nearly constant d
        res = st.ttest_rel(d, np.zeros_like(d))
    return PairedTest("t-test", len(d), int(np.count_nonzero(d)), mean, float(res.statistic), float(res.pvalue),
                      cohen_dz(d))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN and is not counted).

    Sorted ascending p_(1) <= ... <= p_(m), the adjusted value of p_(i) is
    max_{j <= i} min(1, (m − j + 1) p_(j)): it controls the family-wise error
    rate like Bonferroni, without assuming independence, and rejects at least
    as much. Equal p-values get equal adjusted values.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-d sequence, got shape {p.shape}")
    finite = np.flatnonzero(~np.isnan(p))
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) over seeds; sd is NaN for a single seed."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
