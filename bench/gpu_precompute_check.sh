#!/usr/bin/env bash
# The precompute GPU check for a lent GPU machine (issues #13, #23), in under 5 minutes:
# the l4p teacher (random weights) in bf16 on one GPU: forward clips/s and peak GPU memory,
# F_4D encode on the device (clips/s, bit-exact with the numpy encoder), and a 2-shard
# `p4d precompute` through the real pipeline on PyAV-written videos. Prints one table and
# writes bench.json + report.md under OUT (default: bench-out/gpu-precompute). On a box with
# >= 2 GPUs it then runs a 2-worker tiny-teacher precompute and asserts from the store's
# runs/shard-*.json that the two workers used different GPUs (index and, when known, UUID);
# with one GPU that check is skipped.
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

# Issue 23: GPU decode (NVDEC via PyNvVideoCodec, `pip install 'p4d[gpu]'`) vs PyAV frames/s and host
# CPU-ms per frame; GPU pixels vs PyAV's and the GPU teacher input vs the CPU chain, within the stated
# tolerances; the whole job's host CPU-s per clip (every process) with the real l4p forward, --decoder
# gpu vs cpu (stride) and gpu (uniform), and the clips/s the GPU reaches. Table + bench.json in OUT/decode.
if "$PY" -c "import PyNvVideoCodec" 2>/dev/null; then
  timeout 240 "$PY" -m p4d.bench.gpu_decode_check cuda "$OUT/decode"
else
  echo "GPU decode check: skipped (PyNvVideoCodec not installed: pip install 'p4d[gpu]' or PyNvVideoCodec)"
fi

# Issue 22 #1: on a box with >= 2 GPUs, two local workers must compute on two different GPUs
# (each worker's pinned index, read in its task threads; runs/shard-{id}.json records index + UUID).
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -lt 2 ]; then
  echo "two-GPU placement check: skipped (1 GPU visible)"
  exit 0
fi
PLACE="$OUT/two-gpu"
rm -rf "$PLACE" && mkdir -p "$PLACE/videos"
"$PY" - "$PLACE/videos" <<'PYEOF'
import sys
from pathlib import Path
from p4d.video import write_synthetic_video
for i in range(4):  # stride policy: 2 clips each; 1 clip per shard -> 8 shards for 2 workers
    write_synthetic_video(Path(sys.argv[1]) / f"v{i}.mp4", num_frames=34, fps=24, size=(96, 64), seed=i)
PYEOF
timeout 240 "$PY" -m p4d.cli precompute "$PLACE/videos" "$PLACE/c.zarr" --teacher tiny --policy stride \
  --clips-per-shard 1 --batch-size 1 --device cuda --workers 2 --threads-per-worker 1
"$PY" - "$PLACE/c.zarr" <<'PYEOF'
import sys
from p4d.cache_schema import open_store
runs = open_store(sys.argv[1]).shard_runs()
used = {(r.get("gpu_index"), r.get("gpu_uuid")) for r in runs.values()}
print(f"two-GPU placement check: {len(runs)} shards on {sorted(used, key=str)}")
assert len(runs) == 8, f"expected 8 run records, found {len(runs)}"
assert all(i is not None for i, _ in used), f"a shard has no GPU index: {used}"
assert len({i for i, _ in used}) >= 2, f"both workers used the same GPU: {used}"
uuids = {u for _, u in used if u}
assert not uuids or len(uuids) >= 2, f"two indices but one physical GPU (UUID): {used}"
print("two-GPU placement check: ok (two workers, two different devices)")
PYEOF
