"""Plan a cache: find the videos, probe them, plan their clips, create the empty store.

The plan is deterministic (sorted paths, clip indices from the sampling policy) and is stored
in the cache (``videos.json`` + ``clips/video``), so precompute, train and eval all find the
same clips. Every listed path is planned: one that cannot be used (missing, a dangling link, a
folder, not a video, a still image, truncated below N frames) is kept with one clip and the
reason, and precompute records that clip as failed with it, so a bad file is recorded, never
fatal and never silently dropped.

Probing runs in batches: on the job's dask cluster when there is one (``p4d precompute``), else
in this process (``p4d cache init``). Each batch's results are journaled on the driver as it
completes (:mod:`p4d.precompute.plan_journal`), so a killed plan resumes with the videos not yet
probed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from p4d.cache_schema import CacheSpec, CacheStore, VideoEntry, create_store
from p4d.cache_schema.contract import file_fingerprint
from p4d.cache_schema.labels import RANDOM_WEIGHTS_KEY
from p4d.cache_schema.map_codecs import MAP_CODECS
from p4d.errors import ConfigError, VideoDecodeError
from p4d.precompute.plan_journal import FileKey, PlanJournal, file_key, journal_path
from p4d.precompute.sources import list_videos
from p4d.teacher.presets import TeacherPreset, get_preset
from p4d.video import TEACHER_INPUTS, frame_shortfall, plan_clips, probe
from p4d.video.preprocess import DIRECT_TEACHER_RESIZE, RELEASE_TEACHER_RESIZE

log = logging.getLogger(__name__)

def plan_video(path: str, *, num_frames: int, policy: str, frame_stride: int,
               max_pixels: int | None = None) -> VideoEntry:
    """Probe one video and count its clips. An unusable video (unreadable, not a video, or a
    truncated one with fewer than N frames left) gets one clip and the reason in ``note``;
    precompute records that clip failed with it. A truncated video with at least N frames is
    planned from the frames present, with a warning in ``note``."""
    size, digest = file_fingerprint(path)
    try:
        info = probe(path) if max_pixels is None else probe(path, max_pixels=max_pixels)
    except VideoDecodeError as exc:
        log.warning("planning %s: %s (its clip will be recorded as failed)", path, exc)
        return _unusable(path, size, digest, str(exc))
    note = frame_shortfall(info)
    if note and info.num_frames < num_frames:
        return _unusable(path, size, digest, f"video {path}: {note}, fewer than the N={num_frames} frames of a clip")
    if note:
        log.warning("planning %s: %s; planning its clips from those", path, note)
    clips = plan_clips(info.num_frames, num_frames=num_frames, policy=policy, frame_stride=frame_stride)
    return VideoEntry(path=path, size_bytes=size, content_hash=digest, fps=float(info.fps),
                      duration=float(info.duration), num_frames=int(info.num_frames), width=int(info.width),
                      height=int(info.height), rotation=int(info.rotation), num_clips=len(clips), note=note)


def _unusable(path: str, size: int, digest: str, reason: str) -> VideoEntry:
    return VideoEntry(path=path, size_bytes=size, content_hash=digest, fps=0.0, duration=0.0, num_frames=0,
                      width=0, height=0, rotation=0, num_clips=1, note=reason)


def resolve_teacher(name: str | TeacherPreset, taps: Sequence[int] | None = None) -> TeacherPreset:
    """The preset ``name`` (flag --teacher), with its tapped layers replaced by ``taps`` (flag --taps)."""
    preset = get_preset(name)
    if taps is None or tuple(taps) == preset.taps:
        return preset
    try:
        return dataclasses.replace(preset, taps=tuple(taps))
    except ConfigError as exc:
        raise ConfigError(f"--taps {','.join(map(str, taps))}: {exc}") from None


def teacher_spatial(teacher_input: str, img_size: int, student_size: int) -> dict:
    """The cache's ``spatial`` attrs for a teacher-input transform (:mod:`p4d.video.preprocess`):
    ``release`` (frames squashed to the student's S×S, Pillow bicubic, then torch bilinear antialiased
    to the teacher size) or ``direct`` (decoded straight to the teacher size, Pillow bilinear)."""
    if teacher_input not in TEACHER_INPUTS:
        raise ConfigError(f"--teacher-input {teacher_input!r}: expected one of {', '.join(TEACHER_INPUTS)}")
    spatial = {"input_size": [img_size, img_size], "rotation": "applied", "teacher_input": teacher_input}
    if teacher_input == "release":
        if not isinstance(student_size, int) or student_size < 1:
            raise ConfigError(f"--student-size {student_size!r}: expected a positive int (NVILA-Lite: 448)")
        spatial.update(resize=RELEASE_TEACHER_RESIZE, student_size=student_size, student_resize="bicubic")
    else:
        spatial["resize"] = DIRECT_TEACHER_RESIZE
    return spatial


def check_num_frames(preset: TeacherPreset, num_frames: int) -> None:
    """Refuse an N the teacher cannot take (flag --num-frames)."""
    if num_frames != preset.num_frames:
        raise ConfigError(
            f"--num-frames {num_frames}: the {preset.name!r} teacher takes exactly {preset.num_frames} frames per clip"
        )


def build_spec(*, teacher: str | TeacherPreset, num_frames: int, policy: str, frame_stride: int, modalities: Sequence[str],
               codec: str | None, clips_per_shard: int, weights_hash: str = "", teacher_input: str = "release",
               student_size: int = 448, random_weights: bool = False, map_codec: str | None = None) -> CacheSpec:
    """The CacheSpec for a teacher preset, a sampling policy and a teacher-input transform
    (``random_weights``: the teacher was randomly initialised; readers label its maps RANDOM TEACHER)."""
    preset = get_preset(teacher)
    check_num_frames(preset, num_frames)
    n_lat, h_lat, w_lat, c_lat = preset.latent_grid
    ray_h, ray_w = preset.ray_grid
    kwargs = {} if codec is None else {"latent_codec": codec}
    if map_codec is not None:
        if map_codec not in MAP_CODECS:
            raise ConfigError(f"--map-codec {map_codec!r}: expected one of {', '.join(MAP_CODECS)} "
                              "(quant16: int16 within a stated error bound per map; float16: the layout before map codecs)")
        kwargs["map_codec"] = map_codec
    return CacheSpec(
        modalities=tuple(modalities), taps=tuple(preset.taps), num_frames=num_frames,
        height=preset.img_size, width=preset.img_size, latent_frames=n_lat, latent_height=h_lat,
        latent_width=w_lat, latent_dim=c_lat, ray_height=ray_h, ray_width=ray_w,
        clips_per_shard=clips_per_shard,
        teacher={"name": "l4p", "preset": preset.name, "config": preset.to_dict(), "weights_hash": weights_hash,
                 **({RANDOM_WEIGHTS_KEY: True} if random_weights else {})},
        sampling={"num_frames": num_frames, "policy": policy, "frame_stride": frame_stride},
        spatial=teacher_spatial(teacher_input, preset.img_size, student_size),
        normalisation={"mean": list(preset.mean), "std": list(preset.std), "range": "rgb in [0, 1]"},
        **kwargs,
    )


def probe_batch(paths: Sequence[str], sampling: dict, max_pixels: int | None,
                probe_fn: Callable = plan_video) -> list[tuple[str, FileKey | None, VideoEntry]]:
    """(path, file key before probing, entry) of each path: one planning task (a dask task on the cluster)."""
    out = []
    for p in paths:
        key = file_key(p)
        out.append((p, key, probe_fn(p, num_frames=sampling["num_frames"], policy=sampling["policy"],
                                     frame_stride=sampling["frame_stride"], max_pixels=max_pixels)))
    return out


def _crashed(path: str, exc: BaseException) -> tuple[str, None, VideoEntry]:
    """The entry of a video whose probe task kept failing (e.g. it crashed its worker): unusable, with why."""
    size, digest = file_fingerprint(path)
    return path, None, _unusable(path, size, digest, f"video {path}: probing it failed ({type(exc).__name__}: {exc})")


def probe_videos(paths: Sequence[str], sampling: dict, *, max_pixels: int | None = None,
                 journal: PlanJournal | None = None, client=None, batch: int | None = None,
                 probe_fn: Callable = plan_video, retries: int = 2, progress: bool = False) -> list[VideoEntry]:
    """The :class:`VideoEntry` of every path, in order: journaled ones reused, the rest probed in
    batches of ``batch`` paths (default: ~4 batches per cluster thread, at most 64 paths each), as
    dask tasks on ``client`` or here, each batch journaled as it completes. A batch task that keeps
    failing is split into single videos; a single video whose probe keeps failing is planned
    unusable with the reason."""
    known = journal.reusable(paths) if journal is not None else {}
    todo = [p for p in paths if p not in known]
    bar = tqdm(total=len(paths), initial=len(known), desc="probing videos", unit="video", disable=not progress)

    def record(results) -> None:
        if journal is not None:
            journal.append(results)
        known.update((p, e) for p, _, e in results)
        bar.update(len(results))

    threads = sum(client.nthreads().values()) if client is not None else 1
    batch = batch or max(1, min(64, math.ceil(len(todo) / (4 * max(threads, 1)))))
    chunks = [todo[i:i + batch] for i in range(0, len(todo), batch)]
    try:
        if client is None:
            for chunk in chunks:
                record(probe_batch(chunk, sampling, max_pixels, probe_fn))
        else:
            _probe_on_cluster(client, chunks, sampling, max_pixels, probe_fn, retries, record)
    finally:
        bar.close()
    return [known[p] for p in paths]


def _probe_on_cluster(client, chunks: list[list[str]], sampling: dict, max_pixels: int | None, probe_fn: Callable,
                      retries: int, record: Callable) -> None:
    from distributed import as_completed

    def submit(chunk):
        return client.submit(probe_batch, chunk, sampling, max_pixels, probe_fn, retries=retries, pure=False)

    futures = {submit(c): c for c in chunks}
    done = as_completed(list(futures))
    try:
        for fut in done:
            chunk = futures.pop(fut)
            try:
                results = fut.result()
            except Exception as exc:  # noqa: BLE001 - the task (or its worker) kept failing
                if len(chunk) == 1:
                    log.error("planning %s: %s", chunk[0], exc)
                    results = [_crashed(chunk[0], exc)]
                else:  # find the video that fails: one task per video
                    for p in chunk:
                        f = submit([p])
                        futures[f] = [p]
                        done.add(f)
                    continue
            record(results)
    except BaseException:  # Ctrl-C (or a journal that cannot be written): stop the probes still queued
        client.cancel(list(futures))
        raise


def plan_store(videos: str | Path, store: str, spec: CacheSpec, *, overwrite: bool = False,
               video_root: str | None = None, max_pixels: int | None = None, progress: bool = False,
               join: bool = False, client=None, batch: int | None = None, probe_fn: Callable = plan_video,
               retries: int = 2) -> CacheStore:
    """List, probe (on ``client``'s cluster if given, journaled: a killed plan resumes) and plan every
    video under ``spec``'s sampling policy, then create the store (all pending) and drop the journal;
    ``overwrite``/``join``: what to do when it exists (see :func:`create_store`)."""
    s = spec.sampling
    paths = list_videos(videos, video_root=video_root)
    sampling = {k: s[k] for k in ("num_frames", "policy", "frame_stride")}
    journal = PlanJournal(journal_path(store), {"sampling": sampling, "max_pixels": max_pixels})
    entries = probe_videos(paths, sampling, max_pixels=max_pixels, journal=journal, client=client, batch=batch,
                           probe_fn=probe_fn, retries=retries, progress=progress)
    created = create_store(store, spec, entries, overwrite=overwrite, join=join)
    journal.remove()
    return created


def plan_cache(videos: str | Path, store: str, *, teacher: str | TeacherPreset = "l4p", num_frames: int = 16,
               policy: str = "uniform", frame_stride: int = 1, modalities: Sequence[str] = ("depth", "flow", "motion", "camray"),
               codec: str | None = None, map_codec: str | None = None, clips_per_shard: int = 16, overwrite: bool = False,
               weights_hash: str = "", video_root: str | None = None, max_pixels: int | None = None,
               progress: bool = False, teacher_input: str = "release", student_size: int = 448) -> CacheStore:
    """:func:`build_spec` + :func:`plan_store`: the spec of a teacher preset and policy, then the empty store."""
    spec = build_spec(teacher=teacher, num_frames=num_frames, policy=policy, frame_stride=frame_stride,
                      modalities=modalities, codec=codec, map_codec=map_codec, clips_per_shard=clips_per_shard, weights_hash=weights_hash,
                      teacher_input=teacher_input, student_size=student_size)
    return plan_store(videos, store, spec, overwrite=overwrite, video_root=video_root, max_pixels=max_pixels,
                      progress=progress)
