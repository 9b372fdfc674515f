"""``p4d bench gpu-precompute``: the precompute GPU path on a lent GPU, in under 5 minutes.

``--device cuda`` (``bench/gpu_precompute_check.sh``): the l4p preset (random weights) in bf16
autocast on one GPU. ``--device cpu``: the same code with the tiny preset in fp32, a dry run the
test suite runs so this check cannot rot. One table:

* teacher forward alone, batch B on device-resident input: clips/s (median of 3, spread) and the
  achieved TFLOP/s, against the issue's H100 estimate (30 clips/s: 13.4 TFLOP per clip at 40-50 %
  of bf16 peak); peak device memory (GPU: ``max_memory_allocated``; CPU: process peak RSS).
* F_4D encode on the device (the torch dpcm encoder + codec self-check + copy of the parts to the
  host, :func:`p4d.precompute.encode.encode_checked`) on the forward's real F_4D: clips/s against
  the forward's (goal >= 10: the encode adds <= 10 % to the device's time per clip); bit-exactness
  of one clip's parts with the numpy reference encoder, and the self-check's levels with the numpy
  self-check's.
* ``run_precompute`` on 2 shards (2 PyAV-written H.264 videos, 2 clips each, stride policy): the
  real pipeline (cluster, worker-side placement, decode, forward, encode, write), whole-job clips/s
  against the forward's; the store verifies clean and every shard ran on the requested device.
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from p4d.bench.harness import BenchResult, Goal, Row, time_fn

BATCH, H100_CLIPS_PER_S = 2, 30.0
PRESETS = {"cuda": ("l4p", "bf16", (1280, 720)), "cpu": ("tiny", "fp32", (96, 64))}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory_mib(device: str) -> tuple[float, float]:
    """(peak bytes of the forward, what the device holds) in MiB."""
    import psutil
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, torch.cuda.get_device_properties(0).total_memory / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, psutil.virtual_memory().total / 2**20


def _forward_and_encode(preset_name: str, device: str, dtype: str, repeats: int) -> tuple[list[Row], dict]:
    import torch

    from p4d.cache_schema.codecs import LATENT_CODECS
    from p4d.cache_schema.codecs import dpcm_encode as numpy_dpcm
    from p4d.cache_schema.fidelity import FidelityPolicy
    from p4d.cache_schema.fidelity import encode_checked as numpy_checked
    from p4d.precompute.encode import dpcm_encode, encode_checked, encode_latents
    from p4d.precompute.worker import TeacherJob, teacher_forward
    from p4d.teacher import build_teacher, get_preset
    from p4d.teacher.info import teacher_stats

    preset = get_preset(preset_name)
    t = time.perf_counter()
    teacher = build_teacher(preset, device=device, seed=0)
    _sync(device)
    build_s = time.perf_counter() - t
    job = TeacherJob(preset=preset, weights=None, seed=0, device=device, dtype=dtype, batch_size=BATCH, max_pixels=None)
    lock, modalities = threading.Lock(), preset.heads_config().modalities
    x = torch.randn(BATCH, 3, preset.num_frames, preset.img_size, preset.img_size,
                    generator=torch.Generator().manual_seed(0)).to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    out = {}

    def forward():
        out.update(teacher_forward(teacher, lock, x, list(range(BATCH)), job, modalities))
        _sync(device)

    fwd = time_fn(forward, warmup=1, repeats=repeats)
    peak, capacity = _peak_memory_mib(device)
    fwd_rate = BATCH / fwd.median
    tflops = fwd_rate * teacher_stats(preset)["flops"]["total"] / 1e12
    f4d = out["f4d"].float()
    policy = FidelityPolicy()
    enc = time_fn(lambda: encode_checked("dpcm-channel", f4d, policy), warmup=1, repeats=repeats)
    enc_rate = BATCH / enc.median
    # bit-exactness on one clip: the device encoder vs the numpy reference, same float32 input
    clip = f4d[:1]
    host = clip.cpu().numpy()
    mine, ref = encode_latents("dpcm-channel", clip), LATENT_CODECS["dpcm-channel"].encode(host)
    exact = sorted(mine) == sorted(ref) and all(mine[k].tobytes() == ref[k].tobytes() for k in ref)
    # and level 1 (the outlier split: kthvalue + nonzero on the device)
    mine1 = {k: v.cpu().numpy() for k, v in dpcm_encode(clip, step_over_rms=0.0, outliers=True).items()}
    ref1 = numpy_dpcm(host, step_over_rms=0.0, outliers=True)
    exact1 = sorted(mine1) == sorted(ref1) and all(mine1[k].tobytes() == ref1[k].tobytes() for k in ref1)
    levels_dev = encode_checked("dpcm-channel", f4d, policy)["levels"].tolist()
    levels_np = numpy_checked("dpcm-channel", f4d.cpu().numpy(), np.ones(BATCH, bool), policy)[2].tolist()
    del teacher, out, f4d, x
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    rows = [
        Row(f"teacher forward {preset_name} {dtype}, batch {BATCH} vs the issue's H100 estimate", "clips/s",
            fwd_rate, H100_CLIPS_PER_S, spread=fwd.spread, extra={"TFLOP/s": tflops, "build_s": build_s}),
        Row(f"peak {'GPU' if device.startswith('cuda') else 'process'} memory of the forward vs the device's",
            "MiB", peak, capacity),
        Row(f"F_4D encode + self-check on {device} vs the forward", "clips/s", enc_rate, fwd_rate,
            goal=Goal(">=", 10.0), spread=enc.spread, extra={"levels": levels_dev}),
        Row(f"dpcm encode on {device} vs numpy, one clip, bytes equal", "clips", float(exact), 1.0,
            goal=Goal(">=", 1.0), checks={"bit-exact": exact, "level 1 (outlier split) bit-exact": exact1,
                                          "self-check levels equal": levels_dev == levels_np}),
    ]
    return rows, {"forward_clips_per_s": fwd_rate}


def _precompute_two_shards(preset: str, device: str, dtype: str, video_size: tuple[int, int], tmp: Path,
                           forward_rate: float) -> Row:
    from p4d.cache_schema import open_store, verify
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute
    from p4d.video import write_synthetic_video

    folder = tmp / "videos"
    for i in range(2):  # 34 frames: 2 clips each under the stride policy, 4 clips = 2 shards of 2
        write_synthetic_video(folder / f"v{i}.mp4", num_frames=34, fps=24, size=video_size, seed=i)
    cfg = PrecomputeConfig(videos=str(folder), store=str(tmp / "c.zarr"), teacher=preset,
                           random_weights=preset not in ("tiny", "tiny-random"), policy="stride", clips_per_shard=2, batch_size=BATCH,
                           device=device, dtype=dtype, workers=1, threads_per_worker=2, progress=False)
    report = run_precompute(cfg)
    rate = (report.clips_done + report.clips_failed) / report.wall_s if report.wall_s else 0.0
    placed = report.placements()
    problems = verify(open_store(cfg.store)).problems
    return Row("precompute 2 shards, real pipeline (whole job, teacher build included) vs the forward", "clips/s",
               rate, forward_rate,
               extra={"wall_s": report.wall_s, "clips_done": report.clips_done,
                      "placement": "; ".join(f"{n} shards on {d} {t} ({g})" for (d, t, g), n in placed.items()),
                      "worker_peak_rss_mib": report.worker_peak_rss_mib},
               checks={"4 clips done": report.clips_done == 4,
                       f"every shard on {device}": bool(placed) and all(d.startswith(device) for d, _, _ in placed),
                       "verify clean": not problems})


def run(size: str, *, device: str = "auto", repeats: int = 3) -> BenchResult:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "none"
    if device not in PRESETS:
        return BenchResult(name="gpu-precompute", size=size, shapes={},
                           status="skipped: no CUDA device here; `p4d bench gpu-precompute --device cpu` runs the "
                                  "dry run (tiny teacher), bench/gpu_precompute_check.sh the GPU check")
    torch.set_flush_denormal(True)
    preset, dtype, video_size = PRESETS[device]
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none"
    result = BenchResult(name="gpu-precompute", size=size,
                         shapes={"teacher": f"{preset} ({'shipped' if preset == 'tiny' else 'random'} weights)", "device": device, "gpu": gpu,
                                 "dtype": dtype, "batch": BATCH, "videos": f"2 x {video_size[0]}x{video_size[1]}"})
    t0 = time.perf_counter()
    rows, seen = _forward_and_encode(preset, device, dtype, repeats)
    result.rows += rows
    with tempfile.TemporaryDirectory(prefix="p4d-bench-gpu-") as tmp:
        result.rows.append(_precompute_two_shards(preset, device, dtype, video_size, Path(tmp),
                                                  seen["forward_clips_per_s"]))
    result.notes.append(f"whole check {time.perf_counter() - t0:.0f} s; the forward runs on device-resident random "
                        "input (no decode), the encode on that forward's F_4D")
    result.notes.append("the 2-shard job's rate includes starting the cluster and building the teacher in its "
                        "worker: it checks the path, it does not measure the steady state (p4d bench precompute does)")
    return result
