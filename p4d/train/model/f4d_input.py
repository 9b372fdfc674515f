"""Inputs of the 4d-concat and 4d-pe strategies (Tab. 4): the cached F_4D resampled to the
student's patch grid, concatenated to E_v features or projected to an additive encoding."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from p4d.errors import ConfigError


def f4d_to_patch_grid(f4d: Tensor, tap: int, num_frames: int, grid: int) -> Tensor:
    """One tap of F_4D (B, taps, N', h', w', c') → (B·N, grid·grid, c'), trilinear over
    (N', h', w') → (N, grid, grid)."""
    if f4d.dim() != 6:
        raise ConfigError(f"f4d: expected (B, taps, N', h', w', c'), found shape {tuple(f4d.shape)}")
    x = f4d[:, tap].permute(0, 4, 1, 2, 3).float()  # (B, c', N', h', w')
    x = F.interpolate(x, size=(num_frames, grid, grid), mode="trilinear", align_corners=False)
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 4, 1).reshape(b * num_frames, grid * grid, c)


class F4DPositionalEncoding(nn.Module):
    """4d-pe: Linear(c' → D), zero-initialised so training starts from the plain student."""

    def __init__(self, f4d_dim: int, vision_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(f4d_dim, vision_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, f4d_patches: Tensor) -> Tensor:
        return self.proj(f4d_patches.to(self.proj.weight.dtype))
