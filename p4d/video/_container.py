"""Opening a video file with PyAV, turning every failure into one :class:`VideoDecodeError`.

Shared by :mod:`p4d.video.probe` and :mod:`p4d.video.decode`: file checks (missing, empty, not
a file), the first video stream, the declared-size memory cap, and the display rotation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np

from p4d.errors import VideoDecodeError

log = logging.getLogger(__name__)

#: Demuxers of still-image files (ffmpeg opens a PNG or JPEG as a one-frame "video").
IMAGE_DEMUXERS = ("image2", "image2pipe")

#: Largest decoded frame (width x height) accepted by default: 8K UHD, 7680 x 4320 (~33 M pixels,
#: ~100 MB per RGB frame). A header declaring more is refused before any frame is decoded.
DEFAULT_MAX_PIXELS = 7680 * 4320


def check_file(path: str | Path) -> Path:
    """The path as a :class:`Path` if it names a non-empty regular file, else VideoDecodeError."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise VideoDecodeError(f"video {p}: dangling symbolic link (to {os.readlink(p)}, which does not exist)")
    if not p.exists():
        raise VideoDecodeError(f"video {p}: no such file")
    if not p.is_file():
        raise VideoDecodeError(f"video {p}: expected a video file, found a directory or special file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(f"video {p}: the file is empty (0 bytes), expected a video")
    return p


@contextmanager
def open_video(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading; any PyAV/ffmpeg error inside the block becomes VideoDecodeError."""
    p = check_file(path)
    try:
        container = av.open(str(p), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoDecodeError(f"video {p}: cannot be opened as a video file ({_reason(exc)})") from exc
    try:
        yield container
    except (av.FFmpegError, EOFError) as exc:
        raise VideoDecodeError(f"video {p}: decoding failed ({_reason(exc)})") from exc
    finally:
        container.close()


def video_stream(container: av.container.InputContainer, path: str | Path, max_pixels: int) -> av.VideoStream:
    """The first video stream, after checking that the container is a video (not a still image) and
    that its declared frame size is within ``max_pixels``."""
    check_not_image(container, path)
    streams = container.streams.video
    if not streams:
        found = ", ".join(s.type for s in container.streams) or "none"
        raise VideoDecodeError(f"video {path}: no video stream in the file (streams found: {found})")
    stream = streams[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise VideoDecodeError(f"video {path}: the video stream declares no frame size ({width}x{height})")
    if width * height > max_pixels:
        raise VideoDecodeError(
            f"video {path}: declared frame size {width}x{height} ({width * height} pixels) exceeds the cap of "
            f"{max_pixels} pixels per frame; raise --max-pixels (max_pixels=) if this video is genuine"
        )
    return stream


def check_not_image(container: av.container.InputContainer, path: str | Path) -> None:
    """VideoDecodeError if ffmpeg opened ``path`` with a still-image demuxer (e.g. a PNG named .mp4)."""
    name = container.format.name
    if name.endswith("_pipe") or name in IMAGE_DEMUXERS:
        raise VideoDecodeError(f"video {path}: the file is a still image ({container.format.long_name}), not a video")


def rotation_of(frame: av.VideoFrame) -> int:
    """The display rotation of a decoded frame as counter-clockwise degrees in {0, 90, 180, 270}.

    PyAV's ``VideoFrame.rotation`` is the rotation component of the display matrix, counter-clockwise,
    in [-180, 180]; it is rounded to a multiple of 90 (a mirrored matrix keeps only its rotation).
    """
    degrees = frame.rotation or 0
    quarter = int(round(degrees / 90.0)) % 4
    if abs(degrees - round(degrees / 90.0) * 90) > 1:
        log.warning("display rotation %s degrees is not a multiple of 90; using %d", degrees, quarter * 90)
    return quarter * 90


def first_frame(path: str | Path, max_pixels: int) -> av.VideoFrame | None:
    """The first decodable frame of the video stream (its rotation, its size), None when there is none."""
    with open_video(path) as container:
        stream = video_stream(container, path, max_pixels)
        return next(iter(container.decode(stream)), None)


def to_display(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an (H, W, 3) frame counter-clockwise by ``rotation`` degrees (as a player displays it)."""
    k = (rotation // 90) % 4
    return rgb if k == 0 else np.ascontiguousarray(np.rot90(rgb, k=k))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
