"""Benchmark: full-ranking evaluation speed and memory.

Two measurements, each in its own child process so that peak memory (VmHWM)
belongs to that measurement alone:

1. ``ml1m``: every test user of MovieLens-1M (the LightGCN-layout split:
   ``DIR/train.txt``, ``DIR/test.txt``) ranked over all items, training items
   masked, Recall/NDCG/Precision/Hit/MRR/MAP @10/20/50, with the project's
   batched code (``adaptau_cli.evaluate``) and with a straightforward per-user
   loop over the same model (score one user, mask, top-k, compute metrics in
   Python). Reports seconds, users/s, peak memory, the speed ratio, and checks
   that both give the same metrics. The model is a checkpoint (``--checkpoint``,
   a run dir or .pt trained on that data) or, by default, a randomly initialised
   MF of the right shape (Xavier-uniform, dim 64, cosine scoring) -- evaluation
   cost does not depend on the weights.
2. ``catalogue``: a generated catalogue of ``--items`` (default 1,000,000)
   items and ``--catalogue-users`` users, evaluated with the default block
   settings; reports seconds, users/s, the scoring block used, and peak memory
   next to what one unbatched score matrix would need.

Usage:
    .venv/bin/python benchmarks/bench_evaluate.py --data ../shared/datasets/ml-1m
    .venv/bin/python benchmarks/bench_evaluate.py --data DIR --checkpoint runs/mf --threads 2
Results are printed and written to benchmarks/results/bench_evaluate-t<threads>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def read_lightgcn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    users, items = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        u = int(parts[0])
        its = [int(x) for x in parts[1:]]
        users.extend([u] * len(its))
        items.extend(its)
    return np.asarray(users, np.int64), np.asarray(items, np.int64)


def random_model(n_users: int, n_items: int, dim: int, seed: int = 0):
    """A randomly initialised MF of the given shape, scored by cosine (Xavier-uniform init)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    bound_u = math.sqrt(6.0 / (n_users + dim))
    bound_i = math.sqrt(6.0 / (n_items + dim))
    U = (torch.rand(n_users, dim, generator=g) * 2 - 1) * bound_u
    I = (torch.rand(n_items, dim, generator=g) * 2 - 1) * bound_i
    return torch.nn.functional.normalize(U, dim=1), torch.nn.functional.normalize(I, dim=1)


def per_user_loop(U, I, test, train, ks, rank: str = "topk"):
    """The obvious implementation: one user at a time, metrics in plain Python.

    ``rank="topk"`` selects with ``torch.topk`` (the strong baseline);
    ``rank="argsort"`` sorts the whole row, as textbook loops do.
    """
    import torch

    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg", "precision", "hit", "mrr", "map")}
    n = 0
    kmax = max(ks)
    with torch.no_grad():
        for u in range(test.shape[0]):
            rel = set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
            if not rel:
                continue
            n += 1
            scores = I @ U[u]
            seen = train.indices[train.indptr[u]:train.indptr[u + 1]]
            scores[torch.as_tensor(seen, dtype=torch.long)] = -float("inf")
            if rank == "topk":
                top = torch.topk(scores, kmax).indices.tolist()
            else:
                top = torch.argsort(scores, descending=True)[:kmax].tolist()
            hits = [1.0 if i in rel else 0.0 for i in top]
            for k in ks:
                h = hits[:k]
                nh = sum(h)
                dcg = sum(x / math.log2(r + 2) for r, x in enumerate(h))
                idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(rel), k)))
                first = next((r + 1 for r, x in enumerate(h) if x), 0)
                ap, seen_hits = 0.0, 0
                for r, x in enumerate(h):
                    if x:
                        seen_hits += 1
                        ap += seen_hits / (r + 1)
                sums[f"recall@{k}"] += nh / len(rel)
                sums[f"ndcg@{k}"] += dcg / idcg
                sums[f"precision@{k}"] += nh / k
                sums[f"hit@{k}"] += float(nh > 0)
                sums[f"mrr@{k}"] += 1.0 / first if first else 0.0
                sums[f"map@{k}"] += ap / min(len(rel), k)
    return {k: v / n for k, v in sums.items()}, n


def child_ml1m(args) -> dict:
    import torch

    from adaptau_cli.base.settings import EvaluateConfig
    from adaptau_cli.data.dataset import PreparedDataset
    from adaptau_cli.eval.metrics import evaluate_embeddings
    from adaptau_cli.eval.topk import block_size
    from adaptau_cli.workflows.evaluate import evaluate_dataset

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        # the run's own prepared dataset (same indices and split as training), test masked by train+valid
        from adaptau_cli.engine.runs import load_run, open_run_dataset
        from adaptau_cli.eval.metrics import split_masks

        run = load_run(args.checkpoint, device="cpu")
        ds = open_run_dataset(run)
        U, I = run.scoring_embeddings(ds)
        test, train = split_masks(ds, "test")
        model = (f"checkpoint {args.checkpoint} ({run.train_config.model}, norm {run.train_config.norm}, "
                 f"epoch {run.epoch})")
    else:
        data = Path(args.data)
        tu, ti = read_lightgcn(data / "train.txt")
        su, si = read_lightgcn(data / "test.txt")
        ds = PreparedDataset.from_arrays((tu, ti), (su, si), name="ml-1m")
        U, I = random_model(ds.n_users, ds.n_items, args.dim)
        model = f"random-init MF, dim {args.dim}, cosine"
        train, test = ds.csr("train"), ds.csr("test")
    ks = (10, 20, 50)
    rss_before = current_rss_mb()

    evaluate_embeddings(U, I, test, train, ks, args.batch_users)          # warm-up
    fast_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = evaluate_embeddings(U, I, test, train, ks, args.batch_users)
        fast_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    full = evaluate_dataset(ds, U, I, EvaluateConfig(split="test", ks=ks, batch_users=args.batch_users))
    full_time = time.perf_counter() - t0

    loops = {}
    for rank in ("topk", "argsort"):
        times = []
        for _ in range(max(1, args.repeats // 2)):
            t0 = time.perf_counter()
            loop_metrics, loop_users = per_user_loop(U, I, test, train, ks, rank)
            times.append(time.perf_counter() - t0)
        loops[rank] = (min(times), loop_metrics)
    max_diff = max(abs(loops["topk"][1][k] - res.metrics[k]) for k in res.metrics)
    fast = float(min(fast_times))
    return {
        "case": "ml1m", "model": model, "users": res.n_users, "items": ds.n_items,
        "batch_users": args.batch_users, "threads": args.threads,
        "block_users": block_size(ds.n_items, args.batch_users),
        "fast_seconds": fast, "fast_seconds_median": float(np.median(fast_times)),
        "fast_users_per_s": res.n_users / fast,
        "full_report_seconds": full_time,
        "loop_seconds": loops["topk"][0], "loop_users_per_s": res.n_users / loops["topk"][0],
        "speedup_vs_loop": loops["topk"][0] / fast,
        "argsort_loop_seconds": loops["argsort"][0],
        "speedup_vs_argsort_loop": loops["argsort"][0] / fast,
        "max_metric_diff_vs_loop": max_diff,
        "recall@20": res.metrics["recall@20"], "ndcg@20": res.metrics["ndcg@20"],
        "aplt@20": full.bias["aplt@20"],
        "rss_before_eval_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
    }


def child_catalogue(args) -> dict:
    import scipy.sparse as sp
    import torch

    from adaptau_cli.eval.metrics import evaluate_embeddings
    from adaptau_cli.eval.topk import DEFAULT_MAX_BLOCK_BYTES, block_size

    torch.set_num_threads(args.threads)
    n_users, n_items, per_user = args.catalogue_users, args.items, 20
    rng = np.random.default_rng(0)
    # long-tailed item draws for train (mask) and test (held-out)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    p /= p.sum()
    items = rng.choice(n_items, (n_users, per_user), p=p)
    users = np.repeat(np.arange(n_users), per_user)
    train = sp.csr_matrix((np.ones(n_users * (per_user - 5), np.float32),
                           (users.reshape(n_users, per_user)[:, 5:].ravel(), items[:, 5:].ravel())),
                          shape=(n_users, n_items))
    test = sp.csr_matrix((np.ones(n_users * 5, np.float32),
                          (users.reshape(n_users, per_user)[:, :5].ravel(), items[:, :5].ravel())),
                         shape=(n_users, n_items))
    train.data[:] = 1
    test.data[:] = 1
    U, I = random_model(n_users, n_items, args.dim)
    rss_before = current_rss_mb()
    t0 = time.perf_counter()
    res = evaluate_embeddings(U, I, test, train, (10, 20, 50), args.batch_users)
    secs = time.perf_counter() - t0
    return {
        "case": "catalogue", "users": res.n_users, "items": n_items, "dim": args.dim,
        "threads": args.threads, "batch_users": args.batch_users,
        "block_users": block_size(n_items, args.batch_users, DEFAULT_MAX_BLOCK_BYTES),
        "seconds": secs, "users_per_s": res.n_users / secs,
        "embeddings_mb": (U.numel() + I.numel()) * 4 / 2**20,
        "unbatched_score_matrix_mb": n_users * n_items * 4 / 2**20,
        "rss_before_eval_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
        "recall@20": res.metrics["recall@20"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "datasets" / "ml-1m"),
                    help="folder with train.txt and test.txt (LightGCN layout)")
    ap.add_argument("--checkpoint", default=None, help="run dir or checkpoint trained on that data")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-users", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--items", type=int, default=1_000_000, help="generated catalogue size")
    ap.add_argument("--catalogue-users", type=int, default=2000)
    ap.add_argument("--skip", choices=["ml1m", "catalogue"], action="append", default=[])
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/bench_evaluate-tN.json)")
    ap.add_argument("--child", choices=["ml1m", "catalogue"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        result = child_ml1m(args) if args.child == "ml1m" else child_catalogue(args)
        print("RESULT " + json.dumps(result))
        return

    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "processor": platform.processor() or platform.machine()}}
    argv = [a for a in sys.argv[1:]]
    for case in ("ml1m", "catalogue"):
        if case in args.skip:
            continue
        if case == "ml1m" and not (Path(args.data) / "train.txt").is_file():
            print(f"skipping ml1m: {args.data}/train.txt not found", file=sys.stderr)
            continue
        proc = subprocess.run([sys.executable, __file__, *argv, "--child", case],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"{case} benchmark failed")
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        results[case] = json.loads(line[len("RESULT "):])

    import torch

    results["machine"]["torch"] = torch.__version__
    if "ml1m" in results:
        r = results["ml1m"]
        print(f"ML-1M full ranking, {r['users']} users x {r['items']} items, {r['model']}, "
              f"{r['threads']} threads, batch {r['batch_users']}:")
        print(f"  batched   {r['fast_seconds']:.3f} s best of {args.repeats} (median {r['fast_seconds_median']:.3f} s; "
              f"{r['fast_users_per_s']:,.0f} users/s; blocks of {r['block_users']} users; "
              f"with popularity view and bias metrics {r['full_report_seconds']:.3f} s)")
        print(f"  per-user loop, torch.topk    {r['loop_seconds']:.3f} s  ({r['loop_users_per_s']:,.0f} users/s)"
              f"  -> speed-up {r['speedup_vs_loop']:.1f}x")
        print(f"  per-user loop, full argsort  {r['argsort_loop_seconds']:.3f} s"
              f"  -> speed-up {r['speedup_vs_argsort_loop']:.1f}x")
        print(f"  max metric difference batched vs loop: {r['max_metric_diff_vs_loop']:.2e}")
        print(f"  peak RSS  {r['peak_rss_mb']:.0f} MiB (before evaluation {r['rss_before_eval_mb']:.0f} MiB)")
    if "catalogue" in results:
        r = results["catalogue"]
        print(f"Generated catalogue, {r['users']} users x {r['items']:,} items, dim {r['dim']}, "
              f"{r['threads']} threads:")
        print(f"  {r['seconds']:.2f} s ({r['users_per_s']:,.0f} users/s), block of {r['block_users']} users")
        print(f"  peak RSS {r['peak_rss_mb']:.0f} MiB (before evaluation {r['rss_before_eval_mb']:.0f} MiB; "
              f"embeddings {r['embeddings_mb']:.0f} MiB; one unbatched score matrix would be "
              f"{r['unbatched_score_matrix_mb']:,.0f} MiB)")
    out = Path(args.out) if args.out else HERE / "results" / f"bench_evaluate-t{args.threads}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
