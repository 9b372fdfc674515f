"""Decode chosen frames of a video in one sequential pass (no seeking) into a :class:`Clip`.

Sequential decoding keeping the wanted indices is 2-10x faster than seeking on short clips with
few keyframes (measured, shared/notes/env.md). Frame index i is the i-th frame the decoder
outputs (presentation order); in an intact file that is the i-th frame written, while in a
stream cut short, frames whose packets are missing (e.g. B-frames) are simply absent.
Timestamps are ``(pts - first_pts) * time_base`` in seconds, where ``first_pts`` is the pts of
the stream's first decoded frame: never derived from an assumed fps, so they are right for
variable-frame-rate video.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from p4d.errors import ConfigError, VideoDecodeError
from p4d.video._container import DEFAULT_MAX_PIXELS, open_video, rotation_of, to_display, video_stream
from p4d.video.probe import probe
from p4d.video.resize import check_size, resize_frames
from p4d.video.sampling import plan_clips

log = logging.getLogger(__name__)


@dataclass
class Clip:
    """N decoded frames of one video.

    frames: (N, H, W, 3) uint8 RGB, display rotation applied, resized if a size was given.
    frame_index: (N,) int32 source frame indices (i-th frame output by the decoder).
    timestamp: (N,) float32 seconds since the stream's first decoded frame.
    path: the video file.
    """

    frames: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray
    path: str


def decode_frames(path: str | Path, frame_index, *, size: tuple[int, int] | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, filter: str = "bilinear") -> Clip:
    """Decode the frames at ``frame_index`` (duplicates allowed, any order) in one sequential pass.

    ``size = (h, w)`` resizes (Pillow ``filter``, non-aspect-preserving) after rotation. VideoDecodeError naming
    the file if the file cannot be decoded or the stream ends before the highest wanted index (a header
    that over-counts, or a truncated file); the message says how many frames were decodable.
    """
    index = _check_index(frame_index)
    decoded, available = _decode_wanted(path, index, size, max_pixels, filter)
    if available is not None:
        raise VideoDecodeError(
            f"video {path}: wanted frame {int(index.max())} but the stream ended after {available} decodable "
            f"frames (fewer frames than the header declares, or a truncated file)"
        )
    return _assemble(path, index, decoded)


def sample_clip(path: str | Path, num_frames: int = 16, policy: str = "uniform", *, clip: int = 0,
                frame_stride: int = 1, size: tuple[int, int] | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Clip:
    """Probe, plan (see :func:`p4d.video.sampling.plan_clips`) and decode clip number ``clip``.

    If the header's frame count was too high (the stream ends early), the clips are re-planned from
    the true decodable count and decoded again, with a warning; a ``clip`` that no longer exists then
    raises VideoDecodeError. A decode error (e.g. a file cut inside a packet) is raised, not re-planned.
    """
    info = probe(path, max_pixels=max_pixels)
    plans = plan_clips(info.num_frames, num_frames=num_frames, policy=policy, frame_stride=frame_stride)
    index = _pick(plans, clip, path, info.num_frames)
    decoded, available = _decode_wanted(path, index, size, max_pixels)
    if available is None:
        return _assemble(path, index, decoded)
    if available == 0:
        raise VideoDecodeError(f"video {path}: no decodable frame (header declares {info.num_frames} frames)")
    log.warning("video %s: header declares %d frames but only %d decode; re-planning clips from %d frames",
                path, info.num_frames, available, available)
    plans = plan_clips(available, num_frames=num_frames, policy=policy, frame_stride=frame_stride)
    index = _pick(plans, clip, path, available)
    return decode_frames(path, index, size=size, max_pixels=max_pixels)


def _pick(plans: list[np.ndarray], clip: int, path, n: int) -> np.ndarray:
    if not 0 <= clip < len(plans):
        raise VideoDecodeError(f"video {path}: clip {clip} does not exist; {n} frames give {len(plans)} clip(s)")
    return plans[clip]


def _check_index(frame_index) -> np.ndarray:
    index = np.asarray(frame_index)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise ConfigError(f"frame_index: expected a non-empty 1-D integer array, got shape {index.shape} {index.dtype}")
    if index.min() < 0:
        raise ConfigError(f"frame_index: expected indices >= 0, got {int(index.min())}")
    return index.astype(np.int64)


def _decode_wanted(path, index: np.ndarray, size, max_pixels: int, filter: str = "bilinear"):
    """({index: (frame, seconds)}, None) if every wanted index decoded, else (partial, decodable count)."""
    target = check_size(size) if size is not None else None
    wanted = set(int(i) for i in index)
    last = max(wanted)
    decoded: dict[int, tuple[np.ndarray, float]] = {}
    count = 0
    with open_video(path) as container:
        stream = video_stream(container, path, max_pixels)
        time_base = stream.time_base
        first_pts = rotation = None
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except av.FFmpegError as exc:
                raise VideoDecodeError(f"video {path}: decoding failed after {count} decodable frames "
                                       f"({type(exc).__name__}: {exc})") from exc
            if frame is None:
                break
            pts = frame.pts
            if pts is None:
                raise VideoDecodeError(f"video {path}: frame {count} has no presentation timestamp")
            if first_pts is None:
                first_pts, rotation = pts, rotation_of(frame)
            if count in wanted:
                rgb = to_display(frame.to_ndarray(format="rgb24"), rotation)
                if target is not None:
                    rgb = resize_frames(rgb[None], target, filter)[0]
                decoded[count] = (rgb, float((pts - first_pts) * (time_base or frame.time_base)))
            count += 1
            if count > last:
                return decoded, None
    return decoded, count


def _assemble(path, index: np.ndarray, decoded: dict) -> Clip:
    shapes = {frame.shape for frame, _ in decoded.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(f"video {path}: the frame size changes within the stream ({sorted(shapes)}); "
                               f"pass size=(h, w) to resize every frame to one size")
    frames = np.stack([decoded[int(i)][0] for i in index])
    timestamp = np.array([decoded[int(i)][1] for i in index], dtype=np.float32)
    return Clip(frames=frames, frame_index=index.astype(np.int32), timestamp=timestamp, path=str(path))
