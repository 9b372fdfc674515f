"""E_v input and features: frames → SigLIP pixels (the shared :func:`p4d.video.student_frames`
resize, then normalise in torch; no SiglipImageProcessor/torchvision) → the ``select_layer``
hidden states (NVILA: second to last)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from p4d.errors import ConfigError
from p4d.train.model.config import StudentConfig
from p4d.video import student_frames


def check_frames(frames: Tensor, timestamps: Tensor) -> tuple[int, int]:
    """Validate frames (B, N, H, W, 3) uint8 and timestamps (B, N); return (B, N)."""
    if not isinstance(frames, Tensor) or frames.dim() != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        found = (tuple(frames.shape), frames.dtype) if isinstance(frames, Tensor) else type(frames).__name__
        raise ConfigError(f"frames: expected a (B, N, H, W, 3) uint8 tensor, found {found}")
    if not isinstance(timestamps, Tensor) or tuple(timestamps.shape) != tuple(frames.shape[:2]):
        found = tuple(timestamps.shape) if isinstance(timestamps, Tensor) else type(timestamps).__name__
        raise ConfigError(f"timestamps: expected (B, N) = {tuple(frames.shape[:2])} seconds, found {found}")
    return int(frames.shape[0]), int(frames.shape[1])


def to_student_size(frames: Tensor, cfg: StudentConfig) -> Tensor:
    """(B, N, H, W, 3) uint8 → (B, N, S, S, 3) uint8 through :func:`p4d.video.student_frames`
    (Pillow ``cfg.resize``, squash), the one resize of the student's frames in training (the loader
    already hands S×S frames), eval and export. Frames already S×S are returned as they are."""
    size = cfg.image_size
    if tuple(frames.shape[2:4]) == (size, size):
        return frames
    b, n, h, w, _ = frames.shape
    array = frames.detach().cpu().numpy().reshape(b * n, h, w, 3)
    out = torch.from_numpy(student_frames(array, size, cfg.resize)).reshape(b, n, size, size, 3)
    return out.to(frames.device)


def preprocess_frames(frames: Tensor, cfg: StudentConfig, dtype: torch.dtype | None = None) -> Tensor:
    """(B, N, H, W, 3) uint8 → (B·N, 3, S, S) pixels: :func:`to_student_size`, scale to [0, 1],
    then (x − mean) / std (SigLIP: [-1, 1])."""
    frames = to_student_size(frames, cfg)
    b, n, h, w, _ = frames.shape
    x = frames.reshape(b * n, h, w, 3).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(cfg.image_mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.image_std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.to(dtype) if dtype is not None else x


def vision_features(tower: nn.Module, pixels: Tensor, select_layer: int) -> Tensor:
    """E_v(I): (B·N, 3, S, S) → (B·N, P, D) hidden states of layer ``select_layer``
    (index into ``hidden_states``: 0 = embeddings, −1 = last layer before post-norm)."""
    out = tower(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[select_layer]
