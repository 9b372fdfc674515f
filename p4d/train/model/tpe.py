"""Timestamp Positional Encoding (TPE, Eq. 5) and the two Tab. 6 variants.

``add``: p[2i] = sin(t / T^(2i/D)), p[2i+1] = cos(t / T^(2i/D)), t = the frame's timestamp in
seconds (from the cache), D = E_v width; added to every patch feature of the frame before E_p.
``mark``: "t s" burnt into the top-left corner of each frame (Pillow).
``prompt``: a duration/fps sentence put before the question.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from p4d.errors import ConfigError


def timestamp_pe(t: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """Eq. 5 for timestamps ``t`` of any shape (…) → (…, dim) float32."""
    if dim <= 0:
        raise ConfigError(f"timestamp_pe: dim must be positive, found {dim}")
    t = t.to(torch.float32)
    even = torch.arange(0, dim, 2, dtype=torch.float32, device=t.device)  # the 2i of Eq. 5
    angle = t[..., None] / temperature ** (even / dim)
    pe = torch.empty(*t.shape, dim, dtype=torch.float32, device=t.device)
    pe[..., 0::2] = torch.sin(angle)
    pe[..., 1::2] = torch.cos(angle)[..., : dim // 2]
    return pe


def time_prompt(timestamps: Sequence[float] | Tensor) -> str:
    """The ``prompt`` variant's sentence, e.g. "The video lasts 7.5 seconds; 16 frames were
    sampled at 2.00 fps, at 0.0s, 0.5s, … . " (duration = last − first timestamp)."""
    ts = [float(v) for v in (timestamps.tolist() if isinstance(timestamps, Tensor) else timestamps)]
    if not ts:
        raise ConfigError("time_prompt: expected at least one timestamp")
    duration = ts[-1] - ts[0]
    fps = (len(ts) - 1) / duration if duration > 0 else 0.0
    at = ", ".join(f"{t:.1f}s" for t in ts)
    return (
        f"The video lasts {duration:.1f} seconds; {len(ts)} frames were sampled at {fps:.2f} fps, "
        f"at {at}. "
    )


def _font(height: int):
    from PIL import ImageFont

    size = max(8, height // 10)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def mark_timestamps(frames: Tensor, timestamps: Tensor) -> Tensor:
    """The ``mark`` variant: burn "t s" into each frame. frames (B, N, H, W, 3) uint8,
    timestamps (B, N) seconds → new (B, N, H, W, 3) uint8 tensor (white on a black box)."""
    from PIL import Image, ImageDraw

    if frames.dim() != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ConfigError(f"frames: expected (B, N, H, W, 3) uint8, found {tuple(frames.shape)} {frames.dtype}")
    if tuple(timestamps.shape) != tuple(frames.shape[:2]):
        raise ConfigError(f"timestamps: expected shape {tuple(frames.shape[:2])}, found {tuple(timestamps.shape)}")
    array = frames.detach().cpu().numpy().copy()
    font = _font(array.shape[2])
    for b in range(array.shape[0]):
        for n in range(array.shape[1]):
            image = Image.fromarray(array[b, n])
            draw = ImageDraw.Draw(image)
            text = f"{float(timestamps[b, n]):.1f}s"
            box = draw.textbbox((1, 1), text, font=font)
            draw.rectangle(box, fill=(0, 0, 0))
            draw.text((1, 1), text, fill=(255, 255, 255), font=font)
            array[b, n] = np.asarray(image)
    return torch.from_numpy(array).to(frames.device)
