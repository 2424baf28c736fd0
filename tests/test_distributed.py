"""Data-parallel training on torch.distributed (gloo, CPU): N processes give the one-process run.

Real processes: ``torchrun`` (``python -m torch.distributed.run``) and ``adaptau train --nproc``,
on the built-in tiny sample; the histories are compared column by column.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from adaptau_cli.eval.metrics import evaluate_embeddings, metric_sums

REPO = Path(__file__).resolve().parents[1]
QUICK = ["synthetic-tiny", "--batch-size", "256", "--num-negatives", "64", "--lr", "0.01", "--warmup-epochs", "1",
         "--threads", "1", "--device", "cpu", "--quiet"]
COLUMNS = ["loss", "tau0", "tau_u_min", "tau_u_q10", "tau_u_median", "tau_u_q90", "tau_u_max", "pos_score",
           "valid_recall@20", "valid_ndcg@20", "item_norm_g0", "item_norm_g9"]


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "ADAPTAU_HOME": str(home), "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _adaptau(args: list[str], home: Path, nproc: int = 1, torchrun_args: tuple[str, ...] = ()):
    if nproc == 1 and not torchrun_args:
        cmd = [sys.executable, "-m", "adaptau_cli", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               *torchrun_args, "-m", "adaptau_cli", *args]
    return subprocess.run(cmd, env=_env(home), capture_output=True, text=True, timeout=600, cwd=home)


def _history(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "history.parquet")


def _same_run(a: Path, b: Path, rel: float = 1e-5) -> None:
    ha, hb = _history(a), _history(b)
    assert len(ha) == len(hb)
    for col in COLUMNS:
        np.testing.assert_allclose(hb[col].to_numpy(), ha[col].to_numpy(), rtol=rel, atol=1e-9, err_msg=col)
    ra, rb = (json.loads((r / "report.json").read_text()) for r in (a, b))
    assert ra["best_epoch"] == rb["best_epoch"]
    for key, value in ra["test_metrics"].items():
        assert rb["test_metrics"][key] == pytest.approx(value, rel=rel, abs=1e-9), key


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    [],                                                                   # the defaults: grouped negatives, Adap-τ
    ["--negatives", "shared", "--tau-mode", "adap-tau"],
    ["--negatives", "per-row", "--num-negatives", "16", "--tau-mode", "adap-tau0", "--dropout", "0.1"],
    ["--model", "lightgcn", "--layers", "2", "--negatives", "shared"],
    ["--model", "lightgcn", "--layers", "2", "--negatives", "per-row", "--num-negatives", "16"],
    ["--optimizer", "sparse-adam", "--negatives", "shared"],              # no DDP: sparse all-reduce (gloo)
    ["--optimizer", "sparse-adam"],
    ["--loss", "learned-tau", "--tau-mode", "none", "--negatives", "shared"],   # the loss's own parameter
], ids=["mf-grouped", "mf-shared", "mf-per-row-dropout", "lightgcn-shared", "lightgcn-per-row",
        "mf-shared-sparse-adam", "mf-grouped-sparse-adam", "learned-tau"])
def test_two_processes_give_the_one_process_run(tmp_path, extra):
    one = _adaptau(["train", *QUICK, "--epochs", "3", *extra, "--out", str(tmp_path / "one")], tmp_path)
    assert one.returncode == 0, one.stderr
    two = _adaptau(["train", *QUICK, "--epochs", "3", *extra, "--out", str(tmp_path / "two")], tmp_path, nproc=2)
    assert two.returncode == 0, two.stderr
    _same_run(tmp_path / "one", tmp_path / "two")
    assert json.loads((tmp_path / "two" / "report.json").read_text())["processes"] == 2


@pytest.mark.slow
def test_three_processes_uneven_shards_and_the_nproc_flag(tmp_path):
    """A batch of 250 over 3 ranks (83/83/84 rows) and 300 users over 3 evaluation shards."""
    args = ["train", *QUICK, "--batch-size", "250", "--epochs", "2"]
    one = _adaptau([*args, "--out", str(tmp_path / "one")], tmp_path)
    three = _adaptau([*args, "--out", str(tmp_path / "three"), "--nproc", "3"], tmp_path)
    assert one.returncode == 0 and three.returncode == 0, three.stderr
    _same_run(tmp_path / "one", tmp_path / "three")


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "sparse-adam"])
def test_an_empty_shard_gives_the_one_process_run(tmp_path, optimizer):
    """4,722 pairs in batches of 236 end with a batch of 2 rows: over 3 ranks one rank has none, and still joins."""
    args = ["train", *QUICK, "--batch-size", "236", "--epochs", "2", "--optimizer", optimizer,
            "--negatives", "shared"]
    one = _adaptau([*args, "--out", str(tmp_path / "one")], tmp_path)
    three = _adaptau([*args, "--out", str(tmp_path / "three")], tmp_path, nproc=3)
    assert one.returncode == 0 and three.returncode == 0, three.stderr
    _same_run(tmp_path / "one", tmp_path / "three")


@pytest.mark.slow
@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_resume_with_another_number_of_processes(tmp_path, first, then):
    full = _adaptau(["train", *QUICK, "--epochs", "4", "--out", str(tmp_path / "full")], tmp_path)
    part = _adaptau(["train", *QUICK, "--epochs", "2", "--out", str(tmp_path / "part")], tmp_path, nproc=first)
    more = _adaptau(["train", *QUICK, "--epochs", "4", "--resume", str(tmp_path / "part")], tmp_path, nproc=then)
    assert full.returncode == part.returncode == more.returncode == 0, more.stderr
    _same_run(tmp_path / "full", tmp_path / "part")


@pytest.mark.slow
def test_a_killed_worker_restarts_the_group_from_the_last_checkpoint(tmp_path):
    script = str(REPO / "tests" / "scripts" / "kill_and_restart.py")
    ref = subprocess.run([sys.executable, script, str(tmp_path / "ref"), "4"], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    hit = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "--max-restarts=1", script, str(tmp_path / "hit"), "4", "die"], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert hit.returncode == 0, hit.stderr
    assert "exitcode: 17" in hit.stderr                                 # the worker did die
    report = json.loads((tmp_path / "hit" / "report.json").read_text())
    assert report["resumes"] and report["resumes"][0]["after_epoch"] >= 1  # and the group resumed
    _same_run(tmp_path / "ref", tmp_path / "hit")


@pytest.mark.slow
def test_bad_input_under_two_processes_is_one_line_not_a_hang(tmp_path):
    launched = _adaptau(["train", *QUICK, "--lr", "-1", "--out", str(tmp_path / "r"), "--nproc", "2"], tmp_path)
    assert launched.returncode == 2
    lines = [line for line in launched.stderr.splitlines() if line.strip()]
    assert lines == ["error: --lr must be > 0, got -1.0"]
    raw = _adaptau(["train", *QUICK, "--lr", "-1", "--out", str(tmp_path / "r")], tmp_path, nproc=2,
                   torchrun_args=("--max-restarts=0",))
    assert raw.returncode != 0                                           # torchrun's own report follows
    assert raw.stderr.count("error: --lr must be > 0, got -1.0") == 1    # one rank said it, once
    refused = _adaptau(["train", *QUICK, "--negatives", "in-batch", "--out", str(tmp_path / "r"), "--nproc", "2"],
                       tmp_path)
    assert refused.returncode == 2 and "in-batch negatives" in refused.stderr


def test_evaluation_parts_add_up_to_the_whole_for_uneven_shards(tiny_dataset):
    """Per-user sums over uneven shards, divided once, equal the one-process means (never a mean of means)."""
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(tiny_dataset.n_users, 8, generator=g), dim=1)
    i = torch.nn.functional.normalize(torch.randn(tiny_dataset.n_items, 8, generator=g), dim=1)
    heldout, exclude = tiny_dataset.csr("test"), tiny_dataset.csr("train")
    whole = evaluate_embeddings(u, i, heldout, exclude, (5, 10)).metrics
    users = np.flatnonzero(np.diff(heldout.indptr) > 0)
    cuts = [0, 1, 7, len(users)]                                          # 1, 6 and the rest
    total = None
    for a, b in zip(cuts[:-1], cuts[1:]):
        names, sums = metric_sums(u, i, heldout, exclude, (5, 10), users[a:b])
        total = sums if total is None else total + sums
    for name, value in zip(names, total / len(users)):
        assert value == pytest.approx(whole[name], rel=1e-12, abs=1e-15)
    per_shard_means = [metric_sums(u, i, heldout, exclude, (5, 10), users[a:b])[1] / (b - a)
                       for a, b in zip(cuts[:-1], cuts[1:])]
    assert not np.allclose(np.mean(per_shard_means, axis=0), total / len(users))  # the bug class, for contrast
