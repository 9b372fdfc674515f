#!/usr/bin/env bash
# The precompute GPU check for a lent GPU machine (issue #13), in under 5 minutes:
# the l4p teacher (random weights) in bf16 on one GPU: forward clips/s and peak GPU memory,
# F_4D encode on the device (clips/s, bit-exact with the numpy encoder), and a 2-shard
# `p4d precompute` through the real pipeline on PyAV-written videos. Prints one table and
# writes bench.json + report.md under OUT (default: bench-out/gpu-precompute).
#   bash bench/gpu_precompute_check.sh [OUT]
# Without a GPU, `p4d bench gpu-precompute --device cpu` runs the same code as a dry run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-out/gpu-precompute}"
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 300 "$PY" -m p4d.cli bench gpu-precompute --device cuda --out "$OUT"
