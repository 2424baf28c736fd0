"""Principal branch W0 of the Lambert W function, exact to float64, vectorized in torch.

Adap-τ's per-user temperature is ``τ_u = τ0·exp(W(x))`` for ``x >= -1/e``. The
published code read W from a lookup table with step 1e-4; this module solves
``w·e^w = x`` with Halley's method instead, so every user gets the exact value
(the test compares against ``scipy.special.lambertw`` on a grid that includes
the branch point).

Why a torch iteration rather than scipy: it runs on whatever device the
per-user losses live on and needs no host round trip; it is also easy to keep
in float64 whatever the training dtype is.

Starting points: near the branch point ``-1/e`` the series in
``p = sqrt(2(e·x + 1))`` (``W = -1 + p - p²/3 + 11p³/72 - ...``) is used,
because Halley converges slowly there (``W'`` is infinite at ``-1/e``); for
moderate x ``log1p(x)``-style guesses; for large x ``log x - log log x``. At the
branch point itself the answer is exactly ``-1``.
"""

from __future__ import annotations

import math

import torch

INV_E = math.exp(-1.0)
BRANCH_POINT = -INV_E
# 1/e - float(1/e): lets x + 1/e be formed without cancellation near the branch point
_INV_E_LO = -1.2428753672788363e-17


def lambertw(x: torch.Tensor | float, max_iter: int = 50, tol: float = 1e-15) -> torch.Tensor:
    """W0(x) for ``x >= -1/e`` in float64 (values a hair below -1/e from rounding count as -1/e).

    Raises ``ValueError`` for x clearly below the branch point (< -1/e - 1e-12) or NaN input.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    if torch.isnan(x).any():
        raise ValueError("lambertw: NaN input")
    if (x < BRANCH_POINT - 1e-12).any():
        raise ValueError("lambertw: input below the branch point -1/e")
    x = torch.clamp(x, min=BRANCH_POINT)

    # initial guess; x + 1/e is exact for x near -1/e (Sterbenz), plus the low-order part of 1/e
    delta = torch.clamp((x + INV_E) + _INV_E_LO, min=0.0)
    p2 = 2.0 * math.e * delta
    p = torch.sqrt(p2)
    near = -1.0 + p - p2 / 3.0 + (11.0 / 72.0) * p * p2 - (43.0 / 540.0) * p2 * p2
    lx = torch.log(torch.clamp(x, min=1.0 + 1e-300))
    large = lx - torch.log(torch.clamp(lx, min=1e-300))
    mid = torch.log1p(torch.clamp(x, min=-0.25))
    w = torch.where(x < -0.25, near, torch.where(x > 3.0, large, mid))

    at_branch = p < 1e-7  # series is exact to ~1e-28 there; Halley's denominator vanishes
    w = torch.where(at_branch, near, w)
    active = ~at_branch
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ew = torch.exp(w)
        f = w * ew - x
        wp1 = w + 1.0
        denom = ew * wp1 - (w + 2.0) * f / (2.0 * wp1)
        step = torch.where(active & (denom != 0), f / denom, torch.zeros_like(w))
        w = w - step
        active = active & (step.abs() > tol * (1.0 + w.abs()))
    return w
