"""Training speed on ML-1M: MF Adap-τ with shared / grouped / per-row / all negatives, the GEMM floor, LightGCN.

    .venv/bin/python benchmarks/bench_train.py [--data ../shared/datasets/ml-1m] [--threads 2]
        [--per-row-batches 40] [--chunked-batches 8] [--all-batches 40] [--skip-lightgcn] [--json out.json]

Setup (the published MF setup): batch 2048, M = 1024 negatives, dim 64,
Adap-τ (per-user τ_u, so the per-user loss at τ = 1 is tracked too), Adam.

What is measured, each phase in its own process (so that peak RSS is per phase):
* ``shared``: one full epoch through ``adaptau_cli.train.train`` (its
  ``train_seconds``: sampling, forward, backward, Adam, per-user loss
  tracking), and, in the same process, the GEMM floor: a bare
  (B×d)·(d×M) product and its backward (the three GEMMs any softmax over
  shared negatives needs) timed on the same shapes, interleaved with the
  full training step so that machine load hits both alike.
* ``grouped``: one full epoch with the shipped default negatives (16 blocks).
* ``per-row``: the faithful mode. ``auto`` picks the dense path on ML-1M
  (one B×m product and a gather, m = 3043 ≤ 4·M); timed over
  ``--per-row-batches`` batches of the real loop's step and extrapolated to an
  epoch. The bounded-memory chunked path (gathering B·M·d floats) is timed
  over ``--chunked-batches`` batches and extrapolated likewise.
* ``all``: the full softmax over the catalogue (no sampling), timed like
  per-row over ``--all-batches`` batches of the real step.
* ``lightgcn``: one full epoch of LightGCN (3 layers, in-batch negatives).
Figures are wall-clock on whatever else runs on the machine: say so when
quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "ml-1m"
B, M, DIM = 2048, 1024, 64


def load_ml1m(path: Path):
    """ML-1M's train/test as a PreparedDataset (the store if available, else the text files)."""
    from adaptau_cli.data.dataset import PreparedDataset

    try:
        from adaptau_cli.base.settings import PreprocessConfig
        from adaptau_cli.data.prepare import prepare_dataset

        home = os.environ.get("ADAPTAU_HOME") or tempfile.mkdtemp(prefix="bench-home-")
        return prepare_dataset(PreprocessConfig(source=str(path), home=home), quiet=True)
    except ImportError:
        pass

    def read(p):
        users, items = [], []
        for line in Path(p).read_text().splitlines():
            parts = line.split()
            if len(parts) > 1:
                users += [int(parts[0])] * (len(parts) - 1)
                items += [int(x) for x in parts[1:]]
        return np.array(users), np.array(items)

    return PreparedDataset.from_arrays(read(path / "train.txt"), read(path / "test.txt"), name="ml-1m")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_epoch(ds, **kw) -> float:
    """Seconds of training (no evaluation) of one epoch through the real loop."""
    from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
    from adaptau_cli.engine.trainer import train

    cfg = TrainConfig(epochs=1, batch_size=B, num_negatives=M, dim=DIM, device="cpu", threads=torch.get_num_threads(),
                      select_on="test",
                      **kw)
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, PreprocessConfig(source="ml-1m"), ds, Path(out) / "run", quiet=True)
    return float(result.history["train_seconds"].iloc[0])


def make_step(ds, negatives: str, strategy: str = "auto", seed: int = 0):
    """A closure doing one training step of MF Adap-τ exactly as the loop does (sampling, loss, Adam)."""
    from adaptau_cli.method.losses import batch_loss
    from adaptau_cli.models import MF

    torch.manual_seed(seed)
    model = MF(ds.n_users, ds.n_items, DIM)
    from adaptau_cli.engine.trainer import make_optimizer

    opt = make_optimizer(model, 1e-3)
    gen = torch.Generator().manual_seed(seed)
    pu = torch.as_tensor(np.array(ds.train.users, dtype=np.int64))
    pi = torch.as_tensor(np.array(ds.train.items, dtype=np.int64))
    w_table = (1.0 / (0.3 + 0.05 * torch.rand(ds.n_users, generator=gen))).float()
    user_sum = torch.zeros(ds.n_users, dtype=torch.float64)

    def step():
        idx = torch.randint(0, len(pu), (B,), generator=gen)
        users, pos = pu[idx], pi[idx]
        shape = (M,) if negatives == "shared" else (B, M)
        negs = None if negatives == "all" else torch.randint(0, ds.n_items, shape, generator=gen)
        u, i = model()
        out = batch_loss(u, i, users, pos, negs, negatives=negatives, w_neg=w_table[users], w_pos=3.2,
                         l2=1e-5, user_weight=model.user_weight, item_weight=model.item_weight, track_tau1=True,
                         per_row_strategy=strategy, neg_l2_weight=M / ds.n_items)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        user_sum.index_add_(0, users, out.row_loss_tau1.double())
    return step


def gemm_floor_step():
    a = torch.randn(B, DIM, requires_grad=True)
    b = torch.randn(M, DIM, requires_grad=True)
    grad = torch.randn(B, M)

    def step():
        s = a @ b.t()
        s.backward(grad)
    return step


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def phase_shared(ds, args) -> dict:
    n_batches = -(-len(ds.train) // B)
    epoch = one_epoch(ds, negatives="shared", tau_mode="adap-tau")
    step, floor = make_step(ds, "shared"), gemm_floor_step()
    step(), floor()
    s_times, f_times = [], []
    for _ in range(args.rounds):      # interleaved so load affects both alike
        s_times += timed(step, 5)
        f_times += timed(floor, 5)
    step_ms, floor_ms = 1e3 * float(np.median(s_times)), 1e3 * float(np.median(f_times))
    return {"epoch_seconds": epoch, "pairs_per_second": len(ds.train) / epoch, "batches": n_batches,
            "step_ms_median": step_ms, "floor_step_ms_median": floor_ms,
            "floor_epoch_seconds": floor_ms * n_batches / 1e3,
            "ratio_step_to_floor": step_ms / floor_ms,
            "ratio_epoch_to_floor": epoch / (floor_ms * n_batches / 1e3),
            "peak_rss_mb": peak_rss_mb()}


def extrapolated(ds, step, n: int) -> dict:
    """Median step time over ``n`` batches (after one warm-up step), extrapolated to an epoch."""
    step()
    t = float(np.median(timed(step, n)))
    return {"step_ms_median": 1e3 * t, "batches_timed": n, "epoch_seconds_extrapolated": t * -(-len(ds.train) // B),
            "pairs_per_second": B / t, "peak_rss_mb": peak_rss_mb()}


def phase_per_row(ds, args) -> dict:
    return {strategy: extrapolated(ds, make_step(ds, "per-row", strategy), n)
            for strategy, n in (("dense", args.per_row_batches), ("chunked", args.chunked_batches)) if n > 0}


def phase_all(ds, args) -> dict:
    return extrapolated(ds, make_step(ds, "all"), args.all_batches)


def phase_grouped(ds, args) -> dict:
    """The shipped default negatives (16 blocks of M, one per row slice): one full epoch."""
    epoch = one_epoch(ds, negatives="grouped", tau_mode="adap-tau")
    return {"epoch_seconds": epoch, "pairs_per_second": len(ds.train) / epoch, "peak_rss_mb": peak_rss_mb()}


def phase_lightgcn(ds, args) -> dict:
    epoch = one_epoch(ds, model="lightgcn", layers=3, negatives="in-batch", tau_mode="adap-tau")
    return {"epoch_seconds": epoch, "pairs_per_second": len(ds.train) / epoch, "peak_rss_mb": peak_rss_mb()}


PHASES = {"shared": phase_shared, "grouped": phase_grouped, "per-row": phase_per_row, "all": phase_all,
          "lightgcn": phase_lightgcn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-row-batches", type=int, default=40)
    ap.add_argument("--chunked-batches", type=int, default=8)
    ap.add_argument("--all-batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=8, help="interleaved rounds of 5 steps (shared vs floor)")
    ap.add_argument("--skip-lightgcn", action="store_true")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.phase:  # child process: one phase, JSON on stdout
        ds = load_ml1m(args.data)
        print(json.dumps(PHASES[args.phase](ds, args)))
        return

    if not (args.data / "train.txt").is_file():
        sys.exit(f"ML-1M not found at {args.data} (use --data)")
    results = {"threads": args.threads, "batch": B, "negatives": M, "dim": DIM, "torch": torch.__version__,
               "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()}
    phases = ["shared", "grouped", "per-row", "all"] + ([] if args.skip_lightgcn else ["lightgcn"])
    for phase in phases:
        cmd = [sys.executable, __file__, "--phase", phase, "--data", str(args.data), "--threads", str(args.threads),
               "--per-row-batches", str(args.per_row_batches), "--chunked-batches", str(args.chunked_batches),
               "--all-batches", str(args.all_batches), "--rounds", str(args.rounds)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"phase {phase} failed:\n{proc.stderr}")
        results[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
    results["loadavg_end"] = os.getloadavg()

    s, p = results["shared"], results["per-row"]
    print(f"ML-1M, MF Adap-tau, batch {B}, M = {M}, dim {DIM}, {args.threads} threads "
          f"(load average at start {results['loadavg_start'][0]:.2f})")
    print(f"  shared   : {s['epoch_seconds']:.1f} s/epoch, {s['pairs_per_second']:,.0f} pairs/s "
          f"(one full epoch, {s['batches']} batches); peak RSS {s['peak_rss_mb']:.0f} MB")
    print(f"  GEMM floor (B×d·d×M + backward): {s['floor_step_ms_median']:.1f} ms/batch "
          f"= {s['floor_epoch_seconds']:.1f} s/epoch")
    print(f"  shared step {s['step_ms_median']:.1f} ms/batch: {s['ratio_step_to_floor']:.2f}x the floor "
          f"(interleaved medians); epoch/floor-epoch {s['ratio_epoch_to_floor']:.2f}x")
    g = results["grouped"]
    print(f"  grouped (16 x {M}, the defaults): {g['epoch_seconds']:.1f} s/epoch, {g['pairs_per_second']:,.0f} pairs/s "
          f"(one full epoch); peak RSS {g['peak_rss_mb']:.0f} MB")
    for strategy, r in p.items():
        print(f"  per-row {strategy:7s}: {r['step_ms_median']:.1f} ms/batch -> {r['epoch_seconds_extrapolated']:.1f} "
              f"s/epoch (extrapolated from {r['batches_timed']} batches), {r['pairs_per_second']:,.0f} pairs/s; "
              f"shared is {r['epoch_seconds_extrapolated'] / s['epoch_seconds']:.1f}x faster; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    a = results["all"]
    vs_dense = (f", {a['step_ms_median'] / p['dense']['step_ms_median']:.2f}x a per-row dense step"
                if "dense" in p else "")
    print(f"  all items: {a['step_ms_median']:.1f} ms/batch -> {a['epoch_seconds_extrapolated']:.1f} s/epoch "
          f"(extrapolated from {a['batches_timed']} batches); {a['epoch_seconds_extrapolated'] / s['epoch_seconds']:.1f}x "
          f"shared's epoch{vs_dense}")
    if "lightgcn" in results:
        lg = results["lightgcn"]
        print(f"  LightGCN 3 layers, in-batch: {lg['epoch_seconds']:.1f} s/epoch, {lg['pairs_per_second']:,.0f} "
              f"pairs/s; peak RSS {lg['peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
