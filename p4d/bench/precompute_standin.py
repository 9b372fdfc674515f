"""``p4d bench precompute --size paper``: the pipeline around the teacher at the real shapes, on CPU.

The forward is a stand-in (:mod:`p4d.precompute.standin`: ``1 / R`` s per clip, paper-shaped
ViT-like outputs); everything else is the real job on 1280x720 H.264 videos (synthetic scenes,
written once into ``~/.cache/p4d/bench-videos``): decode, resize, the device-side encode (torch
on CPU here) and the write.

* Stage table: CPU-seconds per clip of decode, resize, encode and write, measured one stage at a
  time in this process (``time.process_time``, all threads), median over repeats with spread.
  Goal: the sum <= 0.25 CPU-s per clip (so that 8 cores feed 30 clips/s).
* Pipeline: ``run_precompute`` with the stand-in at the rate R the two cores of this machine can
  feed (2 / the stage sum) and at half of it, with 1 worker and 2 workers (R / 2 each), each worker
  with 2 shards in flight (``--threads-per-worker`` default, as one worker per GPU runs):
  steady-state clips/s / R. Goal >= 0.9.
* Memory: the 1-worker job's peak worker RSS on 4x the videos (hard links) vs 1x, at the highest
  R. Goal <= 1.2 (flat in the number of videos).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from p4d.bench.harness import BenchResult, Goal, Row, Timing
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.precompute.plan import build_spec, plan_store
from p4d.teacher import get_preset
from p4d.video import DecodeStats, decode_clips, plan_clips, probe, write_synthetic_video

VIDEO_SIZE, VIDEO_FRAMES, VIDEO_COUNT, FPS = (1280, 720), 64, 4, 24
POLICIES = {"uniform": dict(policy="uniform", frame_stride=1), "stride": dict(policy="stride", frame_stride=1)}
CLIPS_PER_SHARD, BATCH = 4, 2


def bench_videos(count: int = VIDEO_COUNT) -> list[Path]:
    """``count`` 1280x720 24 fps H.264 videos of VIDEO_FRAMES frames, written once and kept."""
    folder = Path(os.environ.get("P4D_BENCH_CACHE", Path.home() / ".cache" / "p4d")) / "bench-videos-720p"
    out = []
    for i in range(count):
        path = folder / f"v{i:02d}_{VIDEO_FRAMES}f.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            write_synthetic_video(tmp, num_frames=VIDEO_FRAMES, fps=FPS, size=VIDEO_SIZE, seed=i)
            tmp.rename(path)
        out.append(path)
    return out


def stage_costs(videos: list[Path], preset_name: str, policy: str, repeats: int) -> dict[str, tuple[float, float]]:
    """CPU-s per clip of each stage: {stage: (median, spread)} and the clip count under ``policy``,
    with 1 torch thread (an idle OpenMP thread spinning on a busy shared core would count as work)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _stage_costs(videos, preset_name, policy, repeats)
    finally:
        torch.set_num_threads(before)


def _stage_costs(videos: list[Path], preset_name: str, policy: str, repeats: int):
    import torch

    from p4d.cache_schema import write_shard
    from p4d.cache_schema.write import DEFAULT_FIDELITY
    from p4d.precompute.encode import all_finite, encode_checked
    from p4d.precompute.malloc import tune_malloc
    from p4d.precompute.standin import StandInTeacher

    tune_malloc()  # as every precompute worker does (p4d.precompute.worker.get_teacher)
    preset = get_preset(preset_name)
    size = (preset.img_size, preset.img_size)
    plans = {v: plan_clips(probe(v).num_frames, num_frames=preset.num_frames, **POLICIES[policy]) for v in videos}
    n_clips = sum(len(p) for p in plans.values())
    out = StandInTeacher(preset, rate=1e9)(torch.zeros(BATCH, 1))
    spec = build_spec(teacher=preset, num_frames=preset.num_frames, modalities=("depth", "flow", "motion", "camray"),
                      codec=None, clips_per_shard=CLIPS_PER_SHARD, **POLICIES[policy])
    samples: dict[str, list[float]] = {k: [] for k in ("decode", "resize", "encode", "write")}
    with tempfile.TemporaryDirectory(prefix="p4d-bench-stages-") as tmp:
        folder = Path(tmp) / "videos"
        folder.mkdir()
        for v in videos:
            (folder / v.name).symlink_to(v)
        store = plan_store(folder, str(Path(tmp) / "s.zarr"), spec)
        for _ in range(repeats):
            stats = DecodeStats()
            t = time.process_time()
            for v, p in plans.items():
                decode_clips(v, p, size=size, stats=stats)
            total = time.process_time() - t
            samples["decode"].append((total - stats.resize_cpu_s) / n_clips)
            samples["resize"].append(stats.resize_cpu_s / n_clips)
            t = time.process_time()
            encoded = []
            for _ in range(CLIPS_PER_SHARD // BATCH):
                with torch.no_grad():
                    [all_finite(o) for o in out.values()]
                    parts = encode_checked(spec.latent_codec, out["f4d"], DEFAULT_FIDELITY)
                    parts.pop("fidelity")
                    maps = {m: out[m].to(torch.float16).numpy() for m in spec.modalities}
                encoded.append((parts, maps))
            samples["encode"].append((time.process_time() - t) / CLIPS_PER_SHARD)
            n = len(store.shard_clips(0))
            arrays = {"f4d": {k: np.concatenate([e[0][k] for e in encoded])[:n] for k in encoded[0][0]},
                      **{m: np.concatenate([e[1][m] for e in encoded])[:n] for m in spec.modalities},
                      "frame_index": np.zeros((n, spec.num_frames), np.int32),
                      "timestamp": np.zeros((n, spec.num_frames), np.float32)}
            t = time.process_time()
            write_shard(store, 0, arrays)
            samples["write"].append((time.process_time() - t) / n)
    timings = {k: Timing(tuple(v)) for k, v in samples.items()}
    return {k: (t.median, t.spread) for k, t in timings.items()}, n_clips


def pipeline(videos: list[Path], preset: str, policy: str, rate: float, workers: int, tmp: Path,
             copies: int = 2) -> tuple[float, object]:
    """(steady-state clips/s, report) of the whole job with the stand-in at ``rate`` clips/s (rate / workers
    per worker) on ``copies`` hard links of each video (more videos: more shards for a steady state)."""
    folder = tmp / f"videos-{policy}-x{copies}"
    if not folder.exists():
        folder.mkdir(parents=True)
        for copy in range(copies):
            for v in videos:
                os.link(v, folder / f"{copy}_{v.name}")
    cfg = PrecomputeConfig(videos=str(folder), store=str(tmp / f"{policy}-{workers}-x{copies}-{rate:.3f}.zarr"),
                           teacher=preset,
                           clips_per_shard=CLIPS_PER_SHARD, batch_size=BATCH, workers=workers, device="cpu",
                           threads_per_worker=2, progress=False,  # the default: 2 shards in flight per worker (GPU)
                           stand_in_rate=rate / workers, random_weights=True, **POLICIES[policy])
    report = run_precompute(cfg)
    return report.steady_clips_per_s, report


def run_stand_in(size: str, preset: str, *, teacher_rate: float | None = None, repeats: int = 3) -> BenchResult:
    import torch

    torch.set_flush_denormal(True)
    videos = bench_videos()
    policy = "stride"
    result = BenchResult(name="precompute", size=size,
                         shapes={"teacher": f"stand-in with {preset} shapes", "videos": f"{len(videos)} x "
                                 f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} H.264, {VIDEO_FRAMES} frames",
                                 "clips_per_shard": CLIPS_PER_SHARD, "batch": BATCH})
    per_stage = {}
    for pol in ("stride", "uniform"):
        costs, n = stage_costs(videos, preset, pol, repeats)
        per_stage[pol] = costs
        total = sum(m for m, _ in costs.values())
        for stage, (med, spread) in costs.items():
            result.rows.append(Row(f"{pol} ({n} clips): {stage}", "CPU-s/clip", med, total, spread=spread))
        result.rows.append(Row(f"{pol}: decode+resize+encode+write vs goal 0.25", "CPU-s/clip", total, 0.25,
                               goal=Goal("<=", 1.0)))
    total = sum(m for m, _ in per_stage[policy].values())
    feed = 2 / total
    rates = [teacher_rate] if teacher_rate else [feed / 2, feed]
    n = len(videos)
    with tempfile.TemporaryDirectory(prefix="p4d-bench-pipeline-") as tmp:
        for rate in rates:
            top = rate == max(rates)  # the RSS pair runs at the highest rate only
            runs = {}
            for workers, copies in ((1, 4 if top else 2), (2, 2)):
                got, report = pipeline(videos, preset, policy, rate, workers, Path(tmp), copies)
                runs[(workers, copies)] = report
                result.rows.append(Row(f"{policy}: pipeline vs stand-in rate R={rate:.2f}, {workers} worker(s), "
                                       f"{copies * n} videos", "clips/s", got, rate, goal=Goal(">=", 0.9),
                                       extra={"clips": report.clips_done, "wall_s": report.wall_s,
                                              "peak_rss_mib": report.worker_peak_rss_mib,
                                              "load_1min": os.getloadavg()[0]}))
            if top:  # memory flat in the number of videos: the same job on a quarter of them
                _, small = pipeline(videos, preset, policy, rate, 1, Path(tmp), 1)
                big = runs[(1, 4)]
                result.rows.append(Row(f"{policy}: worker peak RSS, {4 * n} vs {n} videos (1 worker, R={rate:.2f})",
                                       "MiB", big.worker_peak_rss_mib, small.worker_peak_rss_mib, goal=Goal("<=", 1.2),
                                       extra={"clips": f"{big.clips_done} vs {small.clips_done}"}))
    result.notes.append(f"2 cores feed at most 2 / {total:.3f} = {feed:.2f} clips/s at the stage sum "
                        f"({policy} policy); R is set from it unless --teacher-rate is given")
    result.notes.append("stage CPU: one stage at a time in the bench process (time.process_time, every thread; "
                        "malloc tuned as in the workers, p4d.precompute.malloc); "
                        "encode = finite checks + the torch dpcm encoder and codec self-check on CPU + maps to float16; write = "
                        "write_shard of one shard (zstd/blosc + files)")
    result.notes.append("load_1min: the machine's 1-minute load average as each job ended (2 cores; above 2, other "
                        "processes took CPU from the job: its clips/s is then a floor, not the pipeline's capacity)")
    result.notes.append("videos are synthetic scenes (textures + moving objects) encoded by x264 crf 18; real "
                        "footage decodes at a similar per-pixel cost but its bitrate may differ")
    return result
