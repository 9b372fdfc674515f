"""What runs inside a dask worker: the teacher (loaded once per worker process) and one shard.

A shard task decodes its clips on a background thread (PyAV releases the GIL) while the teacher
runs batched forwards on the clips already decoded; the encode + write of the shard happens in
:func:`p4d.cache_schema.write_shard`. A worker runs ``threads_per_worker`` shard tasks at once,
so one shard's decode and write overlap another's forward; forwards are serialised by a
per-process lock, so the teacher is never run by two threads at once. Memory is bounded by
the shards in flight (``threads_per_worker`` x one shard of float32 targets).

Per-clip faults (undecodable video, NaN/Inf teacher output) are recorded as that clip's failure
reason and the shard goes on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from p4d.cache_schema import CacheStore, open_store, write_shard
from p4d.errors import P4DError
from p4d.precompute.plan import plan_video
from p4d.teacher.presets import TeacherPreset
from p4d.video import decode_frames, plan_clips

log = logging.getLogger(__name__)

_TEACHERS: dict[tuple, tuple] = {}
_TEACHERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class TeacherJob:
    """Which teacher a worker runs, and how (picklable, shipped with every task)."""

    preset: TeacherPreset  # with the run's taps
    weights: str | None
    seed: int
    device: str          # "cpu", "cuda" (the worker's pinned GPU) or "cuda:i"
    dtype: str           # bf16 | fp16 | fp32
    batch_size: int
    max_pixels: int | None

    @property
    def key(self) -> tuple:
        return (self.preset, self.weights, self.seed, self.device)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return dtype


def get_teacher(job: TeacherJob):
    """(teacher, forward lock) for this process, built on first use and kept for later tasks."""
    with _TEACHERS_LOCK:
        if job.key not in _TEACHERS:
            from p4d.teacher import build_teacher

            teacher = build_teacher(job.preset, weights=job.weights, device=job.device, seed=job.seed)
            _TEACHERS[job.key] = (teacher, threading.Lock())
            log.info("loaded teacher %s (taps %s) on %s", job.preset.name, list(job.preset.taps), job.device)
        return _TEACHERS[job.key]


def teacher_identity(job: TeacherJob) -> dict:
    """The loaded teacher's weights hash (computed in the worker: the driver never loads it)."""
    from p4d.teacher import weights_hash

    teacher, _ = get_teacher(job)
    return {"weights_hash": weights_hash(teacher.state_dict())}


def save_heads_to_store(url: str, job: TeacherJob) -> int:
    """Write the teacher's D_m heads into the store as ``heads.safetensors``; returns its size."""
    from p4d.heads import heads_to_bytes

    teacher, _ = get_teacher(job)
    data = heads_to_bytes(teacher.heads)
    open_store(url, mode="r+").write_side_file("heads.safetensors", data)
    return len(data)


def clip_frame_plan(store: CacheStore, clips: Sequence[int]) -> dict[int, tuple[int, np.ndarray | str]]:
    """(video row, source frame indices) of each clip in ``clips``, from the stored plan and sampling
    policy; for the one clip of a video unusable when planned, the video is planned again now (it
    may have been fixed since) and its indices, or the reason it is still unusable, are given."""
    s = store.spec.sampling
    first_clip = np.cumsum([0] + [v.num_clips for v in store.videos])
    plan = {}
    for i in clips:
        v = int(np.searchsorted(first_clip, i, side="right") - 1)
        video = store.videos[v]
        if video.num_frames <= 0:  # unusable at plan time: one clip
            plan[i] = (v, _replan_unusable(video.path, s))
            continue
        per_video = plan_clips(video.num_frames, num_frames=s["num_frames"], policy=s["policy"],
                               frame_stride=s["frame_stride"])
        plan[i] = (v, per_video[i - int(first_clip[v])])
    return plan


def _replan_unusable(path: str, sampling: dict) -> np.ndarray | str:
    """The first clip's frame indices of a video that was unusable when the store was planned, or why it still is."""
    entry = plan_video(path, num_frames=sampling["num_frames"], policy=sampling["policy"],
                       frame_stride=sampling["frame_stride"])
    if entry.num_frames <= 0:
        return entry.note
    return plan_clips(entry.num_frames, num_frames=sampling["num_frames"], policy=sampling["policy"],
                      frame_stride=sampling["frame_stride"])[0]


def _decode_ahead(store: CacheStore, clips: list[int], plan, job: TeacherJob) -> Iterator[tuple[int, object]]:
    """Yield (clip, Clip or error message) in order while the next clips decode on a thread."""
    size = (store.spec.height, store.spec.width)
    kwargs = {} if job.max_pixels is None else {"max_pixels": job.max_pixels}

    def decode(i: int):
        v, idx = plan[i]
        path = store.videos[v].path
        if isinstance(idx, str):  # still unusable: the planner's reason
            return idx
        try:
            return decode_frames(path, idx, size=size, **kwargs)
        except P4DError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a bad video is recorded, never fatal
            return f"video {path}: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="p4d-decode") as pool:
        futures = [pool.submit(decode, i) for i in clips[: job.batch_size + 1]]
        for k, i in enumerate(clips):
            nxt = k + job.batch_size + 1
            if nxt < len(clips):
                futures.append(pool.submit(decode, clips[nxt]))
            yield i, futures[k].result()
            futures[k] = None  # free decoded frames as soon as they are used


def empty_shard_arrays(store: CacheStore, n: int) -> dict[str, np.ndarray]:
    sp = store.spec
    shapes = {
        "f4d": (len(sp.taps), sp.latent_frames, sp.latent_height, sp.latent_width, sp.latent_dim),
        "depth": (sp.num_frames, sp.height, sp.width, 1), "flow": (sp.num_frames, sp.height, sp.width, 2),
        "motion": (sp.num_frames, sp.height, sp.width, 1), "camray": (sp.num_frames, sp.ray_height, sp.ray_width, 6),
    }
    arrays = {k: np.zeros((n, *shapes[k]), np.float32) for k in ("f4d", *sp.modalities)}
    arrays["frame_index"] = np.zeros((n, sp.num_frames), np.int32)
    arrays["timestamp"] = np.zeros((n, sp.num_frames), np.float32)
    return arrays


def teacher_forward(teacher, lock, frames: np.ndarray, clip_ids: list[int], job: TeacherJob,
                    modalities) -> dict[str, np.ndarray]:
    """The teacher on a batch of clips: frames (B, N, H, W, 3) uint8 -> float32 arrays, batch first.

    ``clip_ids`` name the clips of the batch (unused here; fault-injecting wrappers key on them).
    """
    import torch

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    x = torch.from_numpy(frames).to(job.device)
    autocast = (torch.autocast(device_type=x.device.type, dtype=dtypes[job.dtype]) if job.dtype in dtypes
                else contextlib.nullcontext())
    with lock, torch.inference_mode(), autocast:
        out = teacher(x)
    return {k: out[k].float().cpu().numpy() for k in ("f4d", *modalities)}


def process_shard(url: str, shard_id: int, job: TeacherJob, *, forward: Callable = teacher_forward) -> dict:
    """Decode, run the teacher on and write every clip of one shard; returns its done/failed counts.

    ``forward(teacher, lock, frames, clip_ids, job, modalities)`` runs the teacher on one batch
    (:func:`teacher_forward`; tests wrap it to inject faults).
    """
    store = open_store(url, mode="r+")
    clips = list(store.shard_clips(shard_id))
    plan = clip_frame_plan(store, clips)
    modalities = store.spec.modalities
    arrays = empty_shard_arrays(store, len(clips))
    failures: dict[int, str] = {}
    teacher, lock = get_teacher(job)
    first = clips[0]

    def run_batch(batch: list[tuple[int, object]]) -> None:
        out = forward(teacher, lock, np.stack([c.frames for _, c in batch]), [i for i, _ in batch], job, modalities)
        for b, (i, clip) in enumerate(batch):
            bad = [k for k, v in out.items() if not np.isfinite(v[b]).all()]
            if bad:
                failures[i] = f"non-finite teacher output (NaN/Inf in {', '.join(bad)})"
                continue
            for k, v in out.items():
                arrays[k][i - first] = v[b]
            arrays["frame_index"][i - first] = clip.frame_index
            arrays["timestamp"][i - first] = clip.timestamp

    batch: list[tuple[int, object]] = []
    for i, clip in _decode_ahead(store, clips, plan, job):
        if isinstance(clip, str):
            failures[i] = clip
            continue
        batch.append((i, clip))
        if len(batch) == job.batch_size:
            run_batch(batch)
            batch = []
    if batch:
        run_batch(batch)
    write_shard(store, shard_id, arrays, failures)
    return {"shard": shard_id, "done": len(clips) - len(failures), "failed": len(failures)}
