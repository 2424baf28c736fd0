#!/usr/bin/env bash
# Issue #16's GPU check, prepared for a session that is lent a CUDA machine (the device tool). From the repo root:
#
#   (here, once: the two pure-Python dependencies the device image lacks, as wheels)
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl tomli-w platformdirs
#   (then one call) run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# At Amazon-Book scale (synthetic-amazon-book, MF Adap-tau, 1024 shared negatives, batch 2048, dim 64), two
# epochs each: one process with NCCL initialised (world size 1, through torchrun), the same with
# --optimizer sparse-adam, and two processes sharing the one GPU (NCCL gives each rank its own device, so
# with one GPU this is expected to fail: its error is kept as the finding). Each run's epoch and
# evaluation seconds land in $OUT/summary.json; nothing here is needed by tests or CI.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD" ADAPTAU_HOME=/tmp/adaptau-home PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" >> "$OUT/gpu.csv" 2>&1
timeout 120 python3 -m adaptau_cli preprocess synthetic-amazon-book --quiet > "$OUT/prepare.log" 2>&1
COMMON=(train synthetic-amazon-book --epochs 2 --negatives shared --num-negatives 1024 --batch-size 2048 --dim 64
        --tau-mode adap-tau --device cuda --quiet)
LAUNCH=(python3 -m torch.distributed.run --standalone)
timeout 150 "${LAUNCH[@]}" --nproc-per-node 1 -m adaptau_cli "${COMMON[@]}" --out /tmp/run-nccl1 > "$OUT/nccl1.log" 2>&1
timeout 150 "${LAUNCH[@]}" --nproc-per-node 1 -m adaptau_cli "${COMMON[@]}" --optimizer sparse-adam \
    --out /tmp/run-nccl1-sparse > "$OUT/nccl1-sparse.log" 2>&1
timeout 150 "${LAUNCH[@]}" --nproc-per-node 2 -m adaptau_cli "${COMMON[@]}" --out /tmp/run-nccl2 > "$OUT/nccl2.log" 2>&1
python3 - "$OUT" <<'EOF'
import json, pathlib, sys
import pandas as pd
out, summary = pathlib.Path(sys.argv[1]), {}
for name in ("nccl1", "nccl1-sparse", "nccl2"):
    run = pathlib.Path(f"/tmp/run-{name}")
    if not (run / "report.json").is_file():
        log = (out / f"{name}.log").read_text(errors="replace")
        summary[name] = {"error": log.strip().splitlines()[-1] if log.strip() else "no output"}
        continue
    report = json.loads((run / "report.json").read_text())
    history = pd.read_parquet(run / "history.parquet")
    summary[name] = {"processes": report.get("processes"), "train_seconds": report.get("train_seconds"),
                     "eval_seconds": report.get("eval_seconds"),
                     "epochs": {c: history[c].tolist() for c in history.columns
                                if "second" in c or c in ("epoch", "loss", "tau0")}}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
