"""Lambert W (principal branch) against scipy, mpmath and its defining identity."""

import math

import numpy as np
import pytest
import scipy.special
import torch

from adaptau_cli.method.lambertw import BRANCH_POINT, lambertw


def test_matches_scipy_on_a_wide_grid():
    x = np.concatenate([BRANCH_POINT + np.logspace(-8, 0, 60), np.linspace(-0.3, 10, 400),
                        np.logspace(1, 300, 120), [0.0, 1.0, math.e, 1000.0]])
    got = lambertw(torch.tensor(x)).numpy()
    ref = scipy.special.lambertw(x).real
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_branch_point_is_exactly_minus_one():
    # scipy returns nan for float(-1/e), which rounds to just below the true branch point
    w = lambertw(torch.tensor([BRANCH_POINT, -1.0 / math.e, -math.exp(-1.0)], dtype=torch.float64))
    assert torch.equal(w, torch.full((3,), -1.0, dtype=torch.float64))


def test_near_the_branch_point_is_exact():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    x = BRANCH_POINT + np.array([1e-16, 3e-15, 1e-12, 1e-10, 1e-6])
    got = lambertw(torch.tensor(x)).numpy()
    ref = np.array([float(mpmath.lambertw(mpmath.mpf(float(v)))) for v in x])
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_defining_identity_and_monotonicity():
    x = torch.linspace(BRANCH_POINT, 50.0, 2001, dtype=torch.float64)
    w = lambertw(x)
    assert torch.all(w >= -1.0)
    assert torch.all(torch.diff(w) > 0)
    np.testing.assert_allclose((w * torch.exp(w)).numpy()[1:], x.numpy()[1:], rtol=1e-13, atol=1e-15)


def test_keeps_shape_and_returns_float64():
    x = torch.rand(3, 4, dtype=torch.float32)
    w = lambertw(x)
    assert w.shape == (3, 4) and w.dtype == torch.float64


def test_rejects_inputs_below_the_branch_point_and_nan():
    with pytest.raises(ValueError):
        lambertw(torch.tensor([-0.5]))
    with pytest.raises(ValueError):
        lambertw(torch.tensor([float("nan")]))
