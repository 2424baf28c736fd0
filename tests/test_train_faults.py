"""Killed mid-training (SIGKILL or SIGTERM at several points), a run resumes to the very numbers of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ARGS = ["train", "synthetic-tiny", "--epochs", "6", "--batch-size", "64", "--threads", "1", "--seed", "5",
        "--quiet"]
TIMING = ["train_seconds", "eval_seconds"]


def _run(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "adaptau_cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300, **kw)


def _final(run: Path):
    report = json.loads((run / "report.json").read_text())
    history = pd.read_parquet(run / "history.parquet").drop(columns=TIMING)
    return report["test_metrics"], report["best_epoch"], history


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    env = dict(os.environ, ADAPTAU_HOME=str(root / "home"))
    done = _run([*ARGS, "--out", str(root / "whole")], env)
    assert done.returncode == 0, done.stderr
    return root, env, _final(root / "whole")


@pytest.mark.parametrize("sig,after_epochs", [(signal.SIGKILL, 1), (signal.SIGKILL, 3), (signal.SIGTERM, 2)])
def test_a_killed_run_resumes_to_the_same_numbers(reference, sig, after_epochs):
    root, env, (metrics, best, history) = reference
    run = root / f"run-{sig.name}-{after_epochs}"
    proc = subprocess.Popen([sys.executable, "-m", "adaptau_cli", *ARGS, "--out", str(run)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while True:                      # kill it once `after_epochs` epochs are checkpointed, in the middle of the next
        if (run / "history.parquet").is_file():
            try:
                if len(pd.read_parquet(run / "history.parquet")) >= after_epochs:
                    break
            except Exception:        # read while being replaced: try again
                pass
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not (run / "report.json").exists()
    resumed = _run(["train", "--resume", str(run), "--quiet"], env)
    assert resumed.returncode == 0, resumed.stderr
    got_metrics, got_best, got_history = _final(run)
    assert got_metrics == metrics and got_best == best
    pd.testing.assert_frame_equal(got_history, history)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]   # no temp files, no lock left
