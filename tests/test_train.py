"""The training loop: learning, temperatures, checkpoints, exact resume, refusals, divergence."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from adaptau_cli.base.errors import TrainingDiverged, UserError
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
from adaptau_cli.engine import trainer as train_mod
from adaptau_cli.engine.runs import load_run, open_run_dataset
from adaptau_cli.engine.trainer import PUBLISHED_LABEL, train
from adaptau_cli.eval.metrics import evaluate_embeddings, split_masks
from adaptau_cli.workflows.estimate import estimate_tau

TIMING = ["train_seconds", "eval_seconds"]


def quick(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=256, num_negatives=64, lr=0.01, warmup_epochs=1, device="cpu", threads=1,
                ks=(10, 20), seed=7, negatives="shared", warmup_patience=0)   # the mechanisms, not the defaults
    base.update(kw)
    return TrainConfig(**base)


def test_training_beats_popularity_on_validation(sample, tmp_path):
    data_cfg, ds = sample
    result = train(quick(epochs=10, warmup_epochs=3), data_cfg, ds, tmp_path / "run")
    pop = torch.tensor(ds.item_popularity, dtype=torch.float32)[:, None]
    heldout, exclude = split_masks(ds, "valid")
    pop_recall = evaluate_embeddings(torch.ones(ds.n_users, 1), pop, heldout, exclude, (20,)).metrics["recall@20"]
    assert result.best_metrics["recall@20"] > pop_recall + 0.05
    assert result.selection == "valid"
    assert set(result.test_metrics) >= {"recall@20", "ndcg@20"}
    for name in ("config.toml", "checkpoint-best.pt", "checkpoint-last.pt", "history.parquet", "report.json",
                 "report.md"):
        assert (tmp_path / "run" / name).is_file()
    hist = pd.read_parquet(tmp_path / "run" / "history.parquet")
    expected = ["epoch", "loss", "tau0", "w0", "tau_u_min", "tau_u_q10", "tau_u_median", "tau_u_q90", "tau_u_max",
                "valid_recall@20", "valid_ndcg@20", "pos_score", "train_seconds", "eval_seconds",
                "positive_in_denominator"] + [f"item_norm_g{g}" for g in range(10)]
    assert set(expected) <= set(hist.columns)
    assert hist["epoch"].tolist() == list(range(1, 11))
    assert hist["pos_score"].iloc[-1] > hist["pos_score"].iloc[0]      # positives get closer
    assert not hist["positive_in_denominator"].any()


def test_temperature_schedule_per_mode(sample, tmp_path):
    data_cfg, ds = sample
    hist = train(quick(epochs=3, warmup_epochs=1), data_cfg, ds, tmp_path / "a").history
    first = hist.iloc[0]
    # epoch 1: the prior for everyone (no per-user loss yet)
    assert first["tau_source"] == "prior"
    assert first["tau_u_min"] == first["tau_u_max"] == first["tau0"]
    assert hist["tau_source"].iloc[1] in ("closed-form", "guarded")
    assert hist["tau_u_max"].iloc[1] > hist["tau_u_min"].iloc[1]       # per-user from epoch 2 on
    assert hist["tau0"].iloc[0] == pytest.approx(estimate_tau(ds).prior_tau0)
    fixed = train(quick(epochs=2, tau_mode="fixed", tau=0.2), data_cfg, ds, tmp_path / "b").history
    assert (fixed["tau0"] == 0.2).all() and (fixed["tau_u_max"] == 0.2).all()
    none = train(quick(epochs=1, tau_mode="none", norm="none"), data_cfg, ds, tmp_path / "c").history
    assert (none["tau0"] == 1.0).all()
    g0 = train(quick(epochs=3, tau_mode="adap-tau0"), data_cfg, ds, tmp_path / "d").history
    assert (g0["tau_u_min"] == g0["tau_u_max"]).all()


def _frame(run_dir):
    return pd.read_parquet(run_dir / "history.parquet").drop(columns=TIMING)


@pytest.mark.parametrize("negatives,says", [("all", "negatives all (every one of the 200 items; L2 weighted as M = 64"),
                                             ("per-row", "negatives per-row (M = 64)"),
                                             ("in-batch", "negatives in-batch (the batch's other positives)")])
def test_report_says_how_negatives_were_drawn(sample, tmp_path, negatives, says):
    data_cfg, ds = sample
    assert ds.n_items == 200
    train(quick(epochs=1, negatives=negatives), data_cfg, ds, tmp_path / "r")
    assert says in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("kw", [dict(dropout=0.2, negatives="shared"),
                                dict(model="lightgcn", negatives="in-batch", layers=2, dropout=0.1),
                                dict(negatives="per-row", num_negatives=16, tau_mode="adap-tau0"),
                                dict(negatives="all", tau_mode="adap-tau"),
                                dict(lr=0.05, lr_decay=0.5, lr_decay_patience=1),
                                dict(tau_mode="adap-tau", warmup_epochs=3, warmup_patience=1),
                                dict(negatives="grouped", negative_groups=3, tau_mode="adap-tau")])
def test_resume_equals_uninterrupted(sample, tmp_path, kw):
    data_cfg, ds = sample
    full = train(quick(epochs=4, **kw), data_cfg, ds, tmp_path / "full")
    train(quick(epochs=2, **kw), data_cfg, ds, tmp_path / "part")
    resumed = train(quick(epochs=4, **kw), data_cfg, ds, tmp_path / "part", resume=True)
    pd.testing.assert_frame_equal(_frame(tmp_path / "full"), _frame(tmp_path / "part"))
    assert resumed.best_epoch == full.best_epoch and resumed.test_metrics == full.test_metrics
    a = torch.load(tmp_path / "full" / "checkpoint-last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint-last.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])


def test_warmup_rule_hands_over_to_the_closed_form_when_the_prior_stops_helping(sample, tmp_path):
    data_cfg, ds = sample
    result = train(quick(epochs=12, tau_mode="adap-tau", warmup_epochs=10, warmup_patience=2, lr=0.05),
                   data_cfg, ds, tmp_path / "r")
    h = result.history
    metric = h["valid_recall@20"].tolist()
    ended = result.report["warmup"]["ended_after_epoch"]
    # the reference: the first epoch that is the second in a row without a new best
    best, since, expected = -1.0, 0, 10
    for epoch, value in enumerate(metric[:10], start=1):
        best, since = (value, 0) if value > best else (best, since + 1)
        if since >= 2:
            expected = epoch
            break
    assert ended == expected
    assert h["warmup"].tolist() == [e <= ended for e in h["epoch"]]
    assert (h.loc[h["warmup"], "tau_source"] == "prior").all()
    assert (h.loc[~h["warmup"], "tau_source"] != "prior").all()
    assert result.report["warmup"]["reason"]


def test_warmup_patience_defaults_to_the_selection_patience_and_is_recorded(sample, tmp_path):
    assert TrainConfig().warmup_patience == TrainConfig().patience == 50
    assert TrainConfig(patience=7).warmup_patience == 7
    assert TrainConfig(patience=7, warmup_patience=0).warmup_patience == 0
    data_cfg, ds = sample
    cfg = quick(epochs=1, patience=3)
    cfg = TrainConfig(**{**dataclasses.asdict(cfg), "warmup_patience": None})
    train(cfg, data_cfg, ds, tmp_path / "r")
    assert "warmup_patience = 3" in (tmp_path / "r" / "config.toml").read_text()   # the number that ran


def test_early_stopping_waits_for_the_warmup_and_counts_from_its_end(sample, tmp_path):
    """A slow lr: the metric stalls under the prior; patience 2 must not stop the run inside the
    10-epoch fixed warm-up, and must stop it 2 epochs after the later of the best epoch and the end."""
    data_cfg, ds = sample
    result = train(quick(epochs=30, tau_mode="adap-tau", warmup_epochs=10, warmup_patience=0, patience=2,
                         lr=0.2), data_cfg, ds, tmp_path / "r")
    h = result.history
    metric = h["valid_recall@20"].tolist()
    assert result.report["warmup"]["ended_after_epoch"] == 10
    # the reference stop: the first epoch e > 10 with e - max(best epoch so far, 10) >= 2
    best, best_epoch, expected = -1.0, 0, None
    for epoch, value in enumerate(metric, start=1):
        if value > best:
            best, best_epoch = value, epoch
        if epoch > 10 and epoch - max(best_epoch, 10) >= 2:
            expected = epoch
            break
    assert expected is not None and len(h) == expected and result.stopped_early
    stalls = [e for e in range(3, 11) if max(metric[:e]) not in metric[e - 2:e]]
    assert stalls, "the case must stall inside the warm-up, or it tests nothing"


def test_existing_run_needs_resume_and_resume_needs_a_run(sample, tmp_path):
    data_cfg, ds = sample
    train(quick(epochs=1), data_cfg, ds, tmp_path / "r")
    with pytest.raises(UserError, match="already holds a run"):
        train(quick(epochs=1), data_cfg, ds, tmp_path / "r")
    with pytest.raises(UserError, match="nothing to resume"):
        train(quick(epochs=1), data_cfg, ds, tmp_path / "empty", resume=True)
    with pytest.raises(UserError, match="dim"):
        train(quick(epochs=2, dim=8), data_cfg, ds, tmp_path / "r", resume=True)


def test_checkpoint_from_another_dataset_is_refused(sample, tmp_path, tiny_dataset):
    data_cfg, ds = sample
    train(quick(epochs=1), data_cfg, ds, tmp_path / "r")
    with pytest.raises(UserError, match="fingerprint"):
        train(quick(epochs=2), data_cfg, tiny_dataset, tmp_path / "r", resume=True)
    run = load_run(tmp_path / "r")
    with pytest.raises(UserError, match="trained on dataset 'synthetic-tiny'"):
        run.scoring_embeddings(tiny_dataset)
    with pytest.raises(UserError, match="fingerprint"):
        estimate_tau(tiny_dataset, run=run)
    assert open_run_dataset(run).fingerprint == ds.fingerprint


def test_load_run_gives_the_scoring_model(sample, tmp_path):
    data_cfg, ds = sample
    res = train(quick(epochs=2, model="lightgcn", negatives="in-batch", layers=2), data_cfg, ds, tmp_path / "g")
    run = load_run(tmp_path / "g")
    assert run.run_dir == tmp_path / "g" and run.checkpoint_path.name == "checkpoint-best.pt"
    assert run.epoch == res.best_epoch and run.train_config.model == "lightgcn"
    assert run.dataset_fingerprint == ds.fingerprint and not run.model.training
    assert len(run.history) == 2
    u, i = run.scoring_embeddings(ds)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(ds.n_users))
    heldout, exclude = split_masks(ds, "test")
    again = evaluate_embeddings(u, i, heldout, exclude, (10, 20)).metrics
    assert again == pytest.approx(res.test_metrics)
    norms = run.raw_item_norms(ds)
    assert norms.shape == (ds.n_items,) and np.all(norms > 0)
    by_file = load_run(tmp_path / "g" / "checkpoint-last.pt")
    assert by_file.epoch == 2 and by_file.run_dir == tmp_path / "g"
    with pytest.raises(UserError):
        load_run(tmp_path / "missing")


def test_in_memory_run_cannot_reopen_its_dataset(tiny_dataset, tmp_path):
    train(quick(epochs=1, ks=(5, 20)), PreprocessConfig(), tiny_dataset, tmp_path / "t")
    with pytest.raises(UserError, match="in-memory"):
        open_run_dataset(load_run(tmp_path / "t"))


def test_select_on_test_is_labelled_the_published_protocol(sample, tmp_path, tiny_dataset):
    data_cfg, ds = sample
    res = train(quick(epochs=2, select_on="test"), data_cfg, ds, tmp_path / "p")
    assert res.selection == PUBLISHED_LABEL == "test (published protocol)"
    assert res.report["selection"] == PUBLISHED_LABEL and "published protocol" in res.report["test_note"]
    assert (res.history["selection"] == PUBLISHED_LABEL).all() and "test_recall@20" in res.history
    assert "published protocol" in (tmp_path / "p" / "report.md").read_text()
    no_valid = dataclasses.replace(tiny_dataset, splits={k: v for k, v in tiny_dataset.splits.items() if k != "valid"})
    with pytest.raises(UserError, match="no valid split"):
        train(quick(epochs=1), PreprocessConfig(), no_valid, tmp_path / "nv")


def test_early_stopping_keeps_the_best_checkpoint(sample, tmp_path, monkeypatch):
    data_cfg, ds = sample
    scores = iter([0.3, 0.5, 0.4, 0.45, 0.2, 0.9, 0.9])

    def fake_eval(*args, **kwargs):
        v = next(scores)
        return type("R", (), {"metrics": {f"{m}@{k}": v for m in train_mod.metric_names() for k in (10, 20)}})()

    monkeypatch.setattr(train_mod, "evaluate_embeddings", fake_eval)
    res = train(quick(epochs=10, patience=3), data_cfg, ds, tmp_path / "e")
    assert res.best_epoch == 2 and res.epochs_run == 5 and res.stopped_early
    assert torch.load(tmp_path / "e" / "checkpoint-best.pt", weights_only=True)["epoch"] == 2


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(sample, tmp_path, monkeypatch):
    data_cfg, ds = sample
    calls = {"n": 0}
    per_epoch = -(-len(ds.train) // 256)

    class Poisoned(train_mod.AdapTauLoss):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == per_epoch + 3:               # epoch 2, batch 3
                out.loss = out.loss * float("nan")
            return out

    monkeypatch.setattr(train_mod, "AdapTauLoss", Poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 3.*checkpoint-last.pt \(epoch 1\)"):
        train(quick(epochs=3), data_cfg, ds, tmp_path / "nan")
    assert torch.load(tmp_path / "nan" / "checkpoint-last.pt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize("bad", [dict(negatives="random"), dict(model="ngcf"), dict(tau=-1.0),
                                 dict(monitor="recall@7"), dict(tau_mode="adaptive"), dict(batch_size=0),
                                 dict(select_on="train"), dict(device="tpu"), dict(lr_decay=0.0),
                                 dict(lr_decay=1.5), dict(lr_decay_patience=0)])
def test_bad_settings_are_user_errors(sample, tmp_path, bad):
    data_cfg, ds = sample
    with pytest.raises(UserError):
        train(quick(**bad), data_cfg, ds, tmp_path / "bad")


def expected_lrs(monitored, lr, factor, patience, lr_min=1e-6):
    """The lr of each epoch under reduce-on-plateau, the obvious way, from the monitored values."""
    out, best, best_epoch, last_decay = [], -np.inf, 0, 0
    for epoch, value in enumerate(monitored, start=1):
        out.append(lr)
        if value > best or best_epoch == 0:
            best, best_epoch = value, epoch
        if epoch - max(best_epoch, last_decay) >= patience and lr > lr_min:
            lr, last_decay = max(lr * factor, lr_min), epoch
    return out


@pytest.mark.parametrize("factor,patience", [(1.0, 1), (0.5, 1), (0.3, 2)])
def test_lr_decays_on_plateau_exactly_as_the_reference(sample, tmp_path, factor, patience):
    data_cfg, ds = sample
    hist = train(quick(epochs=12, lr=0.05, lr_decay=factor, lr_decay_patience=patience), data_cfg, ds,
                 tmp_path / "r").history
    want = expected_lrs(hist["valid_recall@20"].tolist(), 0.05, factor, patience)
    np.testing.assert_allclose(hist["lr"].to_numpy(), want, rtol=1e-12)
    assert (len(set(want)) > 1) == (factor < 1)     # the sample plateaus: the decaying runs did decay


def test_estimate_from_a_checkpoint(sample, tmp_path):
    data_cfg, ds = sample
    train(quick(epochs=4), data_cfg, ds, tmp_path / "r")
    run = load_run(tmp_path / "r")
    est = estimate_tau(ds, run=run)
    assert est.mu_pos > est.mu                       # trained: positives score above average
    assert est.tau0_simplified == pytest.approx((est.mu_pos - est.mu) / est.log_term)
    assert est.w0_full == pytest.approx(1 / est.tau0_full)
    assert 0.02 <= est.tau0_used <= 2.0 and est.epoch == run.epoch


def test_time_limit_stops_cleanly_and_resume_continues_exactly(sample, tmp_path):
    data_cfg, ds = sample
    train(quick(epochs=3), data_cfg, ds, tmp_path / "full")
    cut = train(quick(epochs=3, time_limit=1e-9), data_cfg, ds, tmp_path / "cut")
    assert cut.epochs_run == 1 and cut.report["time_limited"] and not cut.stopped_early
    assert "time limit reached" in (tmp_path / "cut" / "report.md").read_text()
    assert cut.test_metrics                                  # a usable report of what it reached
    done = train(quick(epochs=3), data_cfg, ds, tmp_path / "cut", resume=True)
    assert done.epochs_run == 3 and not done.report["time_limited"]
    pd.testing.assert_frame_equal(_frame(tmp_path / "full"), _frame(tmp_path / "cut"))


def test_time_limit_must_be_non_negative(sample, tmp_path):
    data_cfg, ds = sample
    with pytest.raises(UserError, match="time-limit"):
        train(quick(time_limit=-1), data_cfg, ds, tmp_path / "r")


def test_resume_from_another_device_restarts_the_sampler(sample, tmp_path, capsys):
    """A checkpoint whose sampler stream came from a CUDA generator still resumes on the CPU."""
    data_cfg, ds = sample
    train(quick(epochs=1), data_cfg, ds, tmp_path / "r")
    path = tmp_path / "r" / "checkpoint-last.pt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["rng"]["sampler_device"] == "cpu"
    ckpt["rng"]["sampler"] = torch.zeros(16, dtype=torch.uint8)   # the shape of a CUDA generator's state
    ckpt["rng"]["sampler_device"] = "cuda"
    torch.save(ckpt, path)
    again = train(quick(epochs=2), data_cfg, ds, tmp_path / "r", resume=True, quiet=False)
    assert again.epochs_run == 2
    assert "negative sampler restarts" in capsys.readouterr().err


def test_an_exploding_finite_loss_stops_the_run(sample, tmp_path):
    """--norm none with an absurd lr reaches huge finite losses: stopped, not reported as a success."""
    data_cfg, ds = sample
    with pytest.raises(TrainingDiverged, match=r"the loss exploded to .* at epoch \d+, batch \d+"):
        train(quick(epochs=6, norm="none", tau_mode="none", lr=50.0), data_cfg, ds, tmp_path / "x")


def test_resume_refuses_changed_settings_and_records_allowed_changes(sample, tmp_path):
    data_cfg, ds = sample
    train(quick(epochs=2), data_cfg, ds, tmp_path / "r")
    with pytest.raises(UserError, match=r"cannot resume .* lr was 0.01, now 0.001") as err:
        train(quick(epochs=3, lr=1e-3), data_cfg, ds, tmp_path / "r", resume=True)
    assert "epochs" in str(err.value.hint)
    result = train(quick(epochs=3, patience=7), data_cfg, ds, tmp_path / "r", resume=True)
    assert result.report["resumes"] == [{"after_epoch": 2, "changed": {"epochs": [2, 3], "patience": [50, 7]}}]


def test_a_negative_seed_is_a_user_error(sample, tmp_path):
    data_cfg, ds = sample
    with pytest.raises(UserError, match="--seed must be a non-negative integer"):
        train(quick(seed=-1), data_cfg, ds, tmp_path / "s")


def test_on_epoch_sees_every_row_and_an_exception_leaves_a_resumable_run(sample, tmp_path):
    data_cfg, ds = sample
    seen: list[dict] = []

    class Prune(Exception):
        pass

    def callback(row):
        seen.append(row)
        if row["epoch"] == 2:
            raise Prune

    with pytest.raises(Prune):
        train(quick(epochs=4), data_cfg, ds, tmp_path / "r", on_epoch=callback)
    assert [r["epoch"] for r in seen] == [1, 2] and "valid_recall@20" in seen[0]
    resumed = train(quick(epochs=4), data_cfg, ds, tmp_path / "r", resume=True)   # lock released, checkpoint kept
    full = train(quick(epochs=4), data_cfg, ds, tmp_path / "full")
    assert resumed.test_metrics == full.test_metrics
