"""``adaptau export``: a run's scoring embeddings, exclusions and (optionally) a FAISS index, for serving."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adaptau_cli.cli.options import DeviceOpt, JsonOpt, QuietOpt, RunArg

ExportOutOpt = Annotated[Path, typer.Option(
    "--out", help="Folder for users.parquet, items.parquet, train_items.parquet, export.json (and the index).",
    show_default=False)]
IndexKindOpt = Annotated[Optional[str], typer.Option(
    "--index", help="Also build a FAISS index of the items: exact (IndexFlatIP) | hnsw (IndexHNSWFlat) | "
                    "ivf (IndexIVFFlat, nlist from the catalogue size). Needs the optional faiss-cpu package.")]
NprobeOpt = Annotated[Optional[int], typer.Option(
    "--nprobe", help="ivf: lists scanned per query (default max(8, nlist/32)).")]
EfSearchOpt = Annotated[Optional[int], typer.Option(
    "--ef-search", help="hnsw: query breadth (default 128; never below the candidates fetched).")]
HnswMOpt = Annotated[Optional[int], typer.Option("--hnsw-m", help="hnsw: graph degree M (default 32).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an export already in --out.")]


def _render(manifest: dict[str, Any], out: Path) -> None:
    """Two lines: what was written where, and the index if one was built."""
    from adaptau_cli.base.console import info

    ds, vec, score = manifest["dataset"], manifest["vectors"], manifest["score"]
    info("exported {users} users and {items} items (dim {dim}, score {rule}, epoch {epoch}) to {out}",
         users=ds["n_users"], items=ds["n_items"], dim=vec["dim"], rule=score["equals"],
         epoch=manifest["run"]["epoch"], out=out)
    index = manifest.get("index")
    if index:
        params = ", ".join(f"{k} {v}" for k, v in index.items()
                           if k in ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search"))
        info("index {cls} ({params}) built in {secs} s: {file}", cls=index["faiss_class"],
             params=params or "exact", secs=index["build_seconds"], file=index["file"])


def export_cmd(
    run: RunArg, out: ExportOutOpt, index: IndexKindOpt = None, nprobe: NprobeOpt = None,
    ef_search: EfSearchOpt = None, hnsw_m: HnswMOpt = None, force: ForceOpt = False, device: DeviceOpt = None,
    quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Export a run for serving: normalized embeddings with your ids, training items, scoring rule, index."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.workflows.export import export_run

    result = export_run(run, out, index=index, nprobe=nprobe, ef_search=ef_search, hnsw_m=hnsw_m, force=force,
                        device=device or "auto")
    emit(result.manifest, as_json, None if quiet else (lambda m: _render(m, result.out)))


COMMANDS = {"export": export_cmd}
