"""RowwiseAdam (lazy Adam) against a slow per-row reference, and --optimizer sparse-adam through the trainer."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptau_cli.engine.optimizers import RowwiseAdam, make_optimizer, row_lookup
from adaptau_cli.method.losses import dense_rows, sparse_rows
from typer.testing import CliRunner

from adaptau_cli.cli.app import app


def reference_lazy_adam(table, steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Python floats, one row and one coordinate at a time: the rows a step's gradient names move, no other."""
    theta = [list(map(float, row)) for row in table]
    m = [[0.0] * len(r) for r in theta]
    v = [[0.0] * len(r) for r in theta]
    for t, (rows, grads) in enumerate(steps, start=1):
        summed: dict[int, list[float]] = {}
        for r, g in zip(rows, grads):                 # duplicate rows add up, as autograd's scatter does
            acc = summed.setdefault(int(r), [0.0] * len(g))
            for j, x in enumerate(g):
                acc[j] += float(x)
        for r, g in summed.items():
            for j, x in enumerate(g):
                m[r][j] = b1 * m[r][j] + (1 - b1) * x
                v[r][j] = b2 * v[r][j] + (1 - b2) * x * x
                m_hat = m[r][j] / (1 - b1 ** t)
                v_hat = v[r][j] / (1 - b2 ** t)
                theta[r][j] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return torch.tensor(theta, dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.integers(1, 4), st.lists(st.lists(st.integers(0, 8), min_size=0, max_size=6),
                                                      min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_rowwise_adam_moves_exactly_the_gathered_rows_as_the_reference(n, d, batches, seed):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(n, d, generator=gen, dtype=torch.float64)
    param = torch.nn.Parameter(table.clone())
    opt = RowwiseAdam([param], lr=0.01)
    steps = []
    for rows in batches:
        idx = torch.tensor([r % n for r in rows], dtype=torch.long)
        weights = torch.randn(len(rows), d, generator=gen, dtype=torch.float64)
        opt.zero_grad(set_to_none=True)
        (sparse_rows(param, idx) * weights).sum().backward()
        assert param.grad.is_sparse
        opt.step()
        steps.append((idx.tolist(), weights.tolist()))
    want = reference_lazy_adam(table, steps, lr=0.01)
    torch.testing.assert_close(param.detach(), want, rtol=1e-10, atol=1e-12)
    touched = {r % n for rows in batches for r in rows}
    for r in set(range(n)) - touched:
        assert torch.equal(param.detach()[r], table[r])     # never gathered: bit for bit where it started


def test_rowwise_adam_on_dense_gradients_is_torch_adam():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = RowwiseAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    for step in range(6):
        w = torch.randn(5, 3, dtype=torch.float64)
        for p, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            (p * w).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _as_earlier_layout(saved: dict) -> dict:
    """A state dict as checkpoints wrote it before the row moments were interleaved: separate m and v tables."""
    moments = saved["state"][0].pop("row_moments")
    saved["state"][0]["exp_avg"], saved["state"][0]["exp_avg_sq"] = moments[:, 0].clone(), moments[:, 1].clone()
    return saved


@pytest.mark.parametrize("layout", ["current", "earlier"])
def test_state_dict_round_trip_continues_the_same_updates(layout):
    """Saved after two steps and loaded into a new optimizer, the third step is bit for bit the uninterrupted
    run's — also from the earlier state layout (``exp_avg`` / ``exp_avg_sq``), moved into ``row_moments`` once."""
    torch.manual_seed(1)
    idx = [torch.tensor([0, 2, 2]), torch.tensor([1]), torch.tensor([2, 3])]
    w = [torch.randn(len(i), 8) for i in idx]

    def run(p, opt, parts):
        for i, x in parts:
            opt.zero_grad(set_to_none=True)
            (sparse_rows(p, i) * x).sum().backward()
            opt.step()

    start = torch.randn(4, 8)
    p1 = torch.nn.Parameter(start.clone())
    o1 = RowwiseAdam([p1])
    run(p1, o1, zip(idx, w))
    p2 = torch.nn.Parameter(start.clone())
    o2 = RowwiseAdam([p2])
    run(p2, o2, list(zip(idx, w))[:2])
    saved = o2.state_dict()
    if layout == "earlier":
        saved = _as_earlier_layout(saved)
    p3 = torch.nn.Parameter(p2.detach().clone())
    o3 = RowwiseAdam([p3])
    o3.load_state_dict(saved)
    run(p3, o3, list(zip(idx, w))[2:])
    assert torch.equal(p1.detach(), p3.detach())
    assert set(o3.state[p3]) == {"step", "row_moments"}


def test_lookups_give_the_same_rows_and_gradients_of_the_kind_asked():
    table = torch.nn.Parameter(torch.randn(6, 3))
    idx = torch.tensor([[0, 5], [5, 2]])
    torch.testing.assert_close(dense_rows(table, idx), table[idx])
    torch.testing.assert_close(sparse_rows(table, idx), table[idx])
    sparse_rows(table, idx).sum().backward()
    sparse_grad = table.grad
    table.grad = None
    dense_rows(table, idx).sum().backward()
    assert sparse_grad.is_sparse and not table.grad.is_sparse
    torch.testing.assert_close(sparse_grad.to_dense(), table.grad)
    assert row_lookup("sparse-adam") is sparse_rows and row_lookup("adam") is dense_rows


def test_make_optimizer_names():
    model = torch.nn.Linear(2, 2)
    assert isinstance(make_optimizer(model, 1e-3, kind="sparse-adam"), RowwiseAdam)
    assert isinstance(make_optimizer(model, 1e-3), torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(model, 1e-3, kind="sgd")


# ---------------------------------------------------------------------------
# through the trainer and the CLI
# ---------------------------------------------------------------------------

QUICK = ["synthetic-tiny", "--batch-size", "256", "--num-negatives", "64", "--lr", "0.01", "--warmup-epochs", "1",
         "--threads", "1", "--device", "cpu", "--quiet", "--optimizer", "sparse-adam"]


def _history(run):
    return pd.read_parquet(run / "history.parquet")


def invoke(args):
    res = CliRunner().invoke(app, args)
    return res.exit_code, " ".join(res.output.split())


@pytest.mark.parametrize("negatives", ["shared", "grouped"])
def test_sparse_adam_trains_and_resumes_exactly(tmp_path, negatives):
    args = ["train", *QUICK, "--negatives", negatives]
    code, text = invoke([*args, "--epochs", "3", "--out", str(tmp_path / "full")])
    assert code == 0, text
    part = invoke([*args, "--epochs", "2", "--out", str(tmp_path / "part")])
    more = invoke([*args, "--epochs", "3", "--resume", str(tmp_path / "part")])
    assert part[0] == 0 and more[0] == 0, more[1]
    a, b = _history(tmp_path / "full"), _history(tmp_path / "part")
    np.testing.assert_array_equal(a["loss"].to_numpy(), b["loss"].to_numpy())
    np.testing.assert_array_equal(a["valid_recall@20"].to_numpy(), b["valid_recall@20"].to_numpy())
    report = json.loads((tmp_path / "full" / "report.json").read_text())
    assert report["test_metrics"]["recall@20"] > 0.05          # it learns
    config = (tmp_path / "full" / "config.toml").read_text()
    assert 'optimizer = "sparse-adam"' in config


@pytest.mark.parametrize("args,needle", [
    (["--negatives", "per-row"], "cannot be used with --negatives per-row"),
    (["--negatives", "all"], "cannot be used with --negatives all"),
    (["--negatives", "shared", "--dropout", "0.1"], "cannot be used with --dropout 0.1"),
    (["--negatives", "shared", "--model", "lightgcn"], "cannot be used with --model lightgcn"),
    (["--negatives", "shared", "--optimizer", "sgd"], "unknown optimizer 'sgd'"),
])
def test_what_sparse_adam_cannot_do_is_one_line_with_exit_2(tmp_path, args, needle):
    code, text = invoke(["train", *QUICK, *args, "--epochs", "1", "--out", str(tmp_path / "run")])
    assert code == 2, text
    assert needle in text
    assert "Traceback" not in text
    assert not (tmp_path / "run").exists()                        # refused before anything is written


class _Doubled(torch.nn.Module):
    """A custom backbone whose forward() computes its tables (2·E): rows are not looked up from parameters."""

    def __init__(self, n_users, n_items, dim=8):
        super().__init__()
        self.users = torch.nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.items = torch.nn.Parameter(torch.randn(n_items, dim) * 0.1)

    def forward(self):
        return self.users * 2, self.items * 2

    def raw_tables(self):
        return self.users, self.items


def test_a_custom_model_without_row_lookups_is_refused_under_sparse_adam(sample, tmp_path):
    from adaptau_cli.base.errors import UserError
    from adaptau_cli.base.settings import TrainConfig
    from adaptau_cli.engine.trainer import train

    data_cfg, data = sample
    cfg = TrainConfig(optimizer="sparse-adam", negatives="shared", num_negatives=16, epochs=1, device="cpu")
    with pytest.raises(UserError, match="needs a model whose forward\\(\\) returns its raw embedding tables"):
        train(cfg, data_cfg, data, tmp_path / "run", model=_Doubled(data.n_users, data.n_items), quiet=True)
