"""The GPU decode check for a lent GPU machine (``bench/gpu_precompute_check.sh``, issue 23).

``--device cuda``: on the bench's 1280x720 H.264 videos (:func:`p4d.bench.precompute_standin.bench_videos`)

* decode frames/s and host CPU-ms per frame: NVDEC (:func:`p4d.video.gpu_decode.decode_clips_gpu`,
  no resize) vs PyAV (:func:`p4d.video.decode_clips`, one thread), every frame of each video;
* GPU-decoded pixels vs PyAV's (mean and 99th percentile of |difference|, uint8 levels; tolerance
  :data:`PIXEL_TOL`), and no video handed back to PyAV (indices matched by pts);
* the teacher input built from GPU frames (NVDEC -> S x S bicubic on the device -> teacher_input)
  vs the CPU chain (PyAV -> Pillow bicubic -> teacher_input): |difference| in normalised units
  (tolerance :data:`INPUT_TOL`);
* the whole job's host CPU-s per clip (every process, marginal between 2 and 8 videos,
  :mod:`p4d.bench.whole_job`) with the real l4p forward (random weights, bf16) on the GPU:
  ``--decoder gpu`` vs ``--decoder cpu`` (stride), and ``--decoder gpu`` with the uniform policy;
  and the clips/s the GPU reaches in the 8-video job's steady state.

``--device cpu`` is the dry run the test suite runs: tiny videos, a PyAV-backed frame source in
place of NVDEC, the tiny teacher, the PyAV decoder in the jobs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from p4d.bench.harness import BenchResult, Goal, Row

PIXEL_TOL = {"mean": 2.0, "p99": 12.0}   # uint8 levels: NVDEC's YUV->RGB vs swscale's
INPUT_TOL = {"mean": 0.03, "p99": 0.15}  # normalised units (1 level ~ 0.017)
COUNTS = (2, 8)


def _pyav_source(path: str):
    """What NVDEC returns (raw frames in presentation order with their pts), from PyAV: the dry run."""
    import av
    import torch

    class Source:
        def __init__(self):
            with av.open(path) as c:
                self.frames = [(torch.from_numpy(f.to_ndarray(format="rgb24")), int(f.pts)) for f in c.decode(video=0)]

        def frames_at(self, indices):
            return [self.frames[i] for i in indices]

    return Source()


def _decode_rows(videos: list[Path], device: str, spatial: dict, norm: dict) -> list[Row]:
    import torch

    from p4d.video import DecodeStats, decode_clips, decode_size, probe, teacher_input
    from p4d.video.gpu_decode import decode_clips_gpu

    source = None if device == "cuda" else _pyav_source
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    everything = {v: [np.arange(probe(v).num_frames)] for v in videos}
    decode_clips_gpu(videos[0], everything[videos[0]], source=source)  # warm-up: NVDEC session, CUDA context
    sync()
    rates, cpu_ms = {}, {}
    gpu_frames, cpu_frames = {}, {}
    for name in ("gpu", "cpu"):
        stats = DecodeStats()
        t, c = time.perf_counter(), time.thread_time()
        for v, clips in everything.items():
            if name == "gpu":
                gpu_frames[v] = decode_clips_gpu(v, clips, stats=stats, source=source)[0].frames
            else:
                cpu_frames[v] = decode_clips(v, clips, stats=stats)[0].frames
        sync()
        wall, cpu = time.perf_counter() - t, time.thread_time() - c
        rates[name] = stats.frames_decoded / wall
        cpu_ms[name] = 1e3 * cpu / stats.frames_decoded
    diffs = np.concatenate([np.abs(gpu_frames[v].cpu().numpy().astype(np.int16) - cpu_frames[v]).ravel()
                            for v in videos])
    mean, p99 = float(diffs.mean()), float(np.percentile(diffs, 99))
    size, filter_ = decode_size(spatial)
    sub = [np.arange(0, 16)]
    a = teacher_input(decode_clips(videos[0], sub, size=size, filter=filter_)[0].frames[None], spatial, norm)
    g = decode_clips_gpu(videos[0], sub, size=size, filter=filter_, source=source)[0].frames
    b = teacher_input(g[None], spatial, norm).cpu()
    d = (a - b).abs().ravel().numpy()
    return [
        Row(f"decode {len(videos)} videos, every frame: GPU ({device}) vs PyAV (1 thread)", "frames/s",
            rates["gpu"], rates["cpu"],
            extra={"host CPU-ms/frame gpu": cpu_ms["gpu"], "host CPU-ms/frame pyav": cpu_ms["cpu"]}),
        Row("GPU-decoded pixels vs PyAV's, mean |diff| (uint8 levels)", "levels", mean, PIXEL_TOL["mean"],
            goal=Goal("<=", 1.0), extra={"p99": p99, "max": float(diffs.max())},
            checks={f"p99 <= {PIXEL_TOL['p99']:g}": p99 <= PIXEL_TOL["p99"]}),
        Row("teacher input from GPU frames vs the CPU chain (release), mean |diff|", "normalised",
            float(d.mean()), INPUT_TOL["mean"], goal=Goal("<=", 1.0),
            extra={"p99": float(np.percentile(d, 99)), "max": float(d.max())},
            checks={f"p99 <= {INPUT_TOL['p99']:g}": float(np.percentile(d, 99)) <= INPUT_TOL["p99"]}),
    ]


def _job_rows(videos: list[Path], device: str, tmp: Path) -> list[Row]:
    from p4d.bench.whole_job import marginal, measure_job
    from p4d.precompute.config import PrecomputeConfig

    preset, dtype = ("l4p", "bf16") if device == "cuda" else ("tiny", "fp32")
    gpu_decoder = "gpu" if device == "cuda" else "cpu"
    rows = []
    for policy, decoder, goal in (("stride", gpu_decoder, 0.12), ("stride", "cpu", None), ("uniform", gpu_decoder, 0.15)):
        costs = []
        for n in COUNTS:
            folder = tmp / f"videos-{n}"
            if not folder.exists():
                folder.mkdir(parents=True)
                for k in range(n):
                    (folder / f"{k:03d}.mp4").hardlink_to(videos[k % len(videos)])
            cfg = PrecomputeConfig(videos=str(folder), store=str(tmp / f"{policy}-{decoder}-{n}.zarr"), teacher=preset,
                                   random_weights=preset != "tiny", policy=policy, clips_per_shard=4, batch_size=2,
                                   device=device, dtype=dtype, decoder=decoder, workers=1, progress=False,
                                   student_size=448 if device == "cuda" else 64)
            costs.append(measure_job(cfg))
        m = marginal(*costs)
        rows.append(Row(f"{policy}, --decoder {decoder}: whole job host CPU per clip (real {preset} forward, "
                        f"marginal {costs[0].clips}->{costs[1].clips} clips)", "CPU-s/clip", m.cpu, goal or m.cpu,
                        goal=Goal("<=", 1.0) if goal and device == "cuda" else None,
                        extra={"user": m.user, "sys": m.sys, "stages": round(m.stage_sum, 4),
                               "decoders": ",".join(costs[1].decoders),
                               "decode_fallbacks": costs[1].decode_fallbacks,
                               "steady clips/s": costs[1].steady_clips_per_s,
                               "8 cores feed clips/s": 8 / m.cpu if m.cpu > 0 else float("nan")},
                        checks={f"shards decoded with {decoder}": costs[1].decoders == [decoder],
                                "no video handed back to PyAV": costs[1].decode_fallbacks == 0}))
    return rows


def run(device: str = "cuda", *, jobs: bool = True) -> BenchResult:
    import torch

    from p4d.bench.precompute_standin import bench_videos

    if device == "cuda" and not torch.cuda.is_available():
        return BenchResult(name="gpu-decode", size="paper", shapes={}, status="skipped: no CUDA device")
    videos = bench_videos() if device == "cuda" else bench_videos(2, (96, 64), 34)
    spatial = ({"teacher_input": "release", "student_size": 448, "input_size": [224, 224]} if device == "cuda" else
               {"teacher_input": "release", "student_size": 64, "input_size": [32, 32]})
    norm = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    result = BenchResult(name="gpu-decode", size="paper" if device == "cuda" else "tiny",
                         shapes={"device": device, "videos": f"{len(videos)} x {videos[0].name}"})
    t0 = time.perf_counter()
    result.rows += _decode_rows(videos, device, spatial, norm)
    if jobs:  # the whole-job rows (6 jobs); the CPU test runs the decode rows only
        with tempfile.TemporaryDirectory(prefix="p4d-gpu-decode-") as tmp:
            result.rows += _job_rows(videos, device, Path(tmp))
    result.notes.append(f"whole check {time.perf_counter() - t0:.0f} s; host CPU-s: every process of the job "
                        "(getrusage(RUSAGE_CHILDREN) around a child running run_precompute)")
    if device != "cuda":
        result.notes.append("dry run: a PyAV-backed frame source stands in for NVDEC, the tiny teacher for l4p")
    return result


def main(argv: list[str]) -> int:
    from p4d.bench.harness import format_table
    from p4d.bench.report import machine_info, write_report

    device = argv[0] if argv else "cuda"
    out = Path(argv[1]) if len(argv) > 1 else Path("bench-out/gpu-decode")
    res = run(device)
    res.machine = machine_info()
    print(format_table(res))
    write_report([res], out, res.machine)
    failed = [r.entry for r in res.rows if r.verdict.startswith("not met")]
    if failed:
        print("not met: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
