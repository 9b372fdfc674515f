"""Resize frames (non-aspect-preserving, Pillow bilinear or bicubic)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from p4d.errors import ConfigError


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as (height, width) positive ints, else ConfigError."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size={size!r}: expected (height, width), two positive ints") from None
    if h < 1 or w < 1:
        raise ConfigError(f"size={size!r}: expected (height, width), two positive ints")
    return h, w


#: Pillow filters by name (``resize_frames(filter=...)``).
FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resize_frames(frames: np.ndarray, size: tuple[int, int], filter: str = "bilinear") -> np.ndarray:
    """Resize (N, H, W, 3) uint8 frames to (N, h, w, 3), ``size = (h, w)``; aspect not kept
    (squash, no crop); Pillow ``filter`` (``bilinear`` or ``bicubic``, antialiased when shrinking).

    Frames already at the target size are returned unchanged (same array).
    """
    h, w = check_size(size)
    if filter not in FILTERS:
        raise ConfigError(f"resize_frames: filter {filter!r}: expected one of {', '.join(FILTERS)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"resize_frames: expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if frames.shape[1:3] == (h, w):
        return frames
    out = np.empty((frames.shape[0], h, w, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), FILTERS[filter]))
    return out
