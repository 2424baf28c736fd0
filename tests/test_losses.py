"""Every loss against a hand-written per-row reference (value and gradient)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptau_cli.method import losses as L

B, M, N_USERS, N_ITEMS, D = 6, 5, 7, 9, 4


def _tables(seed=0):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(N_USERS, D, generator=g, dtype=torch.float64, requires_grad=True)
    I = torch.randn(N_ITEMS, D, generator=g, dtype=torch.float64, requires_grad=True)
    users = torch.tensor([0, 3, 3, 6, 2, 1])
    pos = torch.tensor([1, 4, 0, 8, 8, 2])
    per_row = torch.randint(0, N_ITEMS, (B, M), generator=g)
    shared = torch.randint(0, N_ITEMS, (M,), generator=g)
    w = torch.rand(B, generator=g, dtype=torch.float64) * 4 + 1
    return U, I, users, pos, per_row, shared, w


def _score(U, I, u, i, norm):
    a, b = U[u], I[i]
    if norm in ("both", "user"):
        a = a / a.norm()
    if norm in ("both", "item"):
        b = b / b.norm()
    return (a * b).sum()


def reference(U, I, users, pos, negs_of_row, w_neg, w_pos, include_pos, norm="both", loss="softmax",
              l2=0.0, l2_negs=None):
    """Row by row, the obvious way."""
    rows, rows1 = [], []
    for b in range(len(users)):
        u = int(users[b])
        fp = _score(U, I, u, int(pos[b]), norm)
        fn = torch.stack([_score(U, I, u, int(j), norm) for j in negs_of_row(b)])
        wn = w_neg[b] if torch.is_tensor(w_neg) else w_neg
        wp = w_pos[b] if torch.is_tensor(w_pos) else w_pos
        for scale_n, scale_p, out in ((wn, wp, rows), (1.0, 1.0, rows1)):
            lp, ln = fp * scale_p, fn * scale_n
            if loss == "softmax":
                terms = torch.cat([lp[None], ln]) if include_pos else ln
                out.append(torch.log(torch.exp(terms).sum()) - lp)
            else:
                out.append(torch.log1p(torch.exp(-(lp - ln))).mean())
    rows, rows1 = torch.stack(rows), torch.stack(rows1)
    total = rows.mean()
    if l2:
        reg = sum(U[int(u)].pow(2).sum() for u in users) + sum(I[int(i)].pow(2).sum() for i in pos)
        reg = reg + sum(I[int(j)].pow(2).sum() for j in l2_negs)
        total = total + l2 * reg / (2 * len(users))
    return total, rows.detach(), rows1.detach()


def _grads(total, U, I):
    gu, gi = torch.autograd.grad(total, (U, I))
    return gu, gi


CASES = list(itertools.product(["per-row-dense", "per-row-chunked", "shared-fused", "shared-plain",
                                "grouped-fused", "grouped-plain", "in-batch-fused", "in-batch-plain"],
                               [False, True], [False, True]))
GROUPS = 4   # grouped: 6 rows in slices of 1, 2, 1, 2 (group_bounds), each against its own block


def _group_of_row(b: int) -> int:
    return next(g for g, (s, e) in enumerate(L.group_bounds(B, GROUPS)) if s <= b < e)


@pytest.mark.parametrize("mode,include_pos,user_positive", CASES)
def test_softmax_matches_the_per_row_reference(mode, include_pos, user_positive, monkeypatch):
    monkeypatch.setattr(L, "FUSED_CHUNK_ELEMENTS", 2 * M)   # several row chunks in the fused path
    monkeypatch.setattr(L, "CHUNK_ELEMENTS", 2 * M * D)      # and in the chunked per-row path
    U, I, users, pos, per_row, shared, w = _tables()
    w_pos = w if user_positive else 2.5
    negatives = mode.rsplit("-", 1)[0] if not mode.startswith("per-row") else "per-row"
    if negatives == "per-row":
        negs, of_row, l2_negs = per_row, (lambda b: per_row[b].tolist()), per_row.reshape(-1).tolist()
    elif negatives == "shared":
        negs, of_row, l2_negs = shared, (lambda b: shared.tolist()), shared.tolist() * B
    elif negatives == "grouped":
        negs = torch.randint(0, N_ITEMS, (GROUPS, M), generator=torch.Generator().manual_seed(5))
        of_row = lambda b: negs[_group_of_row(b)].tolist()  # noqa: E731
        l2_negs = [j for b in range(B) for j in of_row(b)]
    else:
        negs, of_row, l2_negs = None, (lambda b: [int(pos[j]) for j in range(B) if j != b]), []
    out = L.batch_loss(U, I, users, pos, negs, negatives=negatives, w_neg=w, w_pos=w_pos,
                       positive_in_denominator=include_pos, l2=0.01, track_tau1=True,
                       per_row_strategy=mode.rsplit("-", 1)[1] if negatives == "per-row" else "auto",
                       fused=mode.endswith("fused"))
    ref_total, ref_rows, ref_rows1 = reference(U, I, users, pos, of_row, w, w_pos, include_pos, l2=0.01,
                                               l2_negs=l2_negs)
    torch.testing.assert_close(out.loss, ref_total, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.row_loss, ref_rows, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.row_loss_tau1, ref_rows1, rtol=1e-10, atol=1e-12)
    got, want = _grads(out.loss, U, I), _grads(ref_total, U, I)
    torch.testing.assert_close(got[0], want[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("norm", ["none", "user", "item"])
@pytest.mark.parametrize("negatives", ["shared", "in-batch"])
def test_other_normalizations_match_the_reference(norm, negatives):
    U, I, users, pos, _, shared, w = _tables(1)
    of_row = (lambda b: shared.tolist()) if negatives == "shared" else (lambda b: [int(pos[j]) for j in range(B) if j != b])
    out = L.batch_loss(U, I, users, pos, shared, negatives=negatives, norm=norm, w_neg=w, w_pos=w,
                       track_tau1=True)
    ref_total, ref_rows, ref_rows1 = reference(U, I, users, pos, of_row, w, w, False, norm=norm)
    torch.testing.assert_close(out.loss, ref_total, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.row_loss_tau1, ref_rows1, rtol=1e-10, atol=1e-12)
    for a, b in zip(_grads(out.loss, U, I), _grads(ref_total, U, I)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_group_bounds_cover_the_batch_in_order():
    for rows in range(0, 20):
        for groups in range(1, 8):
            bounds = L.group_bounds(rows, groups)
            assert len(bounds) == groups and bounds[0][0] == 0 and bounds[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [e - s for s, e in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_grouped_with_one_group_is_shared_and_with_b_groups_is_per_row():
    U, I, users, pos, per_row, shared, w = _tables(4)
    one = L.batch_loss(U, I, users, pos, shared[None, :], negatives="grouped", w_neg=w, w_pos=w, l2=0.01)
    ref = L.batch_loss(U, I, users, pos, shared, negatives="shared", w_neg=w, w_pos=w, l2=0.01)
    torch.testing.assert_close(one.loss, ref.loss, rtol=1e-12, atol=1e-12)
    every = L.batch_loss(U, I, users, pos, per_row, negatives="grouped", w_neg=w, w_pos=w, l2=0.01)
    ref = L.batch_loss(U, I, users, pos, per_row, negatives="per-row", w_neg=w, w_pos=w, l2=0.01)
    torch.testing.assert_close(every.loss, ref.loss, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("negatives", ["per-row", "shared", "in-batch"])
def test_bpr_matches_the_reference(negatives):
    U, I, users, pos, per_row, shared, w = _tables(2)
    negs = {"per-row": per_row, "shared": shared, "in-batch": None}[negatives]
    of_row = {"per-row": lambda b: per_row[b].tolist(), "shared": lambda b: shared.tolist(),
              "in-batch": lambda b: [int(pos[j]) for j in range(B) if j != b]}[negatives]
    out = L.batch_loss(U, I, users, pos, negs, negatives=negatives, loss="bpr", w_neg=w, w_pos=3.0,
                       track_tau1=True)
    ref_total, ref_rows, ref_rows1 = reference(U, I, users, pos, of_row, w, 3.0, False, loss="bpr")
    torch.testing.assert_close(out.loss, ref_total, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.row_loss_tau1, ref_rows1, rtol=1e-10, atol=1e-12)
    for a, b in zip(_grads(out.loss, U, I), _grads(ref_total, U, I)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_shared_with_every_item_is_the_full_softmax(fused):
    U, I, users, pos, _, _, w = _tables(3)
    out = L.batch_loss(U, I, users, pos, torch.arange(N_ITEMS), negatives="shared", w_neg=w, w_pos=w,
                       fused=fused)
    logits = F.normalize(U[users], dim=1) @ F.normalize(I, dim=1).t() * w[:, None]
    full = F.cross_entropy(logits, pos)
    torch.testing.assert_close(out.loss, full, rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(out.loss, U, I), _grads(full, U, I)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fused,include_pos", [(True, False), (False, False), (True, True)])
def test_all_items_matches_the_reference_with_expected_l2(fused, include_pos):
    """``all``: every item is a negative of every row; L2 weights each item by M/m (per-row's expectation)."""
    U, I, users, pos, _, _, w = _tables(4)
    weight = M / N_ITEMS
    out = L.batch_loss(U, I, users, pos, None, negatives="all", w_neg=w, w_pos=2.0, l2=0.01,
                       positive_in_denominator=include_pos, track_tau1=True, fused=fused,
                       neg_l2_weight=weight)
    ref_total, ref_rows, ref_rows1 = reference(U, I, users, pos, lambda b: list(range(N_ITEMS)), w, 2.0,
                                               include_pos, l2=0.01, l2_negs=[])
    ref_total = ref_total + 0.01 * weight * I.pow(2).sum() / 2   # B rows x weight x Σ‖e_j‖², over 2B
    torch.testing.assert_close(out.loss, ref_total, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.row_loss, ref_rows, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.row_loss_tau1, ref_rows1, rtol=1e-10, atol=1e-12)
    for a, b in zip(_grads(out.loss, U, I), _grads(ref_total, U, I)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_all_items_l2_is_the_expectation_of_per_row_draws():
    """Averaged over many per-row draws, the engine's sampled L2 term approaches the ``all`` one."""
    U, I, users, pos, _, _, _ = _tables(5)
    g = torch.Generator().manual_seed(7)

    def l2_part(negatives, negs):
        with torch.no_grad():
            on = L.batch_loss(U, I, users, pos, negs, negatives=negatives, l2=1.0, neg_l2_weight=M / N_ITEMS)
            off = L.batch_loss(U, I, users, pos, negs, negatives=negatives, l2=0.0)
        return on.loss - off.loss

    draws = torch.stack([l2_part("per-row", torch.randint(0, N_ITEMS, (B, M), generator=g)) for _ in range(2000)])
    torch.testing.assert_close(draws.mean(), l2_part("all", None), rtol=0.01, atol=0.0)


def test_float32_fused_equals_plain_autograd_path():
    g = torch.Generator().manual_seed(5)
    U = torch.randn(50, 16, generator=g, requires_grad=True)
    I = torch.randn(40, 16, generator=g, requires_grad=True)
    users, pos = torch.randint(0, 50, (64,), generator=g), torch.randint(0, 40, (64,), generator=g)
    negs = torch.randint(0, 40, (32,), generator=g)
    w = torch.rand(64, generator=g) * 40 + 5      # up to 1/τ = 45: large logits
    a = L.batch_loss(U, I, users, pos, negs, w_neg=w, w_pos=6.0, fused=True, track_tau1=True)
    b = L.batch_loss(U, I, users, pos, negs, w_neg=w, w_pos=6.0, fused=False, track_tau1=True)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.row_loss_tau1, b.row_loss_tau1, rtol=1e-5, atol=1e-5)
    for x, y in zip(_grads(a.loss, U, I), _grads(b.loss, U, I)):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_bad_choices_are_rejected():
    U, I, users, pos, per_row, shared, w = _tables()
    with pytest.raises(ValueError):
        L.batch_loss(U, I, users, pos, shared, negatives="random")
    with pytest.raises(ValueError):
        L.batch_loss(U, I, users, pos, shared, loss="hinge")
    with pytest.raises(ValueError):
        L.normalize_flags("l1")


@pytest.mark.parametrize("mask_diag,include_pos", [(False, False), (True, True)])
def test_fused_gradient_with_any_upstream_gradient(mask_diag, include_pos):
    """Upstream weights of mixed sign: the backward's per-row scale carries the sign."""
    g = torch.Generator().manual_seed(11)
    u = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    n = torch.randn(6 if mask_diag else 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(6, generator=g, dtype=torch.float64) * 3 + 0.5
    weights = torch.randn(6, generator=g, dtype=torch.float64)
    rows, _ = L.fused_matrix_softmax(u, n, pos, w, 2.0, include_pos, mask_diag=mask_diag)
    mask = ~torch.eye(6, dtype=torch.bool) if mask_diag else None
    ref = L.softmax_rows(pos, u @ n.t(), w, 2.0, include_pos, mask)
    torch.testing.assert_close(rows, ref, rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad((rows * weights).sum(), (u, n, pos))
    want = torch.autograd.grad((ref * weights).sum(), (u, n, pos))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tau", [0.5, 0.05, 0.0226, 0.02, 0.005])
@pytest.mark.parametrize("include_pos", [False, True])
def test_fused_cosine_softmax_with_and_without_the_max_shift_matches_float64(tau, include_pos):
    """Cosine logits skip the max shift while |w·log2 e| <= 64 (τ >= 0.0225) and take it below: both ways
    agree with a float64 reference, and τ = 0.005 (logits of ±289 in base 2) stays finite."""
    g = torch.Generator().manual_seed(3)
    u = F.normalize(torch.randn(40, 8, generator=g), dim=1).requires_grad_()
    n = F.normalize(torch.randn(30, 8, generator=g), dim=1).requires_grad_()
    pos = (u.detach() * n.detach()[:1]).sum(1).requires_grad_()
    w = torch.full((40,), 1 / tau)
    w[::7] = 1 / max(tau, 0.1)                    # rows of another temperature in the same batch
    rows, rows1 = L.fused_matrix_softmax(u, n, pos, w, w, include_pos, bounded=True)
    u64, n64, pos64 = (t.detach().double().requires_grad_() for t in (u, n, pos))
    ref = L.softmax_rows(pos64, u64 @ n64.t(), w.double(), w.double(), include_pos)
    ref1 = L.softmax_rows(pos64.detach(), (u64 @ n64.t()).detach(), 1.0, 1.0, include_pos)
    assert torch.isfinite(rows).all() and torch.isfinite(rows1).all()
    torch.testing.assert_close(rows.double(), ref.detach(), rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(rows1.double(), ref1, rtol=1e-5, atol=1e-5)
    got = torch.autograd.grad(rows.mean(), (u, n, pos))
    want = torch.autograd.grad(ref.mean(), (u64, n64, pos64))
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.lists(st.integers(0, 5), max_size=3), st.integers(0, 2**31 - 1))
def test_row_normalize_is_f_normalize_with_the_same_gradient(rows, dim, zero_rows, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    for r in zero_rows:
        x[r % rows] = 0.0                          # clamped rows: the denominator is the constant ε
    if rows > 1:
        x[-1] *= 1e-13                             # a row just under ε
    x.requires_grad_()
    up = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    ours = L.RowNormalize.apply(x)
    theirs = F.normalize(x, dim=-1)
    assert torch.equal(ours, theirs)
    a = torch.autograd.grad(ours, x, up)[0]
    b = torch.autograd.grad(theirs, x, up)[0]
    scale = float((up.abs() / x.detach().norm(dim=-1, keepdim=True).clamp_min(1e-12)).max())   # |g|/‖x‖
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14 * scale)


@pytest.mark.parametrize("negatives", ["shared", "grouped", "per-row", "in-batch"])
def test_gather_batch_reads_each_table_once_and_gives_the_separate_lookups_numbers(negatives):
    """One lookup per table (one block in each sparse gradient), the same loss and gradients as a lookup
    per use, the L2 term included."""
    U, I, users, pos, per_row, shared, w = _tables()
    negs = {"shared": shared, "grouped": per_row[:2], "per-row": per_row, "in-batch": None}[negatives]
    crit = L.AdapTauLoss()
    Us, Is = (torch.nn.Parameter(t.detach().clone()) for t in (U, I))
    rows = L.gather_batch(Us, Is, users, pos, negatives, negs, lookup=L.sparse_rows)
    one = crit(rows.users, rows.pos, rows.negatives, w).loss + L.l2_penalty(
        0.1, Us, Is, users, pos, negatives, negs, rows=rows)
    if negatives in ("shared", "grouped"):
        one.backward()
        assert Us.grad._nnz() == B and Is.grad._nnz() == B + negs.numel()
        got = (Us.grad.to_dense(), Is.grad.to_dense())
    else:
        got = torch.autograd.grad(one, (Us, Is))
        got = tuple(t.to_dense() if t.is_sparse else t for t in got)
    two = crit(U[users], I[pos], L.Negatives.from_indices(negatives, I, negs, pos), w).loss + L.l2_penalty(
        0.1, U, I, users, pos, negatives, negs)
    torch.testing.assert_close(one, two, rtol=1e-12, atol=1e-12)
    for a, b in zip(got, _grads(two, U, I)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_grouped_blocks_run_in_one_kernel_with_empty_slices_and_chunks(monkeypatch):
    """Block g scores only its row slice, an empty slice's block gets a zero gradient (a data-parallel rank's
    share of the blocks), and rows split into chunks within a slice: all as the plain autograd path."""
    monkeypatch.setattr(L, "FUSED_CHUNK_ELEMENTS", 2 * 5)          # chunks of 2 rows inside each slice
    g = torch.Generator().manual_seed(4)
    u = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    blocks = torch.randn(15, 4, generator=g, dtype=torch.float64, requires_grad=True)   # 3 blocks of M = 5
    w = torch.rand(7, generator=g, dtype=torch.float64) * 4 + 1
    bounds = [(0, 3), (3, 3), (3, 7)]
    got = L.AdapTauLoss(fused=True)(u, p, L.Negatives.grouped(blocks, 3, bounds), w, w, track_tau1=True)
    want = L.AdapTauLoss(fused=False)(u, p, L.Negatives.grouped(blocks, 3, bounds), w, w, track_tau1=True)
    torch.testing.assert_close(got.row_loss, want.row_loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got.row_loss_tau1, want.row_loss_tau1, rtol=1e-10, atol=1e-12)
    ga = torch.autograd.grad(got.loss, (u, p, blocks))
    gb = torch.autograd.grad(want.loss, (u, p, blocks))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert torch.count_nonzero(ga[2][5:10]) == 0
    with pytest.raises(ValueError, match="3 negative blocks for 2 row slices"):
        L.fused_matrix_softmax(u, blocks.view(3, 5, 4), u[:, 0], bounds=bounds[:2])
