"""E_v input and features: frames → SigLIP pixels (resize + normalise in torch, no
SiglipImageProcessor/torchvision) → the ``select_layer`` hidden states (NVILA: second to last)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from p4d.errors import ConfigError
from p4d.train.model.config import StudentConfig


def check_frames(frames: Tensor, timestamps: Tensor) -> tuple[int, int]:
    """Validate frames (B, N, H, W, 3) uint8 and timestamps (B, N); return (B, N)."""
    if not isinstance(frames, Tensor) or frames.dim() != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        found = (tuple(frames.shape), frames.dtype) if isinstance(frames, Tensor) else type(frames).__name__
        raise ConfigError(f"frames: expected a (B, N, H, W, 3) uint8 tensor, found {found}")
    if not isinstance(timestamps, Tensor) or tuple(timestamps.shape) != tuple(frames.shape[:2]):
        found = tuple(timestamps.shape) if isinstance(timestamps, Tensor) else type(timestamps).__name__
        raise ConfigError(f"timestamps: expected (B, N) = {tuple(frames.shape[:2])} seconds, found {found}")
    return int(frames.shape[0]), int(frames.shape[1])


def preprocess_frames(frames: Tensor, cfg: StudentConfig, dtype: torch.dtype | None = None) -> Tensor:
    """(B, N, H, W, 3) uint8 → (B·N, 3, S, S) pixels: scale to [0, 1], antialiased resize to
    S = ``cfg.image_size`` (aspect not kept, as NVILA-Lite's per-frame 448×448), clamp, then
    (x − mean) / std."""
    b, n, h, w, _ = frames.shape
    x = frames.reshape(b * n, h, w, 3).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    size = cfg.image_size
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode=cfg.resize, align_corners=False, antialias=True)
        x = x.clamp_(0.0, 1.0)
    mean = torch.tensor(cfg.image_mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.image_std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.to(dtype) if dtype is not None else x


def vision_features(tower: nn.Module, pixels: Tensor, select_layer: int) -> Tensor:
    """E_v(I): (B·N, 3, S, S) → (B·N, P, D) hidden states of layer ``select_layer``
    (index into ``hidden_states``: 0 = embeddings, −1 = last layer before post-norm)."""
    out = tower(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[select_layer]
