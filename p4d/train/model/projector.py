"""E_p: the NVILA-Lite projector ``mlp_downsample_3x3_fix``.

3×3 space-to-channel downsample of the s×s patch grid (zero-padded to a multiple of 3; 32 → 33
→ 11×11 tokens of 9·D channels), then LayerNorm → Linear(9D, 3D) → GELU → LayerNorm(3D) →
Linear(3D, c) → GELU → Linear(c, c). Module indices in ``layers`` equal VILA's, so the published
``mm_projector/model.safetensors`` keys ``layers.{1,2,4,5,7}.*`` load unchanged.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from p4d.errors import ConfigError

#: ``mm_projector/config.json`` ``mm_projector_type`` of NVILA-Lite.
PROJECTOR_TYPE = "mlp_downsample_3x3_fix"


class DownSample3x3(nn.Module):
    """(M, s·s, C) → (M, ⌈s/3⌉², 9C): zero-pad the grid to a multiple of 3, then concatenate each
    3×3 neighbourhood (row-major over the 3×3 offsets, channels innermost)."""

    def forward(self, x: Tensor) -> Tensor:
        m, length, c = x.shape
        s = math.isqrt(length)
        if s * s != length:
            raise ConfigError(f"mm_projector: expected a square patch grid, found {length} tokens")
        x = x.view(m, s, s, c)
        pad = (3 - s % 3) % 3
        if pad:
            x = F.pad(x, (0, 0, 0, pad, 0, pad))
            s += pad
        x = x.view(m, s // 3, 3, s // 3, 3, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(m, (s // 3) ** 2, 9 * c)


class NvilaLiteProjector(nn.Module):
    """E_p: (M, s·s, in_dim) patch features → (M, h·w, out_dim) LLM tokens.

    in_dim: E_v width D (D + c' for the 4d-concat strategy, which widens layers.1/2).
    mid_dim: 3·D of the vision tower (3456 for SigLIP so400m).
    out_dim: LLM width c.
    """

    def __init__(self, in_dim: int, mid_dim: int, out_dim: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            DownSample3x3(),
            nn.LayerNorm(9 * in_dim, eps=eps),
            nn.Linear(9 * in_dim, mid_dim),
            nn.GELU(),
            nn.LayerNorm(mid_dim, eps=eps),
            nn.Linear(mid_dim, out_dim),
            nn.GELU(),
            nn.Linear(out_dim, out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
