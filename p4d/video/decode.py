"""Decode chosen frames of a video into :class:`Clip` s: every wanted frame decoded once.

:func:`decode_clips` decodes the union of the frames several clips want in one pass over the
video (so K clips of a video cost one pass, not K), and for sparse samples of a long video seeks
to the keyframe before a wanted frame when that decodes fewer frames than going on sequentially
(:func:`plan_runs`: a cost model from the stream's keyframe positions, read by demuxing packets
without decoding). Sequential decoding is 2-10x faster than seeking on short clips with few
keyframes (measured, shared/notes/env.md), so the keyframes are only looked up when a gap between
wanted frames is long enough for a seek to pay (:data:`SEEK_MIN_GAP`).

Frame index i is the i-th frame the decoder outputs (presentation order); in an intact file that
is the i-th frame written, while in a stream cut short, frames whose packets are missing (e.g.
B-frames) are simply absent. After a seek, a frame's index is the rank of its pts among every
packet's pts, which is the same number; the seek path is only taken when the packets' pts are
unique and frame 0 is a keyframe. Timestamps are ``(pts - first_pts) * time_base`` in seconds,
where ``first_pts`` is the pts of the stream's first frame: never derived from an assumed fps, so
they are right for variable-frame-rate video.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass
class DecodeStats:
    """What decoding cost, accumulated over calls: frames decoded (wanted or not), seeks, and the
    calling thread's CPU seconds in decoding + RGB conversion vs resizing."""

    frames_decoded: int = 0
    seeks: int = 0
    decode_cpu_s: float = 0.0
    resize_cpu_s: float = 0.0
    paths: list = field(default_factory=list)  # "seek", "sequential" or "gpu" per decode call
    fallbacks: int = 0  # videos the GPU decoder handed back to PyAV (p4d.video.gpu_decode)


def decode_frames(path: str | Path, frame_index, *, size: tuple[int, int] | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, stats: DecodeStats | None = None,
                  filter: str = "bilinear") -> Clip:
    """Decode the frames at ``frame_index`` (duplicates allowed, any order); see :func:`decode_clips`.

    ``size = (h, w)`` resizes (Pillow ``filter``, non-aspect-preserving) after rotation. VideoDecodeError naming
    the file if the file cannot be decoded or the stream ends before the highest wanted index (a header
    that over-counts, or a truncated file); the message says how many frames were decodable.
    """
    clip = decode_clips(path, [frame_index], size=size, max_pixels=max_pixels, stats=stats, filter=filter)[0]
    if isinstance(clip, VideoDecodeError):
        raise clip
    return clip


def decode_clips(path: str | Path, clips: Sequence, *, size: tuple[int, int] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, stats: DecodeStats | None = None,
                 seek: bool | None = None, filter: str = "bilinear") -> list[Clip | VideoDecodeError]:
    """Decode several clips of one video, each wanted frame once: one Clip per entry of ``clips``
    (each an array of frame indices), or the VideoDecodeError that clip met.

    A clip fails alone when the stream ends (or a packet fails to decode) before its highest index;
    clips whose frames all decoded before that are returned. An unopenable file raises.
    ``seek``: None chooses by the cost model (:func:`plan_runs`), False never seeks, True seeks
    whenever the keyframes allow (tests compare the two paths).
    """
    indices = [_check_index(c) for c in clips]
    union = np.unique(np.concatenate(indices))
    decoded, available, error = _decode_wanted(path, union, size, max_pixels, stats or DecodeStats(), seek, filter)
    out: list[Clip | VideoDecodeError] = []
    for index in indices:
        if available is None or int(index.max()) < available:
            out.append(_assemble(path, index, decoded))
        elif error is not None:
            out.append(VideoDecodeError(f"video {path}: decoding failed after {available} decodable frames "
                                        f"({error})"))
        else:
            out.append(VideoDecodeError(
                f"video {path}: wanted frame {int(index.max())} but the stream ended after {available} decodable "
                f"frames (fewer frames than the header declares, or a truncated file)"))
    return out


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
    decoded, available, error = _decode_wanted(path, index, size, max_pixels, DecodeStats(), None)
    if available is None:
        return _assemble(path, index, decoded)
    if error is not None:
        raise VideoDecodeError(f"video {path}: decoding failed after {available} decodable frames ({error})")
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


#: A seek is only considered when two consecutive wanted frames (or frame 0 and the first wanted
#: one) are at least this many frames apart; below that, one sequential pass is always cheaper.
SEEK_MIN_GAP = 48
#: The cost of one seek (demuxer seek + decoder flush) in frames decoded, for :func:`plan_runs`.
SEEK_COST_FRAMES = 8


def plan_runs(wanted: np.ndarray, keyframes: np.ndarray, seek_cost: int = SEEK_COST_FRAMES) -> list[tuple[int, int]]:
    """Decode runs ``[(first, last), ...]`` covering the sorted unique ``wanted`` frame indices.

    A run starts at a keyframe (``keyframes`` sorted, frame 0 among them) and decodes every frame
    up to ``last``. Going from one wanted frame f to the next, g, the decoder goes on
    sequentially (``g - f - 1`` frames skipped by decoding them) unless seeking to g's keyframe k
    costs less (``seek_cost + g - k`` frames). One run from 0 is the sequential pass.
    """
    runs: list[list[int]] = []
    for g in (int(v) for v in wanted):
        k = int(keyframes[np.searchsorted(keyframes, g, side="right") - 1])
        if not runs:
            runs.append([k if seek_cost + g - k < g else 0, g])
        elif k <= runs[-1][1] or g - runs[-1][1] - 1 <= seek_cost + g - k:
            runs[-1][1] = g
        else:
            runs.append([k, g])
    return [(a, b) for a, b in runs]


def _keyframe_table(path, max_pixels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(every frame's pts sorted, keyframe indices) by demuxing packets (no decoding); None when the
    stream does not allow seeking by index (missing or repeated pts, frame 0 not a keyframe)."""
    pts, key_pts = [], []
    with open_video(path) as container:
        stream = video_stream(container, path, max_pixels)
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
    order = np.sort(np.asarray(pts, dtype=np.int64))
    if not len(order) or np.any(np.diff(order) == 0):
        return None
    keyframes = np.unique(np.searchsorted(order, np.asarray(key_pts, dtype=np.int64)))
    if not len(keyframes) or keyframes[0] != 0:
        return None
    return order, keyframes


def _worth_a_look(wanted: np.ndarray) -> bool:
    gaps = np.diff(np.concatenate([[-1], wanted]))
    return bool(gaps.max() > SEEK_MIN_GAP)


def _decode_wanted(path, index: np.ndarray, size, max_pixels: int, stats: DecodeStats, seek: bool | None,
                   filter: str = "bilinear"):
    """({index: (frame, seconds)}, None, None) if every wanted index decoded, else (partial,
    decodable count, decoder error message or None when the stream simply ended)."""
    target = (check_size(size), filter) if size is not None else None
    wanted = np.unique(index)
    table = None
    if seek is True or (seek is None and _worth_a_look(wanted)):
        table = _keyframe_table(path, max_pixels)
    if table is not None and int(wanted[-1]) < len(table[0]):
        cost = SEEK_COST_FRAMES if seek is None else 0
        runs = plan_runs(wanted, table[1], cost)
        if runs != [(0, int(wanted[-1]))]:
            stats.paths.append("seek")
            return _decode_runs(path, set(int(i) for i in wanted), runs, table[0], target, max_pixels, stats), None, None
    stats.paths.append("sequential")
    return _decode_sequential(path, set(int(i) for i in wanted), target, max_pixels, stats)


def _convert(frame, rotation: int, target, stats: DecodeStats) -> np.ndarray:
    rgb = to_display(frame.to_ndarray(format="rgb24"), rotation)
    if target is not None:
        t = time.thread_time()
        rgb = resize_frames(rgb[None], target[0], target[1])[0]
        stats.resize_cpu_s += time.thread_time() - t
    return rgb


@contextlib.contextmanager
def _decode_clock(stats: "DecodeStats"):
    """Adds this thread's CPU time inside the block to ``stats.decode_cpu_s``, less the resize
    time counted meanwhile (which :func:`_convert` books to ``resize_cpu_s``)."""
    t0, resize0 = time.thread_time(), stats.resize_cpu_s
    try:
        yield
    finally:
        stats.decode_cpu_s += time.thread_time() - t0 - (stats.resize_cpu_s - resize0)


def _decode_sequential(path, wanted: set[int], target, max_pixels: int, stats: DecodeStats):
    last = max(wanted)
    decoded: dict[int, tuple[np.ndarray, float]] = {}
    count = 0
    with _decode_clock(stats):
        with open_video(path) as container:
            stream = video_stream(container, path, max_pixels)
            time_base = stream.time_base
            first_pts = rotation = None
            frames = container.decode(stream)
            while True:
                try:
                    frame = next(frames, None)
                except av.FFmpegError as exc:
                    return decoded, count, f"{type(exc).__name__}: {exc}"
                if frame is None:
                    break
                pts = frame.pts
                if pts is None:
                    raise VideoDecodeError(f"video {path}: frame {count} has no presentation timestamp")
                if first_pts is None:
                    first_pts, rotation = pts, rotation_of(frame)
                if count in wanted:
                    decoded[count] = (_convert(frame, rotation, target, stats),
                                      float((pts - first_pts) * (time_base or frame.time_base)))
                count += 1
                stats.frames_decoded += 1
                if count > last:
                    return decoded, None, None
        return decoded, count, None


def _decode_runs(path, wanted: set[int], runs: list[tuple[int, int]], pts_table: np.ndarray, target,
                 max_pixels: int, stats: DecodeStats) -> dict[int, tuple[np.ndarray, float]]:
    """Decode each run (first keyframe, last wanted frame) after seeking to its keyframe."""
    decoded: dict[int, tuple[np.ndarray, float]] = {}
    first_pts = int(pts_table[0])
    with _decode_clock(stats):
        with open_video(path) as container:
            stream = video_stream(container, path, max_pixels)
            time_base = stream.time_base
            rotation = None
            for r, (start, last) in enumerate(runs):
                if r > 0 or start > 0:
                    container.seek(int(pts_table[start]), stream=stream, backward=True, any_frame=False)
                    stream.codec_context.flush_buffers()
                    stats.seeks += 1
                for frame in container.decode(stream):
                    if frame.pts is None:
                        raise VideoDecodeError(f"video {path}: a frame after seeking has no presentation timestamp")
                    i = int(np.searchsorted(pts_table, frame.pts))
                    if i >= len(pts_table) or pts_table[i] != frame.pts:
                        raise VideoDecodeError(f"video {path}: decoded pts {frame.pts} is not a packet's pts")
                    stats.frames_decoded += 1
                    if rotation is None:
                        rotation = rotation_of(frame)
                    if i in wanted and i not in decoded:
                        decoded[i] = (_convert(frame, rotation, target, stats),
                                      float((frame.pts - first_pts) * (time_base or frame.time_base)))
                    if i >= last:
                        break
        missing = wanted - set(decoded)
        if missing:
            raise VideoDecodeError(f"video {path}: frames {sorted(missing)[:5]} not found after seeking")
        return decoded


def _assemble(path, index: np.ndarray, decoded: dict) -> Clip:
    shapes = {frame.shape for frame, _ in decoded.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(f"video {path}: the frame size changes within the stream ({sorted(shapes)}); "
                               f"pass size=(h, w) to resize every frame to one size")
    frames = np.stack([decoded[int(i)][0] for i in index])
    timestamp = np.array([decoded[int(i)][1] for i in index], dtype=np.float32)
    return Clip(frames=frames, frame_index=index.astype(np.int32), timestamp=timestamp, path=str(path))
