"""What runs inside a dask worker: its device, the teacher and the store (each resolved or
loaded once per worker process) and one shard.

* Device and dtype are resolved here, from the worker's own environment, never on the driver:
  ``--device auto`` is ``$P4D_DEVICE`` if set, else CUDA when this process sees a GPU (the one
  it is pinned to), else CPU; ``--dtype auto`` is ``$P4D_DTYPE`` if set, else bf16 on CUDA and
  fp32 on CPU. Every shard's result (and its ``runs/shard-{id}.json`` in the store) records the
  device, dtype and GPU name it ran on.
* ``--decoder`` is resolved here too (:func:`p4d.video.gpu_decode.resolve_decoder`): ``gpu`` decodes
  with NVDEC on the worker's GPU and resizes there (a video whose frames cannot be matched to PyAV's
  indices falls back to PyAV, counted in the shard's ``decode_fallbacks``); recorded per shard.
* Decoding runs ahead of the forward in a per-process pool of threads (PyAV releases the GIL),
  ``$P4D_DECODE_THREADS`` or the worker's torch thread share: one task per video of the shard,
  each decoding that video once for all its clips in the shard, at most ``2 x batch`` clips ahead.
* In a dask worker process, glibc malloc keeps freed large buffers for reuse
  (:mod:`p4d.precompute.malloc`), so the encode's per-clip temporaries are not page-faulted in
  again for every clip.
* The forward runs under a per-process lock (the teacher is never run by two threads at once);
  its outputs stay on the device, where F_4D is encoded (:mod:`p4d.precompute.encode`) and the
  maps cast to float16, so only int8 + scales + float16 maps cross to the host.
* A shard task holds its shard's encoded targets (int8 latents, float16 maps) until
  :func:`p4d.cache_schema.write_shard` writes them, so memory is bounded by the shards in flight
  (``threads_per_worker``) x one encoded shard, plus the batches being decoded.

Per-clip faults (undecodable video, NaN/Inf teacher output) are recorded as that clip's failure
reason and the shard goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from p4d.cache_schema import CacheStore, mark_shard_failed, open_store, write_shard
from p4d.cache_schema.contract import HEADS_FILE
from p4d.cache_schema.fidelity import FidelityPolicy
from p4d.cache_schema.store import RUNS_DIR
from p4d.errors import ConfigError, P4DError, VideoDecodeError
from p4d.precompute.malloc import tune_malloc
from p4d.precompute.plan import plan_video
from p4d.precompute.runtime import check_shard_runtime
from p4d.teacher.presets import TeacherPreset
from p4d.video import DecodeStats, decode_clips, decode_size, plan_clips, teacher_input

log = logging.getLogger(__name__)

ENV_DEVICE, ENV_DTYPE, ENV_DECODE_THREADS = "P4D_DEVICE", "P4D_DTYPE", "P4D_DECODE_THREADS"

_TEACHERS: dict[tuple, tuple] = {}
_STORES: dict[tuple[str, str], tuple[CacheStore, np.ndarray]] = {}
_LOCK = threading.Lock()
_DECODE_POOL: list[ThreadPoolExecutor] = []


@dataclass(frozen=True)
class TeacherJob:
    """Which teacher a worker runs, and how (picklable, shipped with every task).

    ``device``/``dtype`` are the flags as given (``auto`` included): each worker resolves them
    from its own environment (:func:`worker_placement`)."""

    preset: TeacherPreset  # with the run's taps
    weights: str | None
    seed: int
    device: str          # auto | cpu | cuda (the worker's pinned GPU) | cuda:i
    dtype: str           # auto | bf16 | fp16 | fp32
    batch_size: int
    max_pixels: int | None
    stand_in_rate: float | None = None  # benchmarks only: p4d.precompute.standin at this many clips/s
    fidelity: FidelityPolicy = FidelityPolicy()  # --min-cosine: the codec self-check's thresholds
    runtime: dict | None = None  # {"device": cpu|cuda, "dtype"} the driver resolved on a worker (p4d.precompute.runtime)
    allow_mixed: bool = False    # --allow-mixed-precision: shards may run on another runtime than ``runtime``
    decoder: str = "auto"        # --decoder auto | cpu | gpu, resolved in each worker (worker_decoder)


@dataclass(frozen=True)
class Placement:
    """Where this worker process runs the teacher: device (``cuda:i`` resolved), dtype, and the
    physical GPU (name, index, UUID when torch reports one; "none" / None on CPU)."""

    device: str
    dtype: str
    gpu: str  # torch.cuda.get_device_name, or "none" on CPU
    gpu_uuid: str | None = None  # torch.cuda.get_device_properties(i).uuid: the physical card

    @property
    def index(self) -> int | None:
        return int(self.device.split(":", 1)[1]) if self.device.startswith("cuda:") else None

    @property
    def device_class(self) -> str:
        """``cpu`` or ``cuda``: what the store's resolved spec compares (:func:`runtime_of`), not the index."""
        return self.device.split(":", 1)[0]

    def to_dict(self) -> dict:
        return {"device": self.device, "dtype": self.dtype, "gpu": self.gpu, "gpu_index": self.index,
                "gpu_uuid": self.gpu_uuid}


def resolve_device(device: str, env=None) -> str:
    """``auto`` -> ``$P4D_DEVICE`` if set, else ``cuda`` when this process sees a GPU, else ``cpu``."""
    import torch

    env = os.environ if env is None else env
    if device == "auto":
        device = env.get(ENV_DEVICE) or ("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"--device / ${ENV_DEVICE} {device!r}: expected auto, cpu, cuda or cuda:INDEX")
    return device


def resolve_dtype(dtype: str, device: str, env=None) -> str:
    """``auto`` -> ``$P4D_DTYPE`` if set, else bf16 on CUDA and fp32 on CPU."""
    env = os.environ if env is None else env
    if dtype == "auto":
        dtype = env.get(ENV_DTYPE) or ("bf16" if device.startswith("cuda") else "fp32")
    if dtype not in ("bf16", "fp16", "fp32"):
        raise ConfigError(f"--dtype / ${ENV_DTYPE} {dtype!r}: expected auto, bf16, fp16 or fp32")
    return dtype


def worker_placement(job: TeacherJob) -> Placement:
    """The device, dtype and GPU this process runs ``job`` on, from its own environment.

    ``cuda`` without an index is the GPU the local cluster's :class:`~p4d.precompute.cluster.PinDevice`
    gave this worker (read from the worker's plugin, so any task thread gets it), else this thread's
    current device (a worker of an external cluster, or no dask)."""
    import torch

    from p4d.precompute.cluster import pinned_gpu

    device = resolve_device(job.device)
    dtype = resolve_dtype(job.dtype, device)
    if device.startswith("cuda"):
        index = torch.device(device).index
        if index is None:
            index = pinned_gpu()
        index = torch.cuda.current_device() if index is None else index
        return Placement(f"cuda:{index}", dtype, torch.cuda.get_device_name(index), _gpu_uuid(index))
    return Placement("cpu", dtype, "none")


def _gpu_uuid(index: int) -> str | None:
    import torch

    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return None if uuid is None else str(uuid)


def worker_decoder(job: TeacherJob, place: Placement) -> str:
    """``cpu`` or ``gpu``: ``job.decoder`` as this worker can run it (ConfigError for ``gpu`` where it cannot)."""
    from p4d.video.gpu_decode import resolve_decoder

    return resolve_decoder(job.decoder, place.device)


def on_device(place: Placement):
    """Context in which this thread's CUDA current device is ``place``'s GPU (a no-op on CPU):
    the current device is per host thread, so each task sets it before building or running the
    teacher (ops that allocate on plain ``cuda`` land on the worker's GPU, not cuda:0)."""
    import torch

    return torch.cuda.device(place.index) if place.index is not None else contextlib.nullcontext()


def get_teacher(job: TeacherJob):
    """(teacher, forward lock, placement) for this process, built on first use and kept for later tasks."""
    place = worker_placement(job)
    key = (job.preset, job.weights, job.seed, place.device, job.stand_in_rate)
    if _in_dask_worker():
        tune_malloc()  # once per worker process: the encode's large buffers reused, not page-faulted in per clip
    with _LOCK:
        if key not in _TEACHERS:
            from p4d.teacher import build_teacher

            with on_device(place):
                if job.stand_in_rate:
                    from p4d.precompute.standin import StandInTeacher

                    teacher = StandInTeacher(job.preset, job.stand_in_rate, place.device)
                else:
                    teacher = build_teacher(job.preset, weights=job.weights, device=place.device, seed=job.seed)
            _TEACHERS[key] = (teacher, threading.Lock())
            log.info("loaded teacher %s (taps %s) on %s (%s, %s)", job.preset.name, list(job.preset.taps),
                     place.device, place.gpu, place.dtype)
        return (*_TEACHERS[key], place)


def _in_dask_worker() -> bool:
    """Whether this thread runs a dask task (malloc is tuned there only: :mod:`p4d.precompute.malloc`)."""
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def teacher_identity(job: TeacherJob) -> dict:
    """The loaded teacher's weights hash (computed in the worker: the driver never loads it) and
    where this worker runs it."""
    from p4d.teacher import weights_hash

    teacher, _, place = get_teacher(job)
    return {"weights_hash": weights_hash(teacher.state_dict()), **place.to_dict(),
            "decoder": worker_decoder(job, place)}


def save_heads_to_store(url: str, job: TeacherJob) -> int:
    """Write the teacher's D_m heads into the store as ``heads.safetensors``; returns its size."""
    from p4d.heads import heads_to_bytes

    teacher, _, _ = get_teacher(job)
    if teacher.heads is None:  # the benchmark's stand-in has no heads
        return 0
    data = heads_to_bytes(teacher.heads)
    open_store(url, mode="r+").write_side_file(HEADS_FILE, data)
    return len(data)


def store_identity(store: CacheStore) -> str:
    """What makes two handles on a store interchangeable: its url, spec and planned videos (hashed)."""
    text = json.dumps([store.url, store.spec.to_dict(), [v.to_dict() for v in store.videos]], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def worker_store(url: str, identity: str | None = None) -> tuple[CacheStore, np.ndarray]:
    """(store opened r+, first clip of each video) for this process: opened (and ``videos.json``
    parsed) once per store identity, not once per shard. A store replaced under the same url (its
    identity changed) is reopened."""
    with _LOCK:
        hit = _STORES.get((url, identity or ""))
    if hit is not None:
        return hit
    store = open_store(url, mode="r+")
    if identity is not None and store_identity(store) != identity:
        raise P4DError(f"store {url} changed since this job planned it (another plan or spec); rerun the job")
    first_clip = np.cumsum([0] + [v.num_clips for v in store.videos])
    with _LOCK:
        _STORES[(url, identity or "")] = (store, first_clip)
    return store, first_clip


def clip_frame_plan(store: CacheStore, clips: Sequence[int],
                    first_clip: np.ndarray | None = None) -> dict[int, tuple[int, np.ndarray | str]]:
    """(video row, source frame indices) of each clip in ``clips``, from the stored plan and sampling
    policy; for the one clip of a video unusable when planned, the video is planned again now (it
    may have been fixed since) and its indices, or the reason it is still unusable, are given."""
    s = store.spec.sampling
    if first_clip is None:
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


def decode_pool() -> ThreadPoolExecutor:
    """This process's decode threads: ``$P4D_DECODE_THREADS``, else its torch thread share (set to
    the worker's share of the cores by the local cluster's plugin)."""
    import torch

    with _LOCK:
        if not _DECODE_POOL:
            n = int(os.environ.get(ENV_DECODE_THREADS) or max(1, torch.get_num_threads()))
            _DECODE_POOL.append(ThreadPoolExecutor(max_workers=n, thread_name_prefix="p4d-decode"))
            log.info("decode pool: %d threads", n)
        return _DECODE_POOL[0]


def _decode_video(path: str, clips: list[int], plan, size, filter_, max_pixels,
                  gpu: int | None = None) -> tuple[dict, DecodeStats]:
    """{clip: Clip or failure reason} for the clips of one video (decoded once for all of them);
    ``gpu``: decode on that GPU (frames stay there), PyAV when the video cannot be matched to its indices."""
    stats = DecodeStats()
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    reasons = {i: plan[i][1] for i in clips if isinstance(plan[i][1], str)}  # still unusable: the planner's reason
    if reasons:
        return reasons, stats
    try:
        out = None
        if gpu is not None:
            out = _decode_video_gpu(path, [plan[i][1] for i in clips], size, filter_, stats, gpu, kwargs)
        if out is None:
            out = decode_clips(path, [plan[i][1] for i in clips], size=size, filter=filter_, stats=stats, **kwargs)
        return {i: (str(c) if isinstance(c, VideoDecodeError) else c) for i, c in zip(clips, out)}, stats
    except P4DError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bad video is recorded, never fatal
        reason = f"video {path}: {type(exc).__name__}: {exc}"
    return {i: reason for i in clips}, stats


def _decode_video_gpu(path: str, indices: list, size, filter_, stats: DecodeStats, gpu: int, kwargs: dict):
    """The clips decoded on GPU ``gpu``, or None (counted in ``stats.fallbacks``) when PyAV must do it:
    frames not matching PyAV's indices, or any NVDEC/driver error (the GPU check counts these)."""
    import torch

    from p4d.video.gpu_decode import GpuDecodeUnsupported, decode_clips_gpu

    try:
        with torch.cuda.device(gpu):  # this decode thread's current device: the worker's GPU
            return decode_clips_gpu(path, indices, size=size, filter=filter_, stats=stats, gpu_id=gpu, **kwargs)
    except GpuDecodeUnsupported as exc:
        log.warning("%s; decoding it with PyAV", exc)
    except VideoDecodeError:
        raise  # the file itself is bad: the same reason PyAV would give
    except Exception as exc:  # noqa: BLE001 - an NVDEC/driver error costs this video the GPU, never its clips
        log.warning("video %s: GPU decode failed (%s: %s); decoding it with PyAV", path, type(exc).__name__, exc)
    stats.fallbacks += 1
    return None


def _decode_ahead(store: CacheStore, clips: list[int], plan, job: TeacherJob,
                  totals: DecodeStats, gpu: int | None = None) -> Iterator[tuple[int, object]]:
    """Yield (clip, Clip or failure reason) in clip order; one pool task per video of the shard,
    submitted while fewer than ``2 x batch`` clips wait decoded or decoding (on GPU ``gpu`` if given)."""
    size, filter_ = decode_size(store.spec.spatial)
    groups: list[list[int]] = []
    for i in clips:
        if groups and plan[groups[-1][0]][0] == plan[i][0]:
            groups[-1].append(i)
        else:
            groups.append([i])
    pool, ahead = decode_pool(), max(2 * job.batch_size, 1)
    pending: list[tuple[list[int], Future]] = []
    nxt = 0

    def fill(outstanding: int) -> None:
        nonlocal nxt
        while nxt < len(groups) and (outstanding < ahead or not pending):
            g = groups[nxt]
            pending.append((g, pool.submit(_decode_video, store.videos[plan[g[0]][0]].path, g, plan, size,
                                           filter_, job.max_pixels, gpu)))
            outstanding += len(g)
            nxt += 1

    fill(0)
    while pending:
        group, fut = pending.pop(0)
        fill(sum(len(g) for g, _ in pending))
        result, stats = fut.result()
        for name in ("frames_decoded", "seeks", "decode_cpu_s", "resize_cpu_s", "fallbacks"):
            setattr(totals, name, getattr(totals, name) + getattr(stats, name))
        for i in group:
            yield i, result.pop(i)


def empty_shard_arrays(store: CacheStore, n: int) -> dict[str, np.ndarray]:
    """float32 zeros for every target of ``n`` clips, as write_shard takes them (tools and tests)."""
    sp = store.spec
    arrays = {"f4d": np.zeros((n, *sp.latent_shape), np.float32)}
    arrays.update({m: np.zeros((n, *sp.map_shape(m)), np.float32) for m in sp.modalities})
    arrays["frame_index"] = np.zeros((n, sp.num_frames), np.int32)
    arrays["timestamp"] = np.zeros((n, sp.num_frames), np.float32)
    return arrays


def teacher_forward(teacher, lock, frames, clip_ids: list[int], job: TeacherJob, modalities) -> dict:
    """The teacher on a batch of clips: its normalised input (B, 3, N, H, W) float32 from
    :func:`p4d.video.teacher_input` (or uint8 frames (B, N, H, W, 3)) -> tensors on the teacher's
    device, batch first (``f4d`` (B, taps, N', h', w', c') and each map).

    ``clip_ids`` name the clips of the batch (unused here; fault-injecting wrappers key on them).
    """
    import torch

    place = worker_placement(job)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    x = torch.as_tensor(frames).to(place.device, non_blocking=True)
    autocast = (torch.autocast(device_type=x.device.type, dtype=dtypes[place.dtype]) if place.dtype in dtypes
                else contextlib.nullcontext())
    with on_device(place), lock, torch.no_grad(), autocast:  # no_grad: fault-injecting wrappers edit outputs
        out = teacher(x)
    return {k: out[k] for k in ("f4d", *modalities)}


def _frames_on_device(frames: list, device: str):
    """(B, N, H, W, 3) uint8 on ``device`` from B clips' frames: numpy (PyAV) stacked on the host and
    copied once, or, when the GPU decoder made any of them (a batch may mix GPU-decoded clips with a
    video it handed back to PyAV), each taken to the device and stacked there."""
    import torch

    if any(isinstance(f, torch.Tensor) for f in frames):
        return torch.stack([torch.as_tensor(f).to(device) for f in frames])
    return torch.from_numpy(np.stack([np.asarray(f) for f in frames])).to(device)  # uint8 to the device once


@dataclass
class _ShardBuffers:
    """One shard's encoded targets on the host: codec parts of F_4D (with the self-check's levels,
    figures and bfloat16 fallback rows), float16 maps."""

    n: int
    arrays: dict = field(default_factory=dict)
    fidelity: list = field(default_factory=list)

    def put(self, key: str, row: int, value: np.ndarray) -> None:
        if key not in self.arrays:
            self.arrays[key] = np.zeros((self.n, *value.shape[1:]), value.dtype)
        self.arrays[key][row:row + len(value)] = value

    def encoded_f4d(self) -> dict:
        out = {k.split("/", 1)[1]: v for k, v in self.arrays.items() if k.startswith("f4d/")}
        stats = dict(self.fidelity)
        return {**out, "fidelity": [stats.get(i) for i in range(self.n)]}


def process_shard(url: str, shard_id: int, job: TeacherJob, *, forward: Callable = teacher_forward,
                  identity: str | None = None) -> dict:
    """Decode, run the teacher on and write every clip of one shard; returns its done/failed counts,
    where it ran (device, dtype, GPU) and the CPU seconds of its stages.

    ``forward(teacher, lock, frames, clip_ids, job, modalities)`` runs the teacher on one batch
    (:func:`teacher_forward`; tests and the benchmark's stand-in teacher replace it).
    ``identity``: the driver's :func:`store_identity`, so the worker's cached handle is checked.
    A worker resolving another runtime than ``job.runtime`` refuses the shard before computing
    anything (:mod:`p4d.precompute.runtime`). Maps (and float16-zstd latents) are cast to their
    stored dtype, then values that overflowed it are clamped to its largest finite value and
    counted per clip and target in the run record (``clamped``): a done clip never holds inf.
    """
    place = worker_placement(job)
    check_shard_runtime(url, shard_id, job.runtime, place.to_dict(), allow_mixed=job.allow_mixed)  # before any work
    with on_device(place):  # this task thread's CUDA device: the worker's GPU
        return _process_shard(url, shard_id, job, forward, identity)


def _process_shard(url: str, shard_id: int, job: TeacherJob, forward: Callable, identity: str | None) -> dict:
    import torch

    from p4d.precompute.encode import all_finite, cast_clamped, encode_checked

    store, first_clip = worker_store(url, identity)
    clips = list(store.shard_clips(shard_id))
    plan = clip_frame_plan(store, clips, first_clip)
    modalities = store.spec.modalities
    codec, map_dtype = store.spec.latent_codec, store.spec.map_dtype
    quantised = store.spec.map_codec == "quant16"
    teacher, lock, place = get_teacher(job)
    decoder = worker_decoder(job, place)
    first = clips[0]
    failures: dict[int, str] = {}
    clamped: dict[int, dict[str, int]] = {}  # clip -> target -> values clamped to the stored dtype's range
    buf = _ShardBuffers(len(clips))
    frame_index = np.full((len(clips), store.spec.num_frames), -1, np.int32)
    timestamp = np.full((len(clips), store.spec.num_frames), np.nan, np.float32)
    cpu = {"forward_wall_s": 0.0, "input_cpu_s": 0.0, "encode_cpu_s": 0.0, "write_cpu_s": 0.0}
    decode_stats = DecodeStats()

    def run_batch(batch: list[tuple[int, object]]) -> None:
        t, c = time.perf_counter(), time.thread_time()
        frames = _frames_on_device([c.frames for _, c in batch], place.device)
        x = teacher_input(frames, store.spec.spatial, store.spec.normalisation)
        cpu["input_cpu_s"] += time.thread_time() - c  # host CPU of the teacher-input tensor (device work on a GPU)
        out = forward(teacher, lock, x, [i for i, _ in batch], job, modalities)
        cpu["forward_wall_s"] += time.perf_counter() - t
        t = time.thread_time()
        with torch.no_grad():
            finite = {k: all_finite(v).cpu().tolist() for k, v in out.items()}
            good = [b for b in range(len(batch)) if all(finite[k][b] for k in out)]
            for b, (i, _) in enumerate(batch):
                bad = [k for k in out if not finite[k][b]]
                if bad:
                    kinds = [f"{'NaN' if bool(torch.isnan(out[k][b]).any()) else 'Inf'} in {k}" for k in bad]
                    failures[i] = f"non-finite teacher output ({', '.join(kinds)})"
            if good:
                rows = torch.tensor(good, device=out["f4d"].device)
                pick = (lambda t: t) if len(good) == len(batch) else (lambda t: t.index_select(0, rows))  # no copy
                f4d, counts = pick(out["f4d"]).float(), {}
                if codec == "float16-zstd":  # stored as float16: clamped like the maps
                    f4d16, counts["f4d"] = cast_clamped(f4d, torch.float16)
                    f4d = f4d16.float()
                parts = encode_checked(codec, f4d, job.fidelity)
                figures = parts.pop("fidelity")
                maps = {}
                for m in modalities:  # cast, then check: what overflowed the stored dtype is clamped and counted
                    if quantised:  # quant16 codes are made (and checked) from the float32 maps by write_shard
                        maps[m] = pick(out[m]).float().cpu().numpy()
                        continue
                    value, counts[m] = cast_clamped(pick(out[m]), getattr(torch, map_dtype))
                    maps[m] = value.cpu().numpy()
                for name, n in counts.items():
                    for j, c in enumerate(n.tolist()):
                        if c:
                            clamped.setdefault(batch[good[j]][0], {})[name] = int(c)
                for j, b in enumerate(good):
                    i, clip = batch[b]
                    for name, value in parts.items():
                        buf.put(f"f4d/{name}", i - first, value[j:j + 1])
                    buf.fidelity.append((i - first, figures[j]))
                    for m in modalities:
                        buf.put(m, i - first, maps[m][j:j + 1])
                    frame_index[i - first] = clip.frame_index
                    timestamp[i - first] = clip.timestamp
        cpu["encode_cpu_s"] += time.thread_time() - t

    batch: list[tuple[int, object]] = []
    gpu = (place.index if place.index is not None else 0) if decoder == "gpu" else None
    for i, clip in _decode_ahead(store, clips, plan, job, decode_stats, gpu):
        if isinstance(clip, str):
            failures[i] = clip
            continue
        batch.append((i, clip))
        if len(batch) == job.batch_size:
            run_batch(batch)
            batch = []
    if batch:
        run_batch(batch)
    t = time.thread_time()
    if len(failures) == len(clips):
        mark_shard_failed(store, shard_id, failures)
    else:
        arrays = {"f4d": buf.encoded_f4d(),
                  **{m: buf.arrays[m] for m in modalities}, "frame_index": frame_index, "timestamp": timestamp}
        write_shard(store, shard_id, arrays, failures, fidelity=job.fidelity)
    run = {"shard": shard_id, **place.to_dict(), "decoder": decoder, "decode_fallbacks": decode_stats.fallbacks,
           "host": socket.gethostname(), "pid": os.getpid(),
           "min_cosine": [job.fidelity.min_mean_cosine, job.fidelity.min_worst_cosine],
           "clamped": {str(i): c for i, c in sorted(clamped.items()) if i not in failures},
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.write_side_file(f"{RUNS_DIR}/shard-{int(shard_id)}.json", json.dumps(run).encode())
    cpu["write_cpu_s"] = time.thread_time() - t
    return {**run, "done": len(clips) - len(failures), "failed": len(failures), "clips": len(clips),
            "frames_decoded": decode_stats.frames_decoded, "seeks": decode_stats.seeks,
            "decode_cpu_s": decode_stats.decode_cpu_s, "resize_cpu_s": decode_stats.resize_cpu_s, **cpu}
