"""Plan a cache: find the videos, probe them, plan their clips, create the empty store.

The plan is deterministic (sorted paths, clip indices from the sampling policy) and is stored
in the cache (``videos.json`` + ``clips/video``), so precompute, train and eval all find the
same clips. Every listed path is planned: one that cannot be used (missing, a dangling link, a
folder, not a video, a still image, truncated below N frames) is kept with one clip and the
reason, and precompute records that clip as failed with it, so a bad file is recorded, never
fatal and never silently dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from p4d.cache_schema import CacheSpec, CacheStore, VideoEntry, create_store
from p4d.errors import ConfigError, VideoDecodeError
from p4d.precompute.sources import list_videos
from p4d.teacher.presets import TeacherPreset, get_preset
from p4d.video import frame_shortfall, plan_clips, probe

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 1 << 20  # hash the size and the first MiB: cheap, and catches a replaced file


def file_fingerprint(path: str) -> tuple[int, str]:
    """(size in bytes, sha256 of the size and the first MiB, 16 hex digits); (0, '') if unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(FINGERPRINT_BYTES)
        size = Path(path).stat().st_size
    except OSError:
        return 0, ""
    h = hashlib.sha256(str(size).encode() + b"\0" + head)
    return size, h.hexdigest()[:16]


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


def build_spec(*, teacher: str | TeacherPreset, num_frames: int, policy: str, frame_stride: int, modalities: Sequence[str],
               codec: str | None, clips_per_shard: int, weights_hash: str = "") -> CacheSpec:
    """The CacheSpec for a teacher preset and a sampling policy."""
    preset = get_preset(teacher)
    if num_frames != preset.num_frames:
        raise ConfigError(
            f"--frames {num_frames}: the {preset.name!r} teacher takes exactly {preset.num_frames} frames per clip"
        )
    n_lat, h_lat, w_lat, c_lat = preset.latent_grid
    ray_h, ray_w = preset.ray_grid
    kwargs = {} if codec is None else {"latent_codec": codec}
    return CacheSpec(
        modalities=tuple(modalities), taps=tuple(preset.taps), num_frames=num_frames,
        height=preset.img_size, width=preset.img_size, latent_frames=n_lat, latent_height=h_lat,
        latent_width=w_lat, latent_dim=c_lat, ray_height=ray_h, ray_width=ray_w,
        clips_per_shard=clips_per_shard,
        teacher={"name": "l4p", "preset": preset.name, "config": preset.to_dict(), "weights_hash": weights_hash},
        sampling={"num_frames": num_frames, "policy": policy, "frame_stride": frame_stride},
        spatial={"input_size": [preset.img_size, preset.img_size], "resize": "bilinear, non-aspect-preserving",
                 "rotation": "applied"},
        normalisation={"mean": list(preset.mean), "std": list(preset.std), "range": "rgb in [0, 1]"},
        **kwargs,
    )


def plan_store(videos: str | Path, store: str, spec: CacheSpec, *, overwrite: bool = False,
               video_root: str | None = None, max_pixels: int | None = None, progress: bool = False,
               join: bool = False) -> CacheStore:
    """List, probe and plan every video under ``spec``'s sampling policy, then create the store (all
    pending); ``overwrite``/``join``: what to do when it exists (see :func:`create_store`)."""
    s = spec.sampling
    paths = list_videos(videos, video_root=video_root)
    entries = [plan_video(p, num_frames=s["num_frames"], policy=s["policy"], frame_stride=s["frame_stride"],
                          max_pixels=max_pixels)
               for p in tqdm(paths, desc="probing videos", unit="video", disable=not progress)]
    return create_store(store, spec, entries, overwrite=overwrite, join=join)


def plan_cache(videos: str | Path, store: str, *, teacher: str | TeacherPreset = "l4p", num_frames: int = 16,
               policy: str = "uniform", frame_stride: int = 1, modalities: Sequence[str] = ("depth", "flow", "motion", "camray"),
               codec: str | None = None, clips_per_shard: int = 16, overwrite: bool = False,
               weights_hash: str = "", video_root: str | None = None, max_pixels: int | None = None,
               progress: bool = False) -> CacheStore:
    """:func:`build_spec` + :func:`plan_store`: the spec of a teacher preset and policy, then the empty store."""
    spec = build_spec(teacher=teacher, num_frames=num_frames, policy=policy, frame_stride=frame_stride,
                      modalities=modalities, codec=codec, clips_per_shard=clips_per_shard, weights_hash=weights_hash)
    return plan_store(videos, store, spec, overwrite=overwrite, video_root=video_root, max_pixels=max_pixels,
                      progress=progress)
