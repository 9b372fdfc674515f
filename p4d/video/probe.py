"""Read a video's header (frame count, rate, duration, display size, rotation, codec) cheaply.

:func:`probe` decodes exactly one frame as a light check that the stream is decodable and to read
its display rotation; the frame count comes from the header, or from demuxing packets (no decode)
when the container does not declare it (e.g. Matroska, MPEG-TS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from p4d.errors import VideoDecodeError
from p4d.video._container import DEFAULT_MAX_PIXELS, first_frame, open_video, rotation_of, video_stream


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video.

    ``width``/``height`` are the DISPLAY size, i.e. after ``rotation`` (counter-clockwise degrees,
    0/90/180/270) is applied, which is also the shape of decoded frames. ``num_frames`` is the header's
    count (or the packet count if the header has none); a truncated file can hold fewer decodable frames.
    ``fps`` is the stream's average rate (0.0 if unknown); ``duration`` is in seconds from the header.
    ``declared_frames``: the header's frame count, or, when it has none, duration x fps rounded
    (0 if unknown); a ``num_frames`` well below it means a truncated file (:func:`frame_shortfall`).
    """

    path: str
    size_bytes: int
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    rotation: int
    codec: str
    declared_frames: int = 0


def probe(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoInfo:
    """Probe ``path``; VideoDecodeError (naming the file) if it is missing, empty, not a video, corrupt,
    has no video stream or decodable frame, or declares a frame larger than ``max_pixels``."""
    p = Path(path)
    with open_video(p) as container:
        stream = video_stream(container, p, max_pixels)
        codec = stream.codec_context.name
        fps = _fps(stream)
        duration = _duration(container, stream)
        num_frames = int(stream.frames or 0)
        declared = num_frames if num_frames > 0 else int(round(duration * fps))
        if num_frames <= 0:
            num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
    if num_frames <= 0:
        raise VideoDecodeError(f"video {p}: the video stream holds no frames")
    first = first_frame(p, max_pixels)
    if first is None:
        raise VideoDecodeError(f"video {p}: no decodable frame (header declares {num_frames} frames)")
    rotation = rotation_of(first)
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    if duration <= 0 and fps > 0:
        duration = num_frames / fps
    return VideoInfo(path=str(p), size_bytes=p.stat().st_size, num_frames=num_frames, fps=fps,
                     duration=duration, width=width, height=height, rotation=rotation, codec=codec,
                     declared_frames=declared)


def frame_shortfall(info: VideoInfo) -> str:
    """A note if the video holds clearly fewer frames than its container declares (a truncated
    file: more than 2 frames and 2 % short), else ''."""
    declared = info.declared_frames
    if declared <= 0 or info.num_frames >= declared - max(2, 0.02 * declared):
        return ""
    return (f"truncated: {info.num_frames} of the {declared} frames the container declares "
            f"({info.duration:.2f} s at {info.fps:g} fps) are present")


def _fps(stream: av.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0
