"""``p4d bench teacher``: teacher clips/s and peak memory, fused attention vs explicit softmax.

Candidate: the teacher as precompute runs it (SDPA attention, or xformers on CUDA when
installed; bf16 autocast on CUDA). Baseline: the same weights with the explicit softmax
attention (``attn_backend="math"``), fp32. Both on the same random clips, interleaved repeats.

Sizes: ``tiny`` = the tiny preset (16x112x112 clips), batch 2; ``small`` = the tiny preset,
batch 8; ``paper`` = the l4p preset (16x224x224, ViT-g), batch 1 — on a GPU only, as one clip
is ~13 TFLOP (``p4d teacher info``).
"""

from __future__ import annotations

import contextlib
import resource

import torch

from p4d.bench.harness import BenchResult, Row, compare
from p4d.teacher import build_teacher, get_preset

SIZES = {"tiny": ("tiny", 2), "small": ("tiny", 8), "paper": ("l4p", 1)}


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(size: str, *, repeats: int = 3) -> BenchResult:
    preset_name, batch = SIZES[size]
    preset = get_preset(preset_name)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shapes = {"preset": preset_name, "clip": f"{preset.num_frames}x{preset.img_size}x{preset.img_size}", "batch": batch,
              "device": device.type}
    result = BenchResult(name="teacher", size=size, shapes=shapes)
    if preset_name == "l4p" and device.type != "cuda":
        result.status = ("skipped: the l4p preset needs a GPU (~13.4 TFLOP per 16-frame clip, `p4d teacher info`); "
                         "run `p4d bench teacher --size paper` on a GPU machine")
        return result
    frames = torch.randint(0, 256, (batch, preset.num_frames, preset.img_size, preset.img_size, 3), dtype=torch.uint8,
                           device=device)
    fused = build_teacher(preset, device=device, attn_backend="auto")
    plain = build_teacher(preset, device=device, attn_backend="math")
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())

    def run_fused():
        with torch.inference_mode(), amp:
            fused(frames)
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run_plain():
        with torch.inference_mode():
            plain(frames)
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _peak_mb(device)
    cand, base = compare(run_fused, run_plain, repeats=repeats)
    dtype = "bf16 autocast" if device.type == "cuda" else "fp32"
    peak = _peak_mb(device)
    result.rows.append(Row(f"teacher forward ({dtype}, SDPA/xformers) vs explicit-softmax fp32", "clips/s",
                           batch / cand.median, batch / base.median, spread=cand.spread,
                           extra={"s/clip": cand.median / batch, "baseline s/clip": base.median / batch,
                                  "peak_MiB": peak, "peak_MiB_before": before}))
    result.notes.append("peak memory: the CUDA allocator's peak on GPU; the process RSS high-water mark on CPU")
    result.notes.append("random weights (seeded): speed does not depend on the weights' values")
    return result
