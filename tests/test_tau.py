"""Adap-τ0 closed form, warm-up prior, guards and per-user τ_u, against brute force."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
import torch.nn.functional as F

from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.method import tau as T
from adaptau_cli.workflows.estimate import estimate_tau


def _random_model(seed=0, n=13, m=11, d=5, per_user=4):
    g = torch.Generator().manual_seed(seed)
    u = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    i = F.normalize(torch.randn(m, d, generator=g, dtype=torch.float64), dim=1)
    rng = np.random.default_rng(seed)
    pu, pi = [], []
    for user in range(n):
        k = 1 + (user % per_user)
        pu += [user] * k
        pi += rng.choice(m, k, replace=False).tolist()
    return u, i, np.array(pu), np.array(pi)


def test_score_stats_equal_brute_force_over_all_pairs():
    u, i, pu, pi = _random_model()
    users = T.filtered_users(np.bincount(pu, minlength=u.shape[0]), 0.2)
    sel = np.isin(pu, users)
    stats = T.score_stats(u, i, users, pu[sel], pi[sel])
    allpairs = (u[users] @ i.t()).numpy().ravel()          # every (user, item) pair, brute force
    pos = np.array([float(u[a] @ i[b]) for a, b in zip(pu[sel], pi[sel])])
    assert stats.mu == pytest.approx(allpairs.mean(), abs=1e-12)
    assert stats.var == pytest.approx(allpairs.var(), abs=1e-12)
    assert stats.mu_pos == pytest.approx(pos.mean(), abs=1e-12)
    assert stats.var_pos == pytest.approx(pos.var(), abs=1e-12)


@given(n_pairs=st.integers(1, 400), block=st.integers(1, 64), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_positive_moments_in_blocks_equal_one_pass(n_pairs, block, seed):
    """The bounded-memory path (any block size) gives the one-pass mean and variance."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(17, 4, generator=g, dtype=torch.float64) * 3 + 1     # off-centre: cancellation-prone
    i = torch.randn(19, 4, generator=g, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    pu, pi = rng.integers(0, 17, n_pairs), rng.integers(0, 19, n_pairs)
    pos = np.array([float(u[a] @ i[b]) for a, b in zip(pu, pi)])
    old = T.PAIR_BLOCK
    try:
        T.PAIR_BLOCK = block
        mean, var = T.positive_moments(u, i, pu, pi)
    finally:
        T.PAIR_BLOCK = old
    assert mean == pytest.approx(pos.mean(), rel=1e-12, abs=1e-12)
    assert var == pytest.approx(pos.var(), rel=1e-10, abs=1e-12)


def test_tau0_from_model_matches_formula_on_brute_force_stats():
    u, i, pu, pi = _random_model(seed=3)
    # make positives more similar than average so the gap is positive
    i = F.normalize(i + 0.0, dim=1)
    u = u.clone()
    for a, b in zip(pu, pi):
        u[a] = u[a] + 0.7 * i[b]
    u = F.normalize(u, dim=1)
    counts = np.bincount(pu, minlength=u.shape[0])
    users = T.filtered_users(counts, 0.2)
    sel = np.isin(pu, users)
    lt = T.log_term(len(users), i.shape[0], int(sel.sum()))
    allpairs = (u[users] @ i.t()).numpy().ravel()
    pos = np.array([float(u[a] @ i[b]) for a, b in zip(pu[sel], pi[sel])])
    gap, dvar = pos.mean() - allpairs.mean(), pos.var() - allpairs.var()
    brute_full = dvar / (-gap + math.sqrt(gap ** 2 + 2 * dvar * lt))
    stats = T.score_stats(u, i, users, pu[sel], pi[sel])
    full = T.tau0_full(stats.mu_pos, stats.mu, stats.var_pos, stats.var, lt)
    simple = T.tau0_simplified(stats.mu_pos, stats.mu, lt)
    assert gap > 0
    assert full == pytest.approx(brute_full, rel=1e-10)
    assert simple == pytest.approx(gap / lt, rel=1e-10)
    # the full form solves log_term = gap/τ + Δσ²/(2τ²)
    assert gap / full + dvar / (2 * full ** 2) == pytest.approx(lt, rel=1e-10)


def test_full_formula_tends_to_the_simplified_one():
    assert T.tau0_full(0.5, 0.1, 0.02 + 1e-9, 0.02, 2.0) == pytest.approx(0.4 / 2.0, rel=1e-6)
    assert T.tau0_full(0.5, 0.1, 0.02, 0.02, 2.0) == pytest.approx(0.2)


def test_user_filter_is_strictly_above_the_quantile():
    counts = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])   # user 0 has no training pair
    keep = T.filtered_users(counts, 0.2)
    thr = np.quantile(counts[1:], 0.2)
    assert thr == pytest.approx(2.8)
    assert keep.tolist() == [3, 4, 5, 6, 7, 8, 9, 10]
    # ties at the threshold are excluded (strict >)
    assert T.filtered_users(np.array([2, 2, 2, 2, 5]), 0.2).tolist() == [4]


def _read_lightgcn(path):
    users, items = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) > 1:
            users += [int(parts[0])] * (len(parts) - 1)
            items += [int(x) for x in parts[1:]]
    return np.array(users), np.array(items)


def test_ml1m_prior_matches_the_published_numbers(shared_datasets):
    root = shared_datasets / "ml-1m"
    ds = PreparedDataset.from_arrays(_read_lightgcn(root / "train.txt"), _read_lightgcn(root / "test.txt"),
                                     name="ml-1m")
    est = estimate_tau(ds)
    assert est.log_term == pytest.approx(2.247, abs=5e-4)
    assert est.prior_tau0 == pytest.approx(0.311, abs=1e-3)
    assert est.prior_w0 == pytest.approx(1 / est.prior_tau0)
    assert est.n_items == 3043


def test_prior_and_log_term():
    assert T.log_term(100, 50, 250) == pytest.approx(math.log(100 * 50 / 500))
    assert T.prior_tau0(2.0, 0.7) == pytest.approx(0.35)
    assert math.isnan(T.prior_tau0(-1.0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.3, 0.0])
def test_guard_falls_back_to_the_prior(bad):
    tau0, reason = T.guard_tau0(bad, 0.31, 0.02, 2.0)
    assert tau0 == 0.31
    assert reason and "prior" in reason


def test_guard_clamps_and_stays_silent_in_range():
    assert T.guard_tau0(1e-7, 0.31, 0.02, 2.0)[0] == 0.02
    assert "clamped" in T.guard_tau0(1e-7, 0.31, 0.02, 2.0)[1]
    assert T.guard_tau0(5e6, 0.31, 0.02, 2.0)[0] == 2.0
    assert T.guard_tau0(0.1, 0.31, 0.02, 2.0) == (0.1, None)


def test_epoch_zero_gives_tau0_for_everyone():
    tau = T.user_taus(0.2, None, 7)
    assert torch.equal(tau, torch.full((7,), 0.2, dtype=torch.float64))


def test_tau_u_grows_with_the_users_loss():
    loss = torch.tensor([3.0, 3.3, 3.6, 3.9, 4.5], dtype=torch.float64)
    tau = T.user_taus(0.1, loss, 5)
    assert torch.all(torch.diff(tau) > 0)
    # the closed form: τ0·exp(W((L - mean)/scale))
    x = (loss - loss.mean()).clamp(min=-1 / math.e).numpy()
    import scipy.special
    np.testing.assert_allclose(tau.numpy()[1:], 0.1 * np.exp(scipy.special.lambertw(x[1:]).real), rtol=1e-12)
    assert tau[0].item() == pytest.approx(0.1 / math.e, rel=1e-14)   # clamped at -1/e: W = -1


def test_tau_u_baselines_scale_clamp_and_mask():
    loss = torch.tensor([0.0, 1.0, 2.0, 3.0, 100.0], dtype=torch.float64)
    # the user at the mean gets tau0; very easy users are clamped at W(-1/e) = -1 -> tau0/e
    x = T.lambert_argument(loss, "mean")
    assert x[0] == pytest.approx(-1 / math.e)
    assert x[-1] == pytest.approx(min(1000.0, 100 - loss.mean().item()))
    q = T.lambert_argument(loss, "quantile", quantile=0.5)
    assert q[2] == 0.0
    half = T.lambert_argument(loss, "quantile", quantile=0.5, scale=0.5)
    assert half[3] == pytest.approx(2.0)
    mask = torch.tensor([True, True, True, True, False])
    masked = T.lambert_argument(loss, "mean", mask=mask)
    assert masked[4] == 0.0 and masked[2] == pytest.approx(0.5)   # baseline = mean of masked users = 1.5
    tau = T.user_taus(0.5, loss, 5, tau_min=0.2, tau_max=1.0)
    assert tau.min() >= 0.2 and tau.max() <= 1.0 and tau[-1] == 1.0
    with pytest.raises(ValueError):
        T.lambert_argument(loss, "median")


def test_tau_state_round_trip():
    s = T.TauState(0.3, "prior", None, 2.2, float("nan"), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))
    back = T.TauState.from_dict(s.to_dict())
    assert back.tau0 == 0.3 and back.source == "prior" and torch.equal(back.user_loss, s.user_loss)
    assert back.w0 == pytest.approx(1 / 0.3)


# ---------------------------------------------------------------- the warm-up rule

def test_warmup_without_a_rule_is_a_fixed_count():
    w = T.Warmup(max_epochs=3)
    seen = []
    for epoch in range(1, 7):
        seen.append(w.active(epoch))
        w.observe(epoch, 0.1)             # never improving: no rule, so it does not matter
    assert seen == [True, True, True, False, False, False]
    assert w.ended_after == 3 and w.reason == "3 warm-up epochs done"


def test_warmup_ends_after_patience_evaluations_without_a_gain():
    w = T.Warmup(max_epochs=100, patience=2)
    values = [0.1, 0.2, 0.25, 0.24, 0.25, 0.3]     # epochs 4 and 5 bring no gain over 0.25
    ended = [w.observe(e, v, "recall@20") for e, v in enumerate(values, start=1) if w.active(e)]
    assert w.ended_after == 5 and ended[-1] == "no recall@20 gain under the prior for 2 evaluations"
    assert not w.active(6)


def test_warmup_ignores_epochs_that_were_not_evaluated_and_stops_at_the_cap():
    w = T.Warmup(max_epochs=4, patience=2)
    for epoch, value in [(1, 0.1), (2, None), (3, None), (4, 0.2)]:
        w.observe(epoch, value)
    assert w.ended_after == 4 and w.reason == "4 warm-up epochs done"
    assert T.Warmup(max_epochs=0).ended_after == 0


def test_warmup_state_round_trips():
    w = T.Warmup(max_epochs=10, patience=3)
    for e, v in enumerate([0.1, 0.3, 0.2], start=1):
        w.observe(e, v)
    again = T.Warmup.from_dict(w.to_dict())
    assert again == w and again.since == 1 and again.best == 0.3


def test_estimate_tau_says_when_and_why_the_warmup_ended(tmp_path):
    from cli_helpers import run_cli

    code, _, err = run_cli(["train", "synthetic-tiny", "--epochs", "8", "--warmup-epochs", "3", "--lr", "0.01",
                            "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 0, err
    code, out, err = run_cli(["estimate-tau", "synthetic-tiny", "--checkpoint", str(tmp_path / "r"), "--json"])
    payload = __import__("json").loads(out)
    assert payload["warmup_ended_after"] == 3 and payload["warmup_reason"] == "3 warm-up epochs done"
    code, _, err = run_cli(["estimate-tau", "synthetic-tiny", "--checkpoint", str(tmp_path / "r")])
    assert "warm-up ended" in err and "after epoch 3" in err
