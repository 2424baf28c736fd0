"""The rival losses of issue #17 (adaptau_cli/method/rivals.py) against slow, obvious references.

Every loss is checked row by row, in float64, against a loop over the rows and
their negatives written from its paper's formula (value, per-row values, the τ = 1
rows where it has them, and the gradients); then the wiring: the learned τ moves,
is checkpointed and resumes exactly; the settings a loss cannot honour are
refused with exit code 2; and each rival trains end to end through the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import LossSettings, TrainConfig
from adaptau_cli.cli.app import app
from adaptau_cli.engine.trainer import check_config, train
from adaptau_cli.method import rivals as R
from adaptau_cli.method.losses import AdapTauLoss, Negatives

N_USERS, N_ITEMS = 7, 9
MODES = ("per-row", "shared", "grouped", "in-batch", "all")
SHAPES = [(6, 5, 4), (3, 2, 3), (8, 1, 6)]          # (B, M, d)


# ---------------------------------------------------------------------------
# the batch, and the obvious per-row views of it
# ---------------------------------------------------------------------------

def _batch(B: int, M: int, d: int, seed: int = 0, groups: int = 2):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(N_USERS, d, generator=g, dtype=torch.float64, requires_grad=True)
    I = torch.randn(N_ITEMS, d, generator=g, dtype=torch.float64, requires_grad=True)
    users = torch.randint(0, N_USERS, (B,), generator=g)
    pos = torch.randint(0, N_ITEMS, (B,), generator=g)
    users[-1], pos[-1] = users[0], pos[0]            # a repeated user and item: zero distances in DirectAU
    draws = {"per-row": torch.randint(0, N_ITEMS, (B, M), generator=g),
             "shared": torch.randint(0, N_ITEMS, (M,), generator=g),
             "grouped": torch.randint(0, N_ITEMS, (min(groups, B), M), generator=g),
             "in-batch": None, "all": None}
    w = torch.rand(B, generator=g, dtype=torch.float64) * 4 + 1
    return U, I, users, pos, draws, w


def _negatives_of_row(kind: str, b: int, B: int, pos, draws) -> list[int]:
    """The item ids row b is contrasted with, spelled out."""
    if kind == "per-row":
        return draws["per-row"][b].tolist()
    if kind == "shared":
        return draws["shared"].tolist()
    if kind == "grouped":
        G = draws["grouped"].shape[0]
        group = next(g for g in range(G) if B * g // G <= b < B * (g + 1) // G)
        return draws["grouped"][group].tolist()
    if kind == "in-batch":
        return [int(pos[j]) for j in range(B) if j != b]
    return list(range(N_ITEMS))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt((x * x).sum())


def _cos(U, I, u: int, i: int) -> torch.Tensor:
    return (_unit(U[u]) * _unit(I[i])).sum()


def _call(criterion, U, I, users, pos, draws, kind, w_neg=1.0, w_pos=1.0, track=False):
    negatives = Negatives.from_indices(kind, I, draws[kind], pos)
    return criterion(U[users], I[pos], negatives, w_neg, w_pos, track)


def _at(w, b):
    return w[b] if torch.is_tensor(w) else w


def _check(out, ref_total, ref_rows, inputs, ref_tau1=None, tol=1e-10):
    """Values, per-row values, τ = 1 rows and gradients of a loss against its reference."""
    torch.testing.assert_close(out.loss, ref_total, atol=tol, rtol=tol)
    torch.testing.assert_close(out.row_loss, ref_rows.detach(), atol=tol, rtol=tol)
    if ref_tau1 is None:
        assert out.row_loss_tau1 is None
    else:
        torch.testing.assert_close(out.row_loss_tau1, ref_tau1.detach(), atol=tol, rtol=tol)
    got = torch.autograd.grad(out.loss, inputs, allow_unused=True, retain_graph=True)
    want = torch.autograd.grad(ref_total, inputs, allow_unused=True, retain_graph=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


# ---------------------------------------------------------------------------
# CCL
# ---------------------------------------------------------------------------

def ccl_reference(U, I, users, pos, kind, draws, margin, weight):
    rows = []
    for b in range(len(users)):
        u = int(users[b])
        hinges = [max(_cos(U, I, u, j) - margin, torch.zeros((), dtype=U.dtype))
                  for j in _negatives_of_row(kind, b, len(users), pos, draws)]
        rows.append(max(1 - _cos(U, I, u, int(pos[b])), torch.zeros((), dtype=U.dtype))
                    + weight * sum(hinges) / len(hinges))
    rows = torch.stack(rows)
    return rows.mean(), rows


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("margin,weight", [(0.9, 150.0), (0.0, 2.5), (-0.5, 1.0)])
def test_ccl_matches_the_simplex_formula(shape, kind, margin, weight):
    U, I, users, pos, draws, _ = _batch(*shape)
    out = _call(R.CosineContrastiveLoss(margin, weight), U, I, users, pos, draws, kind, track=True)
    total, rows = ccl_reference(U, I, users, pos, kind, draws, margin, weight)
    _check(out, total, rows, (U, I))


# ---------------------------------------------------------------------------
# DirectAU
# ---------------------------------------------------------------------------

def directau_reference(U, I, users, pos, gamma):
    us = [_unit(U[int(u)]) for u in users]
    its = [_unit(I[int(i)]) for i in pos]

    def uniformity(xs):
        pairs = [torch.exp(-2 * ((xs[a] - xs[b]) ** 2).sum()) for a in range(len(xs)) for b in range(a + 1, len(xs))]
        return torch.log(sum(pairs) / len(pairs))

    align = torch.stack([((a - b) ** 2).sum() for a, b in zip(us, its)])
    rows = align + gamma * (uniformity(us) + uniformity(its)) / 2
    return rows.mean(), rows


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma", [1.0, 0.5, 5.0])
def test_directau_matches_alignment_plus_uniformity(shape, gamma):
    U, I, users, pos, draws, _ = _batch(*shape)
    out = _call(R.DirectAULoss(gamma), U, I, users, pos, draws, "in-batch", track=True)
    total, rows = directau_reference(U, I, users, pos, gamma)
    _check(out, total, rows, (U, I))


def test_directau_uniformity_agrees_with_pdist_and_is_zero_for_one_row():
    x = torch.nn.functional.normalize(torch.randn(11, 5, dtype=torch.float64), dim=1)
    torch.testing.assert_close(R.uniformity(x), torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log())
    assert float(R.uniformity(x[:1])) == 0.0


def test_directau_uniformity_gradient_is_autograds_and_far_rows_do_not_underflow():
    x = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: R.uniformity(v, 2.0), (x,))
    assert torch.autograd.gradcheck(lambda v: R.uniformity(v, 0.5), (x.detach()[:2].clone().requires_grad_(),))
    far = torch.randn(6, 3, dtype=torch.float64) * 40          # exp(-2·‖a−b‖²) is 0.0 in float64
    sq = torch.cdist(far, far).pow(2)
    iu = torch.triu_indices(6, 6, 1)
    expected = torch.logsumexp(-2 * sq[iu[0], iu[1]], 0) - math.log(15)
    value = R.uniformity(far)
    assert torch.isfinite(value)
    torch.testing.assert_close(value, expected)


# ---------------------------------------------------------------------------
# BSL
# ---------------------------------------------------------------------------

def bsl_reference(U, I, users, pos, kind, draws, w_neg, w_pos, t2, include):
    rows, rows1 = [], []
    for b in range(len(users)):
        u = int(users[b])
        fp = _cos(U, I, u, int(pos[b]))
        fn = torch.stack([_cos(U, I, u, j) for j in _negatives_of_row(kind, b, len(users), pos, draws)])
        for wn, wp, out in ((_at(w_neg, b), _at(w_pos, b), rows), (1.0, 1.0, rows1)):
            terms = torch.cat([(wp * fp)[None], wn * fn]) if include else wn * fn
            out.append(-wp * fp + t2 * torch.log(torch.exp(terms).sum()))
    rows = torch.stack(rows)
    return rows.mean(), rows, torch.stack(rows1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("t2,include,per_row_w", [(1.1, False, True), (1.32, True, False), (0.8, False, False)])
def test_bsl_matches_the_authors_per_row_formula(shape, kind, t2, include, per_row_w):
    U, I, users, pos, draws, w = _batch(*shape)
    w_neg, w_pos = (w, w * 0.5 + 1) if per_row_w else (1 / 0.17, 1 / 0.17)
    crit = R.BilateralSoftmaxLoss(t2, positive_in_denominator=include)
    out = _call(crit, U, I, users, pos, draws, kind, w_neg, w_pos, track=True)
    total, rows, rows1 = bsl_reference(U, I, users, pos, kind, draws, w_neg, w_pos, t2, include)
    _check(out, total, rows, (U, I), rows1)


# ---------------------------------------------------------------------------
# softmax with a learned temperature
# ---------------------------------------------------------------------------

def softmax_reference(U, I, users, pos, kind, draws, w, include):
    rows = []
    for b in range(len(users)):
        u = int(users[b])
        fp = _cos(U, I, u, int(pos[b]))
        fn = torch.stack([_cos(U, I, u, j) for j in _negatives_of_row(kind, b, len(users), pos, draws)])
        terms = torch.cat([(w * fp)[None], w * fn]) if include else w * fn
        rows.append(torch.log(torch.exp(terms).sum()) - w * fp)
    rows = torch.stack(rows)
    return rows.mean(), rows


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", MODES)
@pytest.mark.parametrize("tau,include", [(0.07, False), (0.3, True)])
def test_learned_tau_softmax_matches_the_reference_and_differentiates_tau(shape, kind, tau, include):
    U, I, users, pos, draws, w = _batch(*shape)
    crit = R.LearnedTauSoftmaxLoss(tau, 0.01, 2.0, positive_in_denominator=include).double()
    log_tau = crit.log_tau.detach().clone().requires_grad_(True)
    # the run's temperatures are ignored: pass some to show it
    out = _call(crit, U, I, users, pos, draws, kind, w, w, track=True)
    total, rows = softmax_reference(U, I, users, pos, kind, draws, torch.exp(-log_tau), include)
    _check(out, total, rows, (U, I))
    out = _call(crit, U, I, users, pos, draws, kind)
    (got,) = torch.autograd.grad(out.loss, crit.log_tau)
    (want,) = torch.autograd.grad(total, log_tau)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-8)
    assert got != 0


def test_learned_tau_is_clamped_before_each_use():
    crit = R.LearnedTauSoftmaxLoss(0.07, 0.01, 2.0)
    with torch.no_grad():
        crit.log_tau.fill_(math.log(1e-4))          # as if a step had pushed it past the clamp
    assert crit.tau == pytest.approx(0.01)
    U, I, users, pos, draws, _ = _batch(6, 5, 4)
    _call(crit.double(), U, I, users, pos, draws, "shared")
    assert float(crit.log_tau.detach()) == pytest.approx(math.log(0.01))
    with pytest.raises(ValueError, match="tau_min <= tau_init"):
        R.LearnedTauSoftmaxLoss(5.0, 0.01, 2.0)


# ---------------------------------------------------------------------------
# log-Q corrected in-batch softmax
# ---------------------------------------------------------------------------

def logq_reference(U, I, users, pos, popularity, w_neg, w_pos, include):
    log_q = [math.log(max(c, 1) / sum(max(x, 1) for x in popularity)) for c in popularity]
    rows, rows1 = [], []
    B = len(users)
    for b in range(B):
        u, i = int(users[b]), int(pos[b])
        for wn, wp, out in ((_at(w_neg, b), _at(w_pos, b), rows), (1.0, 1.0, rows1)):
            lp = wp * _cos(U, I, u, i) - log_q[i]
            terms = [wn * _cos(U, I, u, int(pos[j])) - log_q[int(pos[j])] for j in range(B) if j != b]
            if include:
                terms = [lp] + terms
            out.append(torch.log(sum(torch.exp(t) for t in terms)) - lp)
    rows = torch.stack(rows)
    return rows.mean(), rows, torch.stack(rows1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include,per_row_w", [(False, True), (True, False), (True, True)])
def test_logq_corrects_every_in_batch_logit(shape, include, per_row_w):
    U, I, users, pos, draws, w = _batch(*shape)
    popularity = np.array([5, 1, 40, 0, 3, 12, 7, 2, 9])
    w_neg, w_pos = (w, w * 0.5 + 1) if per_row_w else (5.0, 5.0)
    crit = R.LogQSoftmaxLoss(popularity, positive_in_denominator=include)
    out = _call(crit, U, I, users, pos, draws, "in-batch", w_neg, w_pos, track=True)
    total, rows, rows1 = logq_reference(U, I, users, pos, popularity, w_neg, w_pos, include)
    _check(out, total, rows, (U, I), rows1)


def test_logq_refuses_other_negatives_and_a_batch_without_ids():
    U, I, users, pos, draws, _ = _batch(6, 5, 4)
    crit = R.LogQSoftmaxLoss(np.ones(N_ITEMS))
    with pytest.raises(ValueError, match="in-batch negatives"):
        _call(crit, U, I, users, pos, draws, "shared")
    with pytest.raises(ValueError, match="positive item ids"):
        crit(U[users], I[pos], Negatives.in_batch())


# ---------------------------------------------------------------------------
# properties: the rivals reduce to the softmax where their papers say so
# ---------------------------------------------------------------------------

@given(seed=st.integers(0, 10_000), B=st.integers(2, 9), M=st.integers(1, 6), d=st.integers(1, 6),
       kind=st.sampled_from(MODES), include=st.booleans(), tau=st.floats(0.05, 2.0))
@settings(max_examples=60, deadline=None)
def test_bsl_with_t2_one_and_learned_tau_are_the_softmax(seed, B, M, d, kind, include, tau):
    """t2 = 1 is the plain softmax loss (the authors' SL); a learned τ at value τ is the fixed-τ softmax."""
    U, I, users, pos, draws, w = _batch(B, M, d, seed)
    softmax = AdapTauLoss("softmax", positive_in_denominator=include, fused=False)
    want = _call(softmax, U, I, users, pos, draws, kind, w, w)
    bsl = _call(R.BilateralSoftmaxLoss(1.0, positive_in_denominator=include), U, I, users, pos, draws, kind, w, w)
    torch.testing.assert_close(bsl.row_loss, want.row_loss)
    learned = R.LearnedTauSoftmaxLoss(tau, 0.01, 2.0, positive_in_denominator=include).double()
    w_learned = math.exp(-float(learned.log_tau.detach()))              # τ as the parameter holds it
    fixed = _call(softmax, U, I, users, pos, draws, kind, w_learned, w_learned)
    torch.testing.assert_close(_call(learned, U, I, users, pos, draws, kind).row_loss, fixed.row_loss)


@given(seed=st.integers(0, 10_000), B=st.integers(2, 9), d=st.integers(1, 6), include=st.booleans(),
       count=st.integers(1, 50), w=st.floats(0.5, 20.0))
@settings(max_examples=60, deadline=None)
def test_logq_with_uniform_popularity_is_the_in_batch_softmax(seed, B, d, include, count, w):
    """With every item equally popular the correction is one constant, and the softmax cancels it."""
    U, I, users, pos, draws, _ = _batch(B, 1, d, seed)
    want = _call(AdapTauLoss("softmax", positive_in_denominator=include), U, I, users, pos, draws, "in-batch", w, w,
                 track=True)
    got = _call(R.LogQSoftmaxLoss(np.full(N_ITEMS, count), positive_in_denominator=include), U, I, users, pos,
                draws, "in-batch", w, w, track=True)
    torch.testing.assert_close(got.row_loss, want.row_loss)
    torch.testing.assert_close(got.row_loss_tau1, want.row_loss_tau1)


@given(seed=st.integers(0, 10_000), B=st.integers(2, 12), d=st.integers(2, 6))
@settings(max_examples=60, deadline=None)
def test_directau_uniformity_is_at_most_zero_and_ignores_row_order(seed, B, d):
    x = torch.nn.functional.normalize(torch.randn(B, d, generator=torch.Generator().manual_seed(seed),
                                                  dtype=torch.float64), dim=1)
    value = R.uniformity(x)
    assert float(value) <= 1e-12
    torch.testing.assert_close(R.uniformity(x.flip(0)), value)


# ---------------------------------------------------------------------------
# make_criterion and the settings check
# ---------------------------------------------------------------------------

def test_make_criterion_builds_the_same_adaptau_loss_for_softmax_and_bpr_and_each_rival():
    pop = np.arange(N_ITEMS)
    for loss in ("softmax", "bpr"):
        crit = R.make_criterion(LossSettings(loss=loss, norm="user", positive_in_denominator=True), pop)
        assert type(crit) is AdapTauLoss and crit.kind == loss
        assert (crit.norm_users, crit.norm_items, crit.positive_in_denominator) == (True, False, True)
        assert list(crit.parameters()) == [] and crit.state_dict() == {}

    class Instrumented(AdapTauLoss):
        pass

    assert type(R.make_criterion(LossSettings(), pop, Instrumented)) is Instrumented
    built = {loss: type(R.make_criterion(LossSettings(loss=loss), pop)) for loss in R.RIVALS}
    assert built == {"ccl": R.CosineContrastiveLoss, "directau": R.DirectAULoss, "bsl": R.BilateralSoftmaxLoss,
                     "learned-tau": R.LearnedTauSoftmaxLoss}
    assert type(R.make_criterion(LossSettings(logq=True, negatives="in-batch"), pop)) is R.LogQSoftmaxLoss
    crit = R.make_criterion(LossSettings(loss="ccl", ccl_margin=0.3, ccl_negative_weight=7.0), pop)
    assert (crit.margin, crit.negative_weight) == (0.3, 7.0)
    assert R.make_criterion(LossSettings(loss="bsl", bsl_tau2=1.32), pop).tau2 == 1.32
    assert R.make_criterion(LossSettings(loss="learned-tau", learned_tau_init=0.2), pop).tau == pytest.approx(0.2)
    assert R.make_criterion(LossSettings(loss="directau", directau_gamma=2.0), pop).gamma == 2.0


def test_every_rival_says_what_it_needs():
    for loss, rival in R.RIVALS.items():
        assert not rival.tau1 or rival.run_temperature, loss
        assert rival.run_temperature or rival.why, loss


# ---------------------------------------------------------------------------
# training: the learned τ moves, is checkpointed, and resumes exactly
# ---------------------------------------------------------------------------

QUICK = dict(batch_size=256, num_negatives=32, lr=0.01, negatives="shared", device="cpu", threads=1,
             ks=(10, 20), seed=5)


def _history(path) -> pd.DataFrame:
    return pd.read_parquet(path / "history.parquet").drop(columns=["train_seconds", "eval_seconds"])


def test_learned_tau_moves_is_checkpointed_and_resumes_exactly(sample, tmp_path):
    data_cfg, ds = sample
    cfg = TrainConfig(**QUICK, epochs=3, loss="learned-tau", tau_mode="none", learned_tau_init=0.2)
    res = train(cfg, data_cfg, ds, tmp_path / "whole")
    taus = res.history["learned_tau"].tolist()
    assert len(taus) == 3 and all(0.01 <= t <= 2.0 for t in taus)
    assert abs(taus[0] - 0.2) > 1e-4 and taus[1] != taus[0]          # trained with the model
    ckpt = torch.load(tmp_path / "whole" / "checkpoint-last.pt", weights_only=True)
    assert math.exp(float(ckpt["criterion"]["log_tau"])) == pytest.approx(taus[-1], rel=1e-6)
    # two epochs, then resume to three: the same run as the uninterrupted one
    train(dataclasses.replace(cfg, epochs=2), data_cfg, ds, tmp_path / "split")
    train(cfg, data_cfg, ds, tmp_path / "split", resume=True)
    pd.testing.assert_frame_equal(_history(tmp_path / "split"), _history(tmp_path / "whole"))


def test_a_loss_without_state_writes_no_criterion_and_old_checkpoints_resume(sample, tmp_path):
    data_cfg, ds = sample
    cfg = TrainConfig(**QUICK, epochs=2, tau_mode="none", loss="ccl")
    train(dataclasses.replace(cfg, epochs=1), data_cfg, ds, tmp_path / "r")
    ckpt = torch.load(tmp_path / "r" / "checkpoint-last.pt", weights_only=True)
    assert "criterion" not in ckpt                                   # as every checkpoint written before
    res = train(cfg, data_cfg, ds, tmp_path / "r", resume=True)
    assert res.epochs_run == 2 and "learned_tau" not in res.history.columns


# ---------------------------------------------------------------------------
# refusals: one readable line, exit code 2
# ---------------------------------------------------------------------------

FAST = ["--epochs", "1", "--batch-size", "256", "--num-negatives", "16", "--lr", "0.01", "--device", "cpu",
        "--threads", "1", "--seed", "3", "--quiet"]


def _cli(args):
    res = CliRunner().invoke(app, args)
    return res.exit_code, " ".join(res.output.split())


@pytest.mark.parametrize("args,needle", [
    (["--loss", "ccl"], "--loss ccl has no per-row loss at τ = 1, which --tau-mode adap-tau learns"),
    (["--loss", "directau", "--negatives", "in-batch", "--tau-mode", "adap-tau0"],
     "--loss directau has no per-row loss at τ = 1"),
    (["--loss", "learned-tau", "--tau-mode", "adap-tau"], "--loss learned-tau has no per-row loss at τ = 1"),
    (["--loss", "ccl", "--tau-mode", "fixed"], "--loss ccl takes no temperature from --tau-mode fixed"),
    (["--loss", "learned-tau", "--tau-mode", "fixed"], "its τ is a parameter trained with the model"),
    (["--logq", "--negatives", "shared"], "--logq corrects in-batch negatives"),
    (["--logq", "--negatives", "in-batch", "--loss", "bsl"], "--logq corrects the softmax's logits, not --loss bsl"),
    (["--loss", "directau", "--tau-mode", "none"], "--loss directau uses no sampled negatives"),
    (["--loss", "ccl", "--tau-mode", "none", "--norm", "none"], "is defined on normalized embeddings"),
    (["--loss", "ccl", "--tau-mode", "none", "--positive-in-denominator"], "has no softmax denominator"),
    (["--loss", "ccl", "--tau-mode", "none", "--ccl-margin", "1.5"], "--ccl-margin must be a cosine in (-1, 1)"),
    (["--loss", "bsl", "--bsl-tau2", "0"], "--bsl-tau2 must be > 0"),
    (["--loss", "learned-tau", "--tau-mode", "none", "--learned-tau-init", "5"],
     "need 0 < --learned-tau-min <= --learned-tau-init <= --learned-tau-max"),
    (["--loss", "directau", "--tau-mode", "none", "--negatives", "in-batch", "--directau-gamma", "-1"],
     "--directau-gamma must be >= 0"),
])
def test_settings_a_rival_cannot_honour_exit_2_in_one_line(tmp_path, args, needle):
    code, text = _cli(["train", "synthetic-tiny", *FAST, "--out", str(tmp_path / "r"), *args])
    assert code == 2, text
    assert needle in text
    assert not (tmp_path / "r" / "checkpoint-last.pt").exists()


def test_the_engine_refuses_the_same_without_the_cli():
    with pytest.raises(UserError, match="has no per-row loss at τ = 1"):
        check_config(TrainConfig(loss="directau", negatives="in-batch"))
    check_config(TrainConfig(loss="bsl", tau_mode="adap-tau"))      # BSL has its τ = 1 rows: Adap-τ works


# ---------------------------------------------------------------------------
# each rival end to end through `adaptau train`
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--loss", "ccl", "--tau-mode", "none", "--ccl-margin", "0.5", "--ccl-negative-weight", "20"],
    ["--loss", "directau", "--tau-mode", "none", "--negatives", "in-batch", "--directau-gamma", "0.5"],
    ["--loss", "bsl", "--tau-mode", "adap-tau", "--warmup-epochs", "1", "--bsl-tau2", "1.2"],
    ["--loss", "learned-tau", "--tau-mode", "none", "--learned-tau-init", "0.1", "--learned-tau-max", "1"],
    ["--logq", "--negatives", "in-batch", "--tau-mode", "fixed", "--tau", "0.2"],
], ids=["ccl", "directau", "bsl", "learned-tau", "logq"])
def test_each_rival_trains_through_the_cli(tmp_path, args):
    out = tmp_path / "run"
    code, text = _cli(["train", "synthetic-tiny", *FAST, "--epochs", "2", "--out", str(out), "--json", *args])
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    cfg = report["train_config"]
    flags = dict(zip(args[::2], args[1::2])) if "--logq" not in args else {}
    if "--loss" in flags:
        assert cfg["loss"] == flags["--loss"]
    for flag, value in flags.items():
        key = flag[2:].replace("-", "_")
        if key not in ("loss", "tau_mode", "negatives", "warmup_epochs", "tau"):
            assert cfg[key] == pytest.approx(float(value))
    assert cfg["logq"] is ("--logq" in args)
    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == 2 and np.isfinite(history["loss"]).all()
    assert ("learned_tau" in history.columns) is ("learned-tau" in args)
    assert 0 <= report["test_metrics"]["recall@20"] <= 1
