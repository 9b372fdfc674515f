"""E_4D: the VideoMAE v2 ViT encoder of L4P.

Papers:
- L4P: Towards Unified Low-Level 4D Vision Perception, arXiv 2502.13078 (3DV 2026).
  Code: https://github.com/NVlabs/L4P (``l4p/models/l4p_videomae.py``), CC BY-NC-SA 4.0.
- VideoMAE V2: Scaling Video Masked Autoencoders with Dual Masking, arXiv 2303.16727 (CVPR 2023).
  Code: https://github.com/OpenGVLab/VideoMAEv2 (``models/modeling_finetune.py``), MIT.
- VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
  Pre-Training, arXiv 2203.12602.

The released L4P encoder is ViT-g/14: 3-D tubelet patches (2 × 14 × 14), width 1408, 40
pre-norm blocks with 16 heads and MLP 6144, qkv projection without bias plus separate q and v
biases (the k bias is zero), no cls token, no layer-scale, a fixed 1-D sinusoid position table
over the N'·h'·w' flattened tokens (not learnt, not interpolated, not in the state dict), and a
final LayerNorm applied only to the last block's output. Tokens are flattened in (t, h, w) order
with w fastest, so the sequence reshapes directly to the grid (N', h', w', c').

Written for p4d from the architecture description (notes/l4p.md §1); no code copied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from p4d.errors import CheckpointError, ConfigError
from p4d.teacher.attention import attend, check_backend

if TYPE_CHECKING:
    from p4d.teacher.presets import TeacherPreset

#: Prefix of the encoder in the released L4P Lightning checkpoint.
L4P_ENCODER_PREFIX = "l4p_model.video_encoder."


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed 1-D position table (num_positions, dim), float32.

    Entry (p, j) is sin(p / 10000^(2⌊j/2⌋/dim)) for even j and cos(...) for odd j. Computed in
    float64 and rounded once, as the original (numpy float64 -> float32).
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2.0 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.to(torch.float32)


def take_indices(depth: int, indices: Sequence[int] | int) -> list[int]:
    """Normalise layer indices over the ``depth + 1`` encoder outputs (0 = embedding, depth = final norm).

    An int n means the last n outputs; negative indices count from the end (-1 = depth).
    """
    num_outputs = depth + 1
    if isinstance(indices, int):
        if not 0 < indices <= num_outputs:
            raise ConfigError(f"indices: expected 1..{num_outputs} last layers, got {indices}")
        return list(range(num_outputs - indices, num_outputs))
    out = []
    for i in indices:
        j = i + num_outputs if i < 0 else i
        if not 0 <= j < num_outputs:
            raise ConfigError(f"indices: layer {i} out of range for an encoder with {num_outputs} outputs (0..{depth})")
        out.append(int(j))
    if not out:
        raise ConfigError("indices: expected at least one layer index, got none")
    return out


# --- blocks ---------------------------------------------------------------------------------


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: Conv3d with kernel = stride = (tubelet, p, p). (B,3,N,H,W) -> (B, N'·h'·w', c')."""

    def __init__(self, *, tubelet: int, patch_size: int, embed_dim: int, in_chans: int = 3, device=None, dtype=None):
        super().__init__()
        kernel = (tubelet, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` without bias plus learnt ``q_bias`` and ``v_bias`` (k bias 0)."""

    def __init__(self, *, dim: int, num_heads: int, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.num_heads = num_heads
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=False, **dd)
        self.q_bias = nn.Parameter(torch.zeros(dim, **dd))
        self.v_bias = nn.Parameter(torch.zeros(dim, **dd))
        self.proj = nn.Linear(dim, dim, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = nn.functional.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = attend(q, k, v, backend=self.backend)  # (B, heads, L, d)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU (exact) -> fc2."""

    def __init__(self, *, dim: int, hidden_dim: int, device=None, dtype=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, device=device, dtype=dtype)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); no layer-scale, no drop-path."""

    def __init__(
        self, *, dim: int, num_heads: int, mlp_dim: int, eps: float = 1e-6, backend: str = "auto", device=None, dtype=None
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.norm1 = nn.LayerNorm(dim, eps=eps, **dd)
        self.attn = Attention(dim=dim, num_heads=num_heads, backend=backend, **dd)
        self.norm2 = nn.LayerNorm(dim, eps=eps, **dd)
        self.mlp = Mlp(dim=dim, hidden_dim=mlp_dim, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# --- model ----------------------------------------------------------------------------------


class VideoMAEv2Encoder(nn.Module):
    """E_4D: (B, 3, N, H, W) ImageNet-normalised clip -> token grids (B, N', h', w', c').

    Args:
        num_frames: N, frames per clip (fixed: the position table is not interpolated).
        img_size: H = W, pixels.
        patch_size: spatial patch side, pixels.
        tubelet: frames per temporal token.
        embed_dim: c', token width.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        mlp_dim: MLP hidden width.
        layer_norm_eps: LayerNorm epsilon.
        attn_backend: "auto" (xformers on CUDA when installed, else SDPA), "sdpa" or "xformers".
        device, dtype: passed to every parameter (``device="meta"`` builds without memory).
    """

    def __init__(
        self,
        *,
        num_frames: int = 16,
        img_size: int = 224,
        patch_size: int = 14,
        tubelet: int = 2,
        embed_dim: int = 1408,
        depth: int = 40,
        num_heads: int = 16,
        mlp_dim: int = 6144,
        layer_norm_eps: float = 1e-6,
        attn_backend: str = "auto",
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_backend(attn_backend)
        if img_size % patch_size or num_frames % tubelet or embed_dim % num_heads:
            raise ConfigError(
                f"encoder: img_size {img_size} must divide by patch_size {patch_size}, num_frames {num_frames} by "
                f"tubelet {tubelet}, embed_dim {embed_dim} by num_heads {num_heads}"
            )
        dd = {"device": device, "dtype": dtype}
        self.num_frames, self.img_size, self.depth = num_frames, img_size, depth
        self.grid = (num_frames // tubelet, img_size // patch_size, img_size // patch_size)
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed3d(tubelet=tubelet, patch_size=patch_size, embed_dim=embed_dim, **dd)
        num_tokens = math.prod(self.grid)
        self.register_buffer("pos_embed", sinusoid_table(num_tokens, embed_dim).to(device=device), persistent=False)
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_dim=mlp_dim, eps=layer_norm_eps, backend=attn_backend, **dd)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps, **dd)

    @classmethod
    def from_preset(cls, preset: TeacherPreset, *, attn_backend: str = "auto", device=None, dtype=None):
        return cls(
            num_frames=preset.num_frames, img_size=preset.img_size, patch_size=preset.patch_size,
            tubelet=preset.tubelet, embed_dim=preset.embed_dim, depth=preset.depth, num_heads=preset.num_heads,
            mlp_dim=preset.mlp_dim, layer_norm_eps=preset.layer_norm_eps, attn_backend=attn_backend,
            device=device, dtype=dtype,
        )

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random init (truncated normal 0.02 for Linear/Conv weights, zero biases, unit LayerNorms)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, Attention):
                nn.init.zeros_(m.q_bias)
                nn.init.zeros_(m.v_bias)

    def reset_buffers(self, device=None) -> None:
        """Recompute the (non-persistent) position table, e.g. after building on the meta device."""
        device = device if device is not None else self.patch_embed.proj.weight.device
        self.pos_embed = sinusoid_table(*self.pos_embed.shape).to(device=device)

    def check_input(self, x: torch.Tensor) -> None:
        expected = (3, self.num_frames, self.img_size, self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ConfigError(
                f"encoder input: expected (B, 3, N, H, W) = (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; the position table is fixed to {self.num_frames} frames of "
                f"{self.img_size}x{self.img_size} (no interpolation)"
            )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embedding + position table: (B, 3, N, H, W) -> (B, N'·h'·w', c')."""
        self.check_input(x)
        x = self.patch_embed(x)
        return x + self.pos_embed.to(dtype=x.dtype)

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N'·h'·w', c') -> (B, N', h', w', c') (tokens are flattened t, h, w with w fastest)."""
        return tokens.reshape(tokens.shape[0], *self.grid, tokens.shape[-1])

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] | int = 1) -> list[torch.Tensor]:
        """The encoder outputs at ``indices``, each (B, N', h', w', c'), in the order asked.

        Index 0 is the patch embedding plus position table, i (1-based) the output of block i and
        ``depth`` the final LayerNorm of block ``depth``'s output. An int n means the last n; negative
        indices count from the end. Blocks after the largest index needed are not run.
        """
        wanted = take_indices(self.depth, indices)
        last = max(wanted)
        found: dict[int, torch.Tensor] = {}
        h = self.embed(x)
        if 0 in wanted:
            found[0] = h
        for i, block in enumerate(self.blocks[:last], start=1):
            h = block(h)
            if i in wanted:
                found[i] = self.norm(h) if i == self.depth else h
        return [self.to_grid(found[i]) for i in wanted]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The final normalised output (B, N', h', w', c')."""
        return self.forward_intermediates(x, [self.depth])[0]


# --- checkpoint -----------------------------------------------------------------------------


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: VideoMAEv2Encoder) -> dict[str, Any]:
    """Map the released L4P encoder keys (``l4p_model.video_encoder.*``) to this module's names.

    The module mirrors the published names below the prefix (``patch_embed.proj``,
    ``blocks.{i}.{norm1,attn.{qkv,q_bias,v_bias,proj},norm2,mlp.{fc1,fc2}}``, ``norm``), so the map
    strips the prefix. Keys outside the prefix are not encoder keys and are left out (the caller
    accounts for them). A ``pos_embed`` entry (some VideoMAE exports store the fixed table) is
    dropped after checking that it equals this module's table; one that differs is an error.
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if not key.startswith(L4P_ENCODER_PREFIX):
            continue
        name = key[len(L4P_ENCODER_PREFIX):]
        if name == "pos_embed":
            fixed = sinusoid_table(*model.pos_embed.shape)
            if value.numel() != fixed.numel() or not torch.allclose(value.reshape(fixed.shape).float(), fixed, atol=1e-4):
                raise CheckpointError(
                    f"{key}: the stored position table {tuple(value.shape)} differs from the fixed sinusoid table "
                    f"{tuple(fixed.shape)}; this encoder does not use learnt or interpolated positions"
                )
            continue
        out[name] = value
    return out
