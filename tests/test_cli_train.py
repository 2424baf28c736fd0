"""`adaptau train` and `adaptau estimate-tau` end to end (CliRunner and a real subprocess)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from adaptau_cli.cli.app import app

FAST = ["--epochs", "2", "--batch-size", "256", "--num-negatives", "32", "--lr", "0.01", "--warmup-epochs", "1",
        "--device", "cpu", "--threads", "1", "--seed", "3"]


def run(args, **kw):
    return CliRunner().invoke(app, args, catch_exceptions=False, **kw)


def test_train_json_then_resume_and_rerun_from_config(tmp_path):
    out = tmp_path / "runs" / "a"
    res = run(["train", "synthetic-tiny", *FAST, "--out", str(out), "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["epochs_run"] == 2 and payload["selection"] == "valid"
    assert payload["positive_in_denominator"] is False
    assert 0 < payload["test_metrics"]["recall@20"] <= 1
    # continue the same run for two more epochs
    res = run(["train", "--resume", str(out), "--epochs", "4", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["epochs_run"] == 4
    assert len(pd.read_parquet(out / "history.parquet")) == 4
    # config.toml is enough to rerun it elsewhere: same settings, same numbers
    res = run(["train", "--config", str(out / "config.toml"), "--out", str(tmp_path / "b"), "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    a = pd.read_parquet(out / "history.parquet").drop(columns=["train_seconds", "eval_seconds"])
    b = pd.read_parquet(tmp_path / "b" / "history.parquet").drop(columns=["train_seconds", "eval_seconds"])
    pd.testing.assert_frame_equal(a, b)


def test_train_flags_reach_the_run(tmp_path):
    out = tmp_path / "p"
    res = run(["train", "synthetic-tiny", *FAST, "--out", str(out), "--select-on", "test", "--tau-mode", "fixed",
               "--tau", "0.25", "--positive-in-denominator", "--negatives", "per-row", "--model", "lightgcn",
               "--layers", "1", "--lr-decay", "0.5", "--lr-decay-patience", "3"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["selection"] == "test (published protocol)"
    assert report["positive_in_denominator"] is True
    cfg = report["train_config"]
    assert (cfg["tau"], cfg["negatives"], cfg["model"], cfg["layers"]) == (0.25, "per-row", "lightgcn", 1)
    assert (cfg["lr_decay"], cfg["lr_decay_patience"]) == (0.5, 3)
    assert "published protocol" in res.output


@pytest.mark.parametrize("args,needle", [
    (["--negatives", "random"], "unknown negatives"),
    (["--monitor", "recall@7"], "--monitor"),
    (["--lr-decay", "0"], "--lr-decay must be in (0, 1]"),
    (["--negatives", "all", "--lr-decay-patience", "0"], "--lr-decay-patience must be >= 1"),
    (["--resume", "/nonexistent/run"], "different run directories"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "adaptau_cli", "train", "synthetic-tiny", *FAST,
                           "--out", str(tmp_path / "x"), *args], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_subprocess_train_and_estimate_end_to_end(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "adaptau_cli", "train", "synthetic-tiny", *FAST, "--out", str(out),
                           "--json"], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["best_epoch"] in (1, 2)
    assert "epoch 1/2" in proc.stderr                  # a line per epoch unless --quiet
    est = subprocess.run([sys.executable, "-m", "adaptau_cli", "estimate-tau", "--checkpoint", str(out), "--json"],
                         capture_output=True, text=True, env=os.environ)
    assert est.returncode == 0, est.stderr
    e = json.loads(est.stdout)
    assert e["dataset"] == "synthetic-tiny" and e["checkpoint"].endswith("checkpoint-best.pt")
    for key in ("mu_pos", "mu", "var_pos", "var", "tau0_full", "tau0_simplified", "w0_full", "w0_simplified",
                "log_term", "prior_tau0", "n_users_filtered", "n_pairs_filtered", "n_items"):
        assert e[key] is not None
    bad = subprocess.run([sys.executable, "-m", "adaptau_cli", "estimate-tau", "synthetic", "--checkpoint", str(out)],
                         capture_output=True, text=True, env=os.environ)
    assert bad.returncode == 2 and "not on 'synthetic'" in bad.stderr


def test_estimate_tau_on_ml1m_prints_the_published_prior(shared_datasets):
    res = run(["estimate-tau", "--source", str(shared_datasets / "ml-1m"), "--json"])
    assert res.exit_code == 0, res.output
    e = json.loads(res.stdout)
    assert e["log_term"] == pytest.approx(2.247, abs=5e-4)
    assert e["prior_tau0"] == pytest.approx(0.311, abs=1e-3)
    human = run(["estimate-tau", "--source", str(shared_datasets / "ml-1m")])
    assert "2.2470" in human.output and "0.3115" in human.output


def test_time_limit_cuts_the_run_and_resume_finishes_it(tmp_path):
    out = tmp_path / "t"
    res = run(["train", "synthetic-tiny", *FAST, "--epochs", "3", "--out", str(out), "--time-limit", "1e-9",
               "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["epochs_run"] == 1 and payload["time_limited"] is True
    assert "time limit of 1e-09 min reached after epoch 1" in res.stderr
    # the saved config keeps the limit; --time-limit 0 lifts it for the continuation
    res = run(["train", "--resume", str(out), "--time-limit", "0", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["epochs_run"] == 3 and payload["time_limited"] is False
    res = run(["train", "synthetic-tiny", *FAST, "--out", str(tmp_path / "bad"), "--time-limit", "-2"])
    assert res.exit_code != 0 and "--time-limit must be >= 0" in res.output
