"""D_4DP (training only, Eq. 3): the LLM's last hidden states at the visual tokens,
F_hidden (B, N, h, w, c), rearranged to the teacher grid (N', h', w') and mapped per tap by an
MLP c → 2560 (GELU, Xavier init) → c', giving F̂_4D (B, taps, N', h', w', c')."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from p4d.errors import ConfigError


def rearrange_to_teacher_grid(x: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """(B, N, h, w, c) → (B, N', h', w', c).

    Temporal grouping: frame n belongs to group ⌊n·N'/N⌋ and each group is averaged (adaptive
    average pooling; exact groups of N/N' frames when N' divides N). Spatial resize: bilinear,
    antialiased when shrinking.
    """
    if x.dim() != 5:
        raise ConfigError(f"F_hidden: expected (B, N, h, w, c), found shape {tuple(x.shape)}")
    n_t, h_t, w_t = grid
    b, n, h, w, c = x.shape
    y = x.permute(0, 4, 1, 2, 3)  # (B, c, N, h, w)
    if n != n_t:
        y = F.adaptive_avg_pool3d(y, (n_t, h, w))
    if (h, w) != (h_t, w_t):
        y = y.permute(0, 2, 1, 3, 4).reshape(b * n_t, c, h, w)
        shrink = h_t < h or w_t < w
        y = F.interpolate(y, size=(h_t, w_t), mode="bilinear", align_corners=False, antialias=shrink)
        y = y.reshape(b, n_t, c, h_t, w_t).permute(0, 2, 1, 3, 4)
    return y.permute(0, 2, 3, 4, 1)


class D4DP(nn.Module):
    """F_hidden (B, N, h, w, c) → F̂_4D (B, taps, N', h', w', c'): one MLP per tap.

    f4d_shape: (taps, N', h', w', c') of the cache's F_4D.
    """

    def __init__(self, llm_dim: int, f4d_shape: tuple[int, int, int, int, int], hidden: int = 2560) -> None:
        super().__init__()
        taps, n_t, h_t, w_t, c_t = f4d_shape
        self.grid = (n_t, h_t, w_t)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(llm_dim, hidden), nn.GELU(), nn.Linear(hidden, c_t)) for _ in range(taps)
        )
        for mlp in self.mlps:
            for layer in (mlp[0], mlp[2]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        grid = rearrange_to_teacher_grid(hidden, self.grid).to(self.mlps[0][0].weight.dtype)
        return torch.stack([mlp(grid) for mlp in self.mlps], dim=1)
