"""D_4DP (training only, Eq. 3): the LLM's last-layer hidden states at the visual tokens,
F_hidden (B, N, h, w, c), rearranged to the teacher grid (N', h', w') and mapped per tap to c',
giving F̂_4D (B, taps, N', h', w', c').

Defaults follow the public 4D-RGPT release (notes/release.md §3):

- time ``stride``: keep frames 0, s, 2s, … with s = N / N' (16 → 8: frames 0, 2, …, 14, the
  release's ``x[:, ::2]``); ``mean`` (the paper reading p4d used before) averages groups of
  N / N' consecutive frames instead (adaptive average pooling when N' does not divide N).
- space: each frame's h×w token grid resized bilinearly to h'×w' (11×11 → 16×16 at the published
  sizes; antialiased only when shrinking, which the published sizes never do).
- head ``linear``: one ``Linear(c, c')`` per tap, weights normal(0, 0.1), bias 0 (the release);
  ``mlp``: ``Linear(c, hidden)`` → GELU → ``Linear(hidden, c')`` per tap, Xavier-uniform, bias 0
  (the model card's reading, hidden 2560).

The per-tap map is linear for ``linear`` and is applied after the resize; since bilinear weights
sum to 1, resizing before or after a linear map gives the same result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from p4d.errors import ConfigError

D4DP_HEADS = ("linear", "mlp")
D4DP_TIME = ("stride", "mean")
#: Weight init of the release's per-tap Linear: normal(0, LINEAR_INIT_STD), bias 0.
LINEAR_INIT_STD = 0.1


def rearrange_to_teacher_grid(x: Tensor, grid: tuple[int, int, int], time: str = "stride") -> Tensor:
    """(B, N, h, w, c) → (B, N', h', w', c).

    time ``stride``: frames 0, s, …, (N'−1)·s with s = N / N' (N' must divide N);
    ``mean``: frame n belongs to group ⌊n·N'/N⌋ and each group is averaged.
    Spatial: bilinear (align_corners False), antialiased when shrinking.
    """
    if x.dim() != 5:
        raise ConfigError(f"F_hidden: expected (B, N, h, w, c), found shape {tuple(x.shape)}")
    if time not in D4DP_TIME:
        raise ConfigError(f"d4dp_time: expected one of {D4DP_TIME}, found {time!r}")
    n_t, h_t, w_t = grid
    b, n, h, w, c = x.shape
    if n != n_t:
        if time == "stride":
            if n % n_t:
                raise ConfigError(
                    f"F_hidden: d4dp_time 'stride' needs N' = {n_t} to divide the N = {n} frames; "
                    f"use d4dp_time 'mean' (group averaging) for these sizes")
            x = x[:, :: n // n_t]
        else:
            y = F.adaptive_avg_pool3d(x.permute(0, 4, 1, 2, 3), (n_t, h, w))  # (B, c, N', h, w)
            x = y.permute(0, 2, 3, 4, 1)
    if (h, w) != (h_t, w_t):
        y = x.permute(0, 1, 4, 2, 3).reshape(b * n_t, c, h, w)
        shrink = h_t < h or w_t < w
        y = F.interpolate(y, size=(h_t, w_t), mode="bilinear", align_corners=False, antialias=shrink)
        x = y.reshape(b, n_t, c, h_t, w_t).permute(0, 1, 3, 4, 2)
    return x


def _linear(c: int, c_t: int) -> nn.Linear:
    layer = nn.Linear(c, c_t)
    nn.init.normal_(layer.weight, mean=0.0, std=LINEAR_INIT_STD)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(c: int, hidden: int, c_t: int) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(c, hidden), nn.GELU(), nn.Linear(hidden, c_t))
    for layer in (mlp[0], mlp[2]):
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    return mlp


class D4DP(nn.Module):
    """F_hidden (B, N, h, w, c) → F̂_4D (B, taps, N', h', w', c'): one map per tap.

    f4d_shape: (taps, N', h', w', c') of the cache's F_4D; head: ``linear`` | ``mlp``;
    time: ``stride`` | ``mean``; hidden: the MLP width (``mlp`` only).
    """

    def __init__(self, llm_dim: int, f4d_shape: tuple[int, int, int, int, int], hidden: int = 2560, *,
                 head: str = "linear", time: str = "stride") -> None:
        super().__init__()
        if head not in D4DP_HEADS:
            raise ConfigError(f"d4dp: expected one of {D4DP_HEADS}, found {head!r}")
        if time not in D4DP_TIME:
            raise ConfigError(f"d4dp_time: expected one of {D4DP_TIME}, found {time!r}")
        taps, n_t, h_t, w_t, c_t = f4d_shape
        self.grid = (n_t, h_t, w_t)
        self.head = head
        self.time = time
        make = (lambda: _linear(llm_dim, c_t)) if head == "linear" else (lambda: _mlp(llm_dim, hidden, c_t))
        self.maps = nn.ModuleList(make() for _ in range(taps))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, hidden: Tensor) -> Tensor:
        grid = rearrange_to_teacher_grid(hidden, self.grid, self.time).to(self.dtype)
        return torch.stack([m(grid) for m in self.maps], dim=1)


# ---- the ceiling the rearrange implies ----------------------------------------------------------

def rearrange_operators(student_grid: tuple[int, int, int], grid: tuple[int, int, int],
                        time: str = "stride") -> tuple[Tensor, Tensor]:
    """The linear maps of :func:`rearrange_to_teacher_grid` from the student's (N, h, w) tokens to
    the teacher's (N', h', w'): time T (N', N) and space S (h'·w', h·w), float64, so that the
    rearranged grid is (T ⊗ S) · tokens. Read off by rearranging the basis vectors (the same code path)."""
    n, h, w = student_grid
    n_t, h_t, w_t = grid
    eye_t = torch.eye(n, dtype=torch.float64).reshape(1, n, 1, 1, n)
    t = rearrange_to_teacher_grid(eye_t, (n_t, 1, 1), time).reshape(n_t, n)
    eye_s = torch.eye(h * w, dtype=torch.float64).reshape(1, 1, h, w, h * w)
    s = rearrange_to_teacher_grid(eye_s, (1, h_t, w_t), time).reshape(h_t * w_t, h * w)
    return t, s


def _range_projection(a: Tensor) -> Tensor:
    """The orthogonal projection onto the column space of ``a`` (M, K): U Uᵀ over the nonzero singular values."""
    u, sv, _ = torch.linalg.svd(a, full_matrices=False)
    keep = sv > sv.max() * max(a.shape) * torch.finfo(a.dtype).eps if sv.numel() else sv.bool()
    u = u[:, keep]
    return u @ u.T


def grid_cosine_ceiling(f4d: Tensor, student_grid: tuple[int, int, int], time: str = "stride") -> float:
    """The best mean token cosine a student with an (N, h, w) token grid can reach on ``f4d``
    (..., N', h', w', c') through D_4DP's rearrange, whatever its hidden states.

    D_4DP's output is (T ⊗ S)·X·W + b (X: the hidden states, W, b: the per-tap linear map), so it
    lies in the column space of T ⊗ S (constants included: bilinear rows sum to 1). The closest such
    grid to F_4D (least squares, token by token over c') is the projection (P_T ⊗ P_S)·F_4D; the
    ceiling is the mean over tokens (and leading axes: clips, taps) of cos(F_4D, its projection).
    1.0 when the student's grid can hold the teacher's; channel capacity (c vs c') is not counted."""
    if f4d.dim() < 4:
        raise ConfigError(f"F_4D: expected (..., N', h', w', c'), found shape {tuple(f4d.shape)}")
    n_t, h_t, w_t, c_t = f4d.shape[-4:]
    t, s = rearrange_operators(student_grid, (n_t, h_t, w_t), time)
    p_t, p_s = _range_projection(t), _range_projection(s)
    x = f4d.to(torch.float64).reshape(-1, n_t, h_t * w_t, c_t)
    reached = torch.einsum("nm,ts,bmsc->bntc", p_t, p_s, x)
    cos = F.cosine_similarity(reached, x, dim=-1, eps=1e-12)
    return float(cos.mean())
