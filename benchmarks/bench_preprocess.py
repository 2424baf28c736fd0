"""Benchmark: preparing MovieLens-1M, and loading the prepared store vs parsing the text.

Measurements (each heavy one in its own child process, so peak memory and
"first call" costs belong to it alone):

1. ``prepare``: ``prepare_dataset(--source DIR)`` into an empty store, in a
   fresh process (cold: pyarrow thread pool, page cache already warm). Reports
   wall seconds, the process's peak resident memory (VmHWM) and its growth over
   the post-import baseline, and pyarrow's peak pool allocation. Repeated
   ``--repeat`` times with ``force=True`` in the same process for a warm median.
2. ``tracemalloc``: the same preparation under tracemalloc (Python + numpy
   allocations; slower, so reported separately from the timing).
3. ``load vs parse``: in one process, the median over ``--repeat`` runs of
   ``load_dataset(store folder)`` against (a) parsing the text again with the
   project's vectorized reader (``read_source``) and (b) the full text-to-arrays
   path without the store (parse + clean + split, what you would redo every
   time without a store). Reports both ratios.

Usage:
    .venv/bin/python benchmarks/bench_preprocess.py --source ../shared/datasets/ml-1m
Results are printed and written to benchmarks/results/bench_preprocess.json.
Targets (issue 2, 2-core machine): prepare < 3 s; load >= 10x faster than parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "datasets" / "ml-1m"


def _status_mb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_prepare(source: str, repeat: int) -> dict:
    import pyarrow as pa

    from adaptau_cli.base.settings import PreprocessConfig
    from adaptau_cli.data.prepare import prepare

    base_rss = _status_mb("VmRSS")
    with tempfile.TemporaryDirectory() as home:
        cfg = PreprocessConfig(source=source, home=home)
        t0 = time.perf_counter()
        first = prepare(cfg)
        cold = time.perf_counter() - t0
        peak = _status_mb("VmHWM")
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            prepare(cfg, force=True)
            warm.append(time.perf_counter() - t0)
        ds = first.dataset
        return {
            "cold_seconds": round(cold, 3),
            "warm_median_seconds": round(statistics.median(warm), 3) if warm else None,
            "peak_rss_mib": round(peak, 1),
            "rss_growth_mib": round(peak - base_rss, 1),
            "arrow_pool_peak_mib": round(pa.default_memory_pool().max_memory() / 2 ** 20, 1),
            "n_users": ds.n_users, "n_items": ds.n_items,
            "interactions": {k: len(v) for k, v in ds.splits.items()},
            "store_bytes": sum(p.stat().st_size for p in first.path.iterdir()),
        }


def child_tracemalloc(source: str) -> dict:
    import tracemalloc

    from adaptau_cli.base.settings import PreprocessConfig
    from adaptau_cli.data.prepare import prepare

    with tempfile.TemporaryDirectory() as home:
        tracemalloc.start()
        prepare(PreprocessConfig(source=source, home=home))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"tracemalloc_peak_mib": round(peak / 2 ** 20, 1)}


def child_load_vs_parse(source: str, repeat: int) -> dict:
    from adaptau_cli.base.settings import PreprocessConfig
    from adaptau_cli.data import readers, split
    from adaptau_cli.data.prepare import prepare
    from adaptau_cli.data.store import load_dataset

    def median_time(fn) -> float:
        fn()  # warm-up (thread pools, page cache)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def text_to_arrays():
        raw = readers.read_source(source)
        pool = split.build_pool(raw, None)
        split.split_pool(pool, split.resolve_split("auto", raw.given_split, "valid" in raw.parts, 0.0),
                         (0.8, 0.1, 0.1), 0.0, 2023)

    with tempfile.TemporaryDirectory() as home:
        folder = prepare(PreprocessConfig(source=source, home=home)).path
        load = median_time(lambda: load_dataset(folder))
        parse = median_time(lambda: readers.read_source(source))
        full = median_time(text_to_arrays)
    return {"load_seconds": round(load, 5), "parse_seconds": round(parse, 5),
            "text_to_arrays_seconds": round(full, 5),
            "load_vs_parse_ratio": round(parse / load, 1), "load_vs_text_to_arrays_ratio": round(full / load, 1)}


def run_child(kind: str, source: str, repeat: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--source", source, "--repeat", str(repeat)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {kind} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_SOURCE), help="ML-1M folder (train.txt, test.txt)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--child", choices=["prepare", "tracemalloc", "load"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_preprocess.json"))
    args = ap.parse_args()
    if args.child:
        fn = {"prepare": lambda: child_prepare(args.source, args.repeat),
              "tracemalloc": lambda: child_tracemalloc(args.source),
              "load": lambda: child_load_vs_parse(args.source, args.repeat)}[args.child]
        print(json.dumps(fn()))
        return
    if not Path(args.source).exists():
        raise SystemExit(f"source not found: {args.source} (pass --source DIR)")
    result = {
        "source": str(Path(args.source).resolve()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "prepare": run_child("prepare", args.source, args.repeat),
        "memory": run_child("tracemalloc", args.source, args.repeat),
        "load_vs_parse": run_child("load", args.source, args.repeat),
    }
    p, lv = result["prepare"], result["load_vs_parse"]
    print(f"ML-1M prepare (fresh process): {p['cold_seconds']:.2f} s cold, {p['warm_median_seconds']:.2f} s warm median"
          f"  [target < 3 s]")
    print(f"  {p['n_users']:,} users x {p['n_items']:,} items, {p['interactions']}, store {p['store_bytes'] / 1e6:.2f} MB")
    print(f"  peak RSS {p['peak_rss_mib']:.0f} MiB (+{p['rss_growth_mib']:.0f} MiB over imports), "
          f"arrow pool peak {p['arrow_pool_peak_mib']:.0f} MiB, tracemalloc peak "
          f"{result['memory']['tracemalloc_peak_mib']:.0f} MiB")
    print(f"load_dataset {lv['load_seconds'] * 1e3:.1f} ms vs parsing the text {lv['parse_seconds'] * 1e3:.1f} ms: "
          f"{lv['load_vs_parse_ratio']:.1f}x  [target >= 10x]; vs parse+clean+split "
          f"{lv['text_to_arrays_seconds'] * 1e3:.1f} ms: {lv['load_vs_text_to_arrays_ratio']:.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
