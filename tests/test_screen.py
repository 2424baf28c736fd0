"""The bfloat16 screen gives exactly the float32 top-K (eval/screen.py): same items, same order, same scores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptau_cli.eval import screen as S
from adaptau_cli.eval.topk import score_topk


def _case(seed: int, n_users: int, n_items: int, dim: int, unit: bool, ties: bool, density: float):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(n_users, dim, generator=g)
    items = torch.randn(n_items, dim, generator=g) * (torch.rand(n_items, 1, generator=g) * 3 + 0.1)
    if ties:   # coarse values and repeated rows: many exactly equal scores, ranked by the lower index
        users, items = torch.round(users * 2) / 2, torch.round(items * 2) / 2
        items[n_items // 2:] = items[: n_items - n_items // 2].clone()
    if unit:
        users, items = torch.nn.functional.normalize(users, dim=1), torch.nn.functional.normalize(items, dim=1)
    exclude = sp.random(n_users, n_items, density=density, format="csr", random_state=seed) if density else None
    return users, items, exclude


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_users=st.integers(4, 90), n_items=st.integers(320, 3000),
       dim=st.sampled_from([3, 8, 64, 100]), k=st.sampled_from([1, 5, 20]), unit=st.booleans(),
       ties=st.booleans(), density=st.sampled_from([0.0, 0.01, 0.3]))
def test_the_screen_ranks_exactly_as_the_float32_path(seed, n_users, n_items, dim, k, unit, ties, density):
    users, items, exclude = _case(seed, n_users, n_items, dim, unit, ties, density)
    ids = np.arange(n_users)
    want, want_scores = score_topk(users, items, ids, exclude, k, return_scores=True, screen=False)
    got, got_scores = score_topk(users, items, ids, exclude, k, return_scores=True, screen=True)
    _same_ranking(users, items, got, got_scores, want, want_scores)


def _same_ranking(users, items, got, got_scores, want, want_scores):
    """The same items in the same order, but for float32's last bit.

    The screen re-scores its candidates exactly (float64 sums) where the full
    product accumulates in float32, so a score may differ in its last bit and
    two items whose scores agree to ~1e-7 may swap. So: the scores at each rank
    agree to a few ulps, and where the items differ their exact scores tie.
    """
    # float32 accumulation over d terms: at most d·2^-24·Σ|a_k b_k| <= d·2^-24·‖a‖·‖b‖ from the exact score
    slack = (users.shape[1] * 2.0 ** -24 * users.double().norm(dim=1)[:, None]
             * float(items.double().norm(dim=1).max())).numpy() + 1e-12
    finite = np.isfinite(want_scores)
    np.testing.assert_array_equal(np.isfinite(got_scores), finite)
    diff = np.abs(np.where(finite, got_scores, 0.0) - np.where(finite, want_scores, 0.0))
    assert (diff <= 2 * slack).all()
    exact = (users.double() @ items.double().t()).numpy()
    for r, c in zip(*np.nonzero(got != want)):
        a, b = exact[r, got[r, c]], exact[r, want[r, c]]
        assert abs(a - b) <= 2 * slack[r, 0], (r, c, a, b)


def test_rows_the_screen_cannot_settle_fall_back_and_are_still_exact():
    """Every item but 3 masked (fewer than k left), and a user whose scores are all equal (too many candidates)."""
    users, items, _ = _case(0, 12, 2048, 16, True, False, 0.0)
    users[5] = 0.0                                            # all scores 0: 2,048 candidates
    mask = np.zeros((12, 2048), dtype=bool)
    mask[2, 3:] = True                                        # user 2 has 3 items left for k = 10
    exclude = sp.csr_matrix(mask)
    want, ws = score_topk(users, items, np.arange(12), exclude, 10, return_scores=True, screen=False)
    got, gs = score_topk(users, items, np.arange(12), exclude, 10, return_scores=True, screen=True)
    _same_ranking(users, items, got, gs, want, ws)
    assert list(got[5]) == list(range(10))                    # equal scores: the lower indices first
    assert np.isneginf(gs[2, 3:]).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dim=st.sampled_from([2, 16, 64, 512]), scale=st.floats(1e-3, 1e3))
def test_the_bfloat16_scores_stay_within_the_bound(seed, dim, scale):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(7, dim, generator=g) * scale
    b = torch.randn(300, dim, generator=g)
    b[0] = a[0]                                               # a perfectly aligned pair: the largest score
    approx = (a.to(torch.bfloat16) @ b.to(torch.bfloat16).t()).double()
    exact = a.double() @ b.double().t()
    bound = S.eps_factor(dim) * a.double().norm(dim=1)[:, None] * b.double().norm(dim=1)[None, :]
    assert bool(((approx - exact).abs() <= bound).all())


def test_a_first_block_that_disagrees_turns_the_screen_off(monkeypatch):
    users, items, _ = _case(1, 40, 5000, 16, True, False, 0.0)
    want = score_topk(users, items, np.arange(40), None, 5, screen=False)

    def wrong(user_rows, screen, flat, k, keys, cap):
        n = user_rows.shape[0]
        return torch.zeros((n, k)), torch.zeros((n, k), dtype=torch.long), torch.empty(0, dtype=torch.long)

    monkeypatch.setattr(S, "screened_topk", wrong)
    monkeypatch.setattr(S, "screen_enabled", lambda *a: True)
    monkeypatch.setitem(S._state, "verified", False)
    monkeypatch.setitem(S._state, "disabled", False)
    got = score_topk(users, items, np.arange(40), None, 5)     # the default: screened, first block checked
    np.testing.assert_array_equal(got, want)
    assert S._state["disabled"]


def test_the_screen_is_off_by_hand_and_where_it_does_not_apply(monkeypatch):
    users, items, _ = _case(2, 8, 5000, 16, True, False, 0.0)
    monkeypatch.setenv("ADAPTAU_SCREEN", "0")
    assert not S.screen_enabled(users, items, 20)
    monkeypatch.delenv("ADAPTAU_SCREEN")
    assert not S.screen_applies(users.double(), items.double(), 20)
    assert not S.screen_applies(users, items[:100], 20)         # fewer than 16·k items
    assert S.screen_applies(users, items, 20)


@pytest.mark.parametrize("flags,expected", [("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True),
                                            ("fpu avx2 fma", False)])
def test_native_bfloat16_is_read_from_the_cpu_flags(monkeypatch, tmp_path, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    real_open = open

    def fake_open(path, *a, **kw):
        return real_open(info if path == "/proc/cpuinfo" else path, *a, **kw)

    monkeypatch.setattr("builtins.open", fake_open)
    S.cpu_has_bf16.cache_clear()
    try:
        assert S.cpu_has_bf16() is expected
    finally:
        monkeypatch.undo()
        S.cpu_has_bf16.cache_clear()


def test_a_pass_where_the_screen_does_not_pay_goes_back_to_the_full_product(monkeypatch):
    """Every user all zeros: every row ties everywhere, so every row falls back; the answer is unchanged."""
    calls = []
    real = S.screened_topk

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(S, "screened_topk", counting)
    users = torch.zeros(300, 8)
    items = torch.nn.functional.normalize(torch.randn(4096, 8), dim=1)
    got = score_topk(users, items, np.arange(300), None, 5, batch_users=64, screen=True)
    assert (got == np.arange(5)).all()
    assert len(calls) == 1                                     # the first block fell back; the rest skipped it
