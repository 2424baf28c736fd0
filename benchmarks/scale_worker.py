"""One rank of bench_scale's 1-vs-2-process measurement; run under torchrun (``bench_scale.py`` launches it):

    python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/scale_worker.py \
        --home DIR [--steps 30] [--warmup 5] [--threads 1]

Each variant times ``--steps`` global steps (batch 2048, 1024 shared negatives, MF Adap-τ on
synthetic-amazon-book) after ``--warmup``; the figure is the median over steps of the slowest rank's step:
* ``engine``: the trainer's step (``bench_scale.EngineStep``: shard, AdapTauLoss, L2, the loss all-reduce,
  backward with DDP's gradient all-reduce, fused Adam), the model wrapped by ``engine.distributed.wrap``;
* ``compute only``: the same step on this rank's shard, no DDP and no collective (what the ranks would cost
  if communication were free);
* ``bucket_cap_mb=100``: DDP with both tables' gradients (37 MB) in one bucket instead of the 25 MB default;
* ``no_sync x2``: gradients accumulated over 2 micro-batches (the first under ``no_sync``), one all-reduce
  and one Adam step per 2 (time per micro-batch; twice the effective batch: not the same training);
* ``engine, sparse-adam``: the trainer's ``--optimizer sparse-adam`` step: sparse row gathers, the gradients
  averaged by ``engine.distributed.average_gradients`` (each rank's touched rows all-gathered: only those
  rows travel), ``RowwiseAdam`` (lazy Adam: only the touched rows move; not the same optimizer as Adam).
Then the all-reduce alone of a dense float32 tensor of the tables' size, and of a scalar.
Rank 0 prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as tdist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import DIM, EngineStep, load, peak_rss_mb, train_config  # noqa: E402


def ddp(**kw):
    def wrap(model):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, **kw)
    return wrap


def timed_steps(step, steps: int, warmup: int, world) -> float:
    """Median over steps of the slowest rank's seconds."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(steps):
        if world.active:
            tdist.barrier()
        t = time.perf_counter()
        step()
        dt = torch.tensor([time.perf_counter() - t], dtype=torch.float64)
        if world.active:
            tdist.all_reduce(dt, op=tdist.ReduceOp.MAX)
        out.append(float(dt))
    return float(np.median(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from adaptau_cli.engine import distributed as dist

    world = dist.init_world("cpu")
    ds = load(args.home)
    cfg = train_config("shared", args.threads)
    batches = -(-len(ds.train) // cfg.batch_size)
    variants: dict[str, dict] = {}

    def run(name: str, make, note: str = "", per: int = 1):
        try:
            step = make()
            variants[name] = {"ms": 1e3 * timed_steps(step, max(1, args.steps // per), args.warmup, world) / per,
                              "note": note}
        except Exception as exc:                    # a variant torch refuses is a finding, not a crash
            variants[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}

    run("engine", lambda: EngineStep(ds, cfg, world, trained=(lambda m: dist.wrap(m, world))),
        "the trainer's path" + (", DDP" if world.active else ", one process"))
    if world.active:
        run("compute only", lambda: EngineStep(ds, cfg, world), "no DDP, no collective")
        run("bucket_cap_mb=100", lambda: EngineStep(ds, cfg, world, trained=ddp(bucket_cap_mb=100)))

        def accumulate():
            s = EngineStep(ds, cfg, world, trained=ddp())

            def two():
                s(sync=False, step=False)        # backward only, no all-reduce
                s(sync=True, zero=False)         # adds to those gradients, all-reduces the sum, Adam
            return two
        run("no_sync x2", accumulate, "per micro-batch; 2x effective batch", per=2)
    sparse_cfg = train_config("shared", args.threads, "sparse-adam")
    run("engine, sparse-adam", lambda: EngineStep(ds, sparse_cfg, world),
        "the trainer's sparse-adam path: no DDP, the touched rows all-gathered; lazy Adam")

    out = {"world": world.size, "threads": args.threads, "steps": args.steps, "batches": batches,
           "variants": variants, "peak_rss_mb": peak_rss_mb()}
    if world.active:
        dense = torch.zeros((ds.n_users + ds.n_items) * DIM, dtype=torch.float32)
        scalar = torch.zeros(1, dtype=torch.float64)
        out["allreduce_mb"] = dense.numel() * 4 / 2**20
        out["allreduce_ms"] = 1e3 * timed_steps(lambda: tdist.all_reduce(dense), args.steps, 3, world)
        out["scalar_allreduce_ms"] = 1e3 * timed_steps(lambda: tdist.all_reduce(scalar), args.steps, 3, world)
    if world.main:
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
