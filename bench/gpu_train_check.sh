#!/usr/bin/env bash
# The training GPU check for a lent GPU machine (issue #14), in under 5 minutes: the
# nvila-lite-2b student (random weights, all layers) under FSDP2 in a process group of one
# (torchrun --nproc-per-node 1), bf16-mixed over fp32 sharded masters, a few steps with gradient
# checkpointing on and then off. Prints one table (step time, peak memory, tokens/s) and writes
# bench.json + report.md under OUT (default: bench-out/gpu-train).
#   bash bench/gpu_train_check.sh [OUT]
# Without a GPU, `p4d bench gpu-train --device cpu` runs the same code as a dry run (tiny student).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-out/gpu-train}"
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 300 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 \
    -m p4d.cli bench gpu-train --device cuda --out "$OUT"
