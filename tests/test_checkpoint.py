"""Checkpoints hold plain data only: a crafted pickle is refused before it runs; old checkpoints still load."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import run_cli

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import TrainConfig
from adaptau_cli.engine import checkpoint
from adaptau_cli.engine.runs import load_run
from adaptau_cli.engine.trainer import train


def quick(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=256, num_negatives=64, lr=0.01, warmup_epochs=1, device="cpu", threads=1,
                ks=(10, 20), seed=7, tau_mode="adap-tau")
    base.update(kw)
    return TrainConfig(**base)


class _Payload:
    """What an attacker pickles: unpickling calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_is_plain_data(sample, tmp_path):
    data_cfg, ds = sample
    train(quick(epochs=2), data_cfg, ds, tmp_path / "run")
    for name in (checkpoint.LAST, checkpoint.BEST):
        state = torch.load(tmp_path / "run" / name, weights_only=True)   # no extra globals allowed
        assert state["format"] == checkpoint.CHECKPOINT_FORMAT and state["epoch"] >= 1


def test_a_malicious_pickle_is_refused_and_runs_nothing(sample, tmp_path):
    data_cfg, ds = sample
    run = tmp_path / "run"
    train(quick(epochs=1), data_cfg, ds, run)
    marker = tmp_path / "pwned"
    state = torch.load(run / checkpoint.LAST, weights_only=True)
    state["history"] = [_Payload(marker)]
    torch.save(state, run / checkpoint.LAST)
    torch.save(state, run / checkpoint.BEST)
    for args in (["evaluate", str(run)], ["recommend", str(run), "--users", "0"], ["train", "--resume", str(run)],
                 ["estimate-tau", "synthetic-tiny", "--checkpoint", str(run)]):
        code, out, err = run_cli(args)
        assert code == 2, (args, err)
        assert "refused to load" in err and "posix.system" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert not marker.exists()


def _legacy_copy(src, dest):
    """Write ``src`` the way adaptau <= 0.1 did: the numpy RNG state as its tuple, numpy floats in the history."""
    state = torch.load(src, weights_only=True)
    s = state["rng"]["numpy"]
    state["rng"]["numpy"] = (s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                             s["cached_gaussian"])
    state["history"] = [{k: np.float64(v) if isinstance(v, float) else v for k, v in row.items()}
                        for row in state["history"]]
    torch.save(state, dest)


def test_a_checkpoint_of_the_old_layout_still_loads_and_resumes_exactly(sample, tmp_path):
    data_cfg, ds = sample
    kw = dict(negatives="per-row", num_negatives=16, dropout=0.1)
    train(quick(epochs=4, **kw), data_cfg, ds, tmp_path / "full")
    train(quick(epochs=2, **kw), data_cfg, ds, tmp_path / "old")
    _legacy_copy(tmp_path / "old" / checkpoint.LAST, tmp_path / "old" / checkpoint.LAST)
    with pytest.raises(Exception):   # it really is the old layout: plain weights_only refuses it
        torch.load(tmp_path / "old" / checkpoint.LAST, weights_only=True)
    assert load_run(tmp_path / "old" / checkpoint.LAST).epoch == 2
    train(quick(epochs=4, **kw), data_cfg, ds, tmp_path / "old", resume=True)
    a = pd.read_parquet(tmp_path / "full" / "history.parquet").drop(columns=["train_seconds", "eval_seconds"])
    b = pd.read_parquet(tmp_path / "old" / "history.parquet").drop(columns=["train_seconds", "eval_seconds"])
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_is_a_one_line_user_error(tmp_path, content):
    f = tmp_path / "checkpoint-last.pt"
    f.write_bytes(content)
    with pytest.raises(UserError, match="not a readable adaptau checkpoint"):
        checkpoint.load(f)


def test_plain_converts_numpy_recursively():
    out = checkpoint.plain({"a": [np.float64(1.5), (np.int64(2), np.bool_(True))], "b": np.arange(3)})
    assert out["a"][0] == 1.5 and type(out["a"][0]) is float
    assert out["a"][1] == (2, True) and type(out["a"][1][0]) is int and type(out["a"][1][1]) is bool
    assert torch.equal(out["b"], torch.arange(3))
