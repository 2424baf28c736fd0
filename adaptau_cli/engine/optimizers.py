"""The optimizers a run may use: Adam (published, dense) and lazy row-wise Adam (sparse, opt-in).

Why a second one: with dense embedding tables every step does O(n + m) work
whatever the batch — autograd writes a dense gradient of both tables and Adam
moves all their rows (at Amazon-Book's 144k rows that is most of an MF step,
docs/scaling.md). Large-catalogue trainers (TensorFlow's LazyAdam, TorchRec's
row-wise optimizers, ``torch.optim.SparseAdam``) update only the rows a batch
touched. ``RowwiseAdam`` does that for sparse gradients and plain Adam for
dense ones, in one optimizer with one state dict (so the checkpoint, the lr
decay and a loss's learned τ work unchanged).

What changes against dense Adam — it is a different optimizer, not a faster
copy: a row's moments and value move only on the steps that gather it, while
dense Adam keeps moving an untouched row by its decaying momentum; the bias
corrections use the optimizer's step count, as ``SparseAdam`` does.
docs/scaling.md measures what that costs in accuracy.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from adaptau_cli.method.losses import RowLookup, dense_rows, sparse_rows

OPTIMIZERS = ("adam", "sparse-adam")


def row_lookup(optimizer: str) -> RowLookup:
    """How the trainer gathers embedding rows for the optimizer it runs."""
    return sparse_rows if optimizer == "sparse-adam" else dense_rows


class RowwiseAdam(torch.optim.Optimizer):
    """Adam that updates only the rows present in a sparse gradient (lazy Adam); dense gradients get plain Adam.

    For a sparse gradient g over rows R at step t (bias corrections c1 = 1 − β1^t, c2 = 1 − β2^t):
    ``m_R ← β1·m_R + (1−β1)·g``, ``v_R ← β2·v_R + (1−β2)·g²``,
    ``θ_R ← θ_R − lr·(m_R/c1)/(√(v_R/c2) + ε)``; every other row is left as it is.
    Duplicate rows in the gradient are summed first (``coalesce``), as autograd would.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if lr <= 0 or eps <= 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid RowwiseAdam settings: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                state["step"] += 1
                t = float(state["step"])
                c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
                if p.grad.is_sparse:
                    _sparse_update(p, p.grad, _row_moments(state, p), lr, b1, b2, eps, c1, c2)
                    continue
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / c2).sqrt_().add_(eps)
                p.addcdiv_(m, denom, value=-lr / c1)
        return loss


def _row_moments(state: dict, p: torch.Tensor) -> torch.Tensor:
    """A table's Adam moments for row updates: ``state["row_moments"]``, (rows, 2, k), row r's m and v side by side.

    Why side by side: a step touches a few thousand scattered rows, and each
    row's m and v then share one gather and one scatter (measured 0.2 ms of a
    14 ms Amazon-Book step). State saved by the earlier layout (``exp_avg`` and
    ``exp_avg_sq``, separate tables) is moved into it on the first row update.
    """
    if "row_moments" not in state:
        rows = p.shape[0]
        if "exp_avg" in state:
            m, v = state.pop("exp_avg"), state.pop("exp_avg_sq")
            state["row_moments"] = torch.stack([m.reshape(rows, -1), v.reshape(rows, -1)], 1)
        else:
            state["row_moments"] = p.new_zeros(rows, 2, p[0].numel())
    return state["row_moments"]


def _sparse_update(p, grad, moments, lr, b1, b2, eps, c1, c2) -> None:
    """The lazy Adam update of the rows of one sparse gradient (see ``RowwiseAdam``); ``moments`` as ``_row_moments``.

    Written for few passes over the touched rows: ``lerp`` moves each moment in
    one op, and the bias corrections ride one ``addcdiv_``
    (``(m/c1)/(√(v/c2)+ε) = (√c2/c1)·m/(√v + ε√c2)``, as torch's Adam does);
    ``index_copy_`` puts rows back (``index_add_`` measured 1.5x slower), through
    ``_wide`` views.
    """
    grad = grad.coalesce()
    rows = grad.indices()[0]
    if rows.numel() == 0:
        return
    g = grad.values().reshape(rows.shape[0], -1).to(p.dtype)
    mv = moments.index_select(0, rows)         # rows are unique after coalesce: gather, update, put back
    m_rows, v_rows = mv[:, 0], mv[:, 1]
    m_rows.lerp_(g, 1 - b1)
    v_rows.lerp_(g.square(), 1 - b2)
    _wide(moments.view(moments.shape[0], -1)).index_copy_(0, rows, _wide(mv.view(mv.shape[0], -1)))
    sqrt_c2 = c2 ** 0.5
    p2 = p.view(p.shape[0], -1)
    p_rows = p2.index_select(0, rows).addcdiv_(m_rows, v_rows.sqrt_().add_(eps * sqrt_c2), value=-lr * sqrt_c2 / c1)
    _wide(p2).index_copy_(0, rows, _wide(p_rows))


def _wide(rows: torch.Tensor) -> torch.Tensor:
    """The same bytes as 16-byte elements (float32 rows of 4k values as complex128), for ``index_copy_``.

    Why: torch's CPU ``index_copy_`` copies element by element; with a quarter
    as many elements it moves a row batch in ~0.55x the time (measured at
    2,800 rows of 64). A copy of bytes, so the result is bit for bit the same.
    """
    if rows.dtype == torch.float32 and rows.shape[-1] % 4 == 0 and rows.is_contiguous():
        return rows.view(torch.complex128)
    return rows


def make_optimizer(model: torch.nn.Module, lr: float, extra: Any = (), kind: str = "adam") -> torch.optim.Optimizer:
    """The run's optimizer over the model's parameters and ``extra`` (a loss's learned τ), in one group.

    ``adam``: Adam as published, the fused kernel where torch has one (one pass
    instead of ~10 on CPU). ``sparse-adam``: ``RowwiseAdam`` (the trainer then
    gathers rows with ``sparse_rows``, so the tables' gradients are sparse).
    """
    params = list(model.parameters()) + list(extra)
    if kind == "sparse-adam":
        return RowwiseAdam(params, lr=lr)
    if kind != "adam":
        raise ValueError(f"unknown optimizer {kind!r} (expected one of {', '.join(OPTIMIZERS)})")
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)
