"""Benchmark: exact vs approximate (HNSW, IVF) top-20 over a 1M-item catalogue, as `adaptau export --index` builds them.

The catalogue is generated (seeded): ``--items`` unit vectors of ``--dim``
dimensions around ``--clusters`` random unit centres, the cluster sizes
long-tailed (Zipf, exponent ``--zipf``), so that a few clusters hold most
items, as popular genres do; queries are drawn around the centres with the
same popularity. Uniform random vectors would make every neighbour almost
equally far, a case no ANN index is built for (and no trained model produces).

For each index (the export's own parameters, ``adaptau_cli.eval.ann.index_params``):
build seconds, memory (the size of the saved index file: these indexes hold
the float32 vectors plus their graph or lists, so that is what they occupy in
memory; the process's peak RSS is printed at the end), queries per second over
``--queries`` queries in one batch, and recall@20 of its top-20 against the exact one
(IndexFlatIP). HNSW and IVF are searched at their default query parameters and
at the larger ones given by ``--ef-search`` / ``--nprobe``.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ann.py
    .venv/bin/python benchmarks/bench_ann.py --items 200000 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptau_cli.eval.ann import (  # noqa: E402
    IndexParams,
    build_index,
    configure,
    index_params,
    load_faiss,
    search,
    write_index,
)

K = 20


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process (VmRSS now, or VmHWM = the peak), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return w / w.sum()


def catalogue(n_items: int, dim: int, n_clusters: int, zipf: float, seed: int,
              chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, centres, cluster weights): items around long-tailed clusters, built in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n_clusters, dim), dtype=np.float32))
    weights = zipf_weights(n_clusters, zipf)
    items = np.empty((n_items, dim), dtype=np.float32)
    spread = 0.6 / np.sqrt(dim)                 # a cluster's items: cosine ~0.7 to their centre
    for start in range(0, n_items, chunk):
        n = min(chunk, n_items - start)
        which = rng.choice(n_clusters, size=n, p=weights)
        noise = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(spread)
        items[start:start + n] = unit(centres[which] + noise)
    return items, centres, weights


def queries(centres: np.ndarray, weights: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Users near a popular-weighted centre, a little farther out than the items (they mix tastes)."""
    rng = np.random.default_rng(seed + 1)
    dim = centres.shape[1]
    which = rng.choice(len(centres), size=n, p=weights)
    noise = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.9 / np.sqrt(dim))
    return unit(centres[which] + noise)


def index_file_mb(index) -> float:
    """Size of the index as `adaptau export` saves it (items.faiss), MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.faiss"
        write_index(index, path)
        return path.stat().st_size / 2**20


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(found, exact)]))


def timed_search(index, q: np.ndarray, params: IndexParams) -> tuple[np.ndarray, float]:
    """(labels, queries per second) of one batch search at ``params``' query settings."""
    configure(index, params)
    t0 = time.perf_counter()
    _, labels = search(index, q, K, params)
    return labels, len(q) / (time.perf_counter() - t0)


def measure(kind: str, items: np.ndarray, q: np.ndarray, exact: np.ndarray | None, variants: list[dict]) -> tuple:
    """Build one index, search it at each query-setting variant; rows for the table (and the exact labels)."""
    params = index_params(kind, len(items))
    t0 = time.perf_counter()
    index = build_index(items, params)
    build_s = time.perf_counter() - t0
    size = index_file_mb(index)
    rows, seen = [], set()
    for extra in [{}] + variants:
        p = IndexParams.from_dict({**params.to_dict(), **extra})
        if p in seen:                      # a variant equal to the default: measured once
            continue
        seen.add(p)
        labels, qps = timed_search(index, q, p)
        exact = labels if exact is None else exact
        knobs = ", ".join(f"{k} {v}" for k, v in p.to_dict().items()
                          if k in ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search"))
        rows.append((kind, knobs or "-", build_s, size, qps, recall_at_k(labels, exact)))
        print(f"  {kind:5s} {knobs or '-':45s} build {build_s:7.1f} s  file {size:6.0f} MiB  "
              f"{qps:8.0f} q/s  recall@{K} {rows[-1][-1]:.4f}", flush=True)
    del index
    return rows, exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=2_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="cluster-size exponent (long tail)")
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--threads", type=int, default=None, help="FAISS threads (default: OMP_NUM_THREADS or all)")
    ap.add_argument("--ef-search", type=int, nargs="*", default=[64, 256], help="extra HNSW efSearch values")
    ap.add_argument("--nprobe", type=int, nargs="*", default=[8, 64], help="extra IVF nprobe values")
    ap.add_argument("--skip", nargs="*", default=[], choices=["hnsw", "ivf"])
    args = ap.parse_args()

    faiss = load_faiss()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} thread(s), python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}", flush=True)
    t0 = time.perf_counter()
    items, centres, weights = catalogue(args.items, args.dim, args.clusters, args.zipf, args.seed)
    q = queries(centres, weights, args.queries, args.seed)
    top_share = np.sort(weights)[::-1][: max(1, args.clusters // 100)].sum()
    print(f"catalogue {args.items:,} x {args.dim} ({args.clusters} clusters, the largest 1% hold {top_share:.0%} "
          f"of the items), {args.queries:,} queries: generated in {time.perf_counter() - t0:.1f} s, "
          f"RSS {rss_mb():.0f} MiB", flush=True)

    rows, exact = measure("exact", items, q, None, [])
    if "hnsw" not in args.skip:
        rows += measure("hnsw", items, q, exact, [{"ef_search": e} for e in args.ef_search])[0]
    if "ivf" not in args.skip:
        rows += measure("ivf", items, q, exact, [{"nprobe": p} for p in args.nprobe])[0]

    print(f"\n| index | parameters | build s | index size MiB | queries/s | recall@{K} |")
    print("|---|---|---|---|---|---|")
    for kind, knobs, build_s, size, qps, rec in rows:
        print(f"| {kind} | {knobs} | {build_s:.1f} | {size:.0f} | {qps:,.0f} | {rec:.4f} |")
    print(f"\npeak RSS {rss_mb('VmHWM'):.0f} MiB, total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
