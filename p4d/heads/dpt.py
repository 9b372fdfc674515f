"""The 3-D-convolution DPT decoder of L4P (CroCo/DUSt3R DPT with Conv3d), written from the
architecture in notes/l4p.md §2a/§2b and the public L4P code (NVlabs/L4P
`l4p/models/task_heads/dpt/croco/dpt_block.py`, `dust3r/dpt_head.py`, `dense_heads.py`).

Module and parameter names match the published state dict below `task_head.dpt.`:
``act_postprocess.{0..3}.{0,1}``, ``scratch.layer{1..4}_rn`` (no bias),
``scratch.refinenet{1..4}.{resConfUnit{1,2}.conv{1,2},out_conv}``, ``head1.0``, ``head2.{0,2}``.
Biases as in the source: every conv has one except the ``layer*_rn`` projections (``bias=False``);
the ResidualConvUnits have biases because ``use_bn=False`` (``bias=not bn``).

Data layout inside: channels-first (B, C, T, Y, X).
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

Factors = tuple[tuple[int, int, int], ...]

#: log2 resampling of each tap after its 1×1×1 projection (>0: ConvTranspose3d, <0: strided
#: Conv3d, 0: Identity) and the fusion upsampling factors of refinenet1..4 (dense_heads.py L30-31).
DENSE_ACTPOST_FACTORS: Factors = ((1, 2, 2), (1, 1, 1), (0, 0, 0), (-1, -1, -1))
DENSE_FUSION_FACTORS: Factors = ((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))
#: The camray head (`VideoMAETraj3DDPTHead`, dense_heads.py L269-284).
CAMRAY_ACTPOST_FACTORS: Factors = ((1, 0, 0), (1, 0, 0), (0, 0, 0), (-1, -1, -1))
CAMRAY_FUSION_FACTORS: Factors = ((1, 1, 1), (1, 1, 1), (2, 1, 1), (2, 2, 2))


def make_resample(channels: int, log2_factors: Sequence[int], **factory) -> nn.Module:
    """Resampling after a tap's projection: ConvTranspose3d (k = s = 2^f) to upsample, Conv3d
    (k = 2·(s//2)+1, s = 2^-f, p = s//2) to downsample, Identity when all factors are 0."""
    f = tuple(int(v) for v in log2_factors)
    if any(v > 0 for v in f) and any(v < 0 for v in f):
        raise ValueError(f"resample factors must not mix up- and downsampling, found {f}")
    if any(v > 0 for v in f):
        stride = tuple(2**v for v in f)
        return nn.ConvTranspose3d(channels, channels, kernel_size=stride, stride=stride, **factory)
    if any(v < 0 for v in f):
        stride = tuple(2 ** (-v) for v in f)
        kernel = tuple((s // 2) * 2 + 1 for s in stride)
        pad = tuple(s // 2 for s in stride)
        return nn.Conv3d(channels, channels, kernel_size=kernel, stride=stride, padding=pad, **factory)
    return nn.Identity()


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3×3×3 convs with bias (no BatchNorm)."""

    def __init__(self, features: int, **factory) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(features, features, kernel_size=3, padding=1, **factory)
        self.conv2 = nn.Conv3d(features, features, kernel_size=3, padding=1, **factory)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FeatureFusionBlock(nn.Module):
    """refinenet: (coarser path + RCU1(skip)) → RCU2 → trilinear upsample (align_corners=True)
    by ``scale_factor`` → 1×1×1 ``out_conv``."""

    def __init__(self, features: int, scale_factor: Sequence[int], **factory) -> None:
        super().__init__()
        self.scale_factor = tuple(int(s) for s in scale_factor)
        self.out_conv = nn.Conv3d(features, features, kernel_size=1, **factory)
        self.resConfUnit1 = ResidualConvUnit(features, **factory)
        self.resConfUnit2 = ResidualConvUnit(features, **factory)

    def forward(self, path: Tensor, skip: Tensor | None = None) -> Tensor:
        out = path if skip is None else path + self.resConfUnit1(skip)
        out = self.resConfUnit2(out)
        out = F.interpolate(out, scale_factor=self.scale_factor, mode="trilinear", align_corners=True)
        return self.out_conv(out)


class DPTAdapter(nn.Module):
    """Four taps (B, c', N', h', w') → one map (B, C, *output_size).

    Stages: act_postprocess[i] (1×1×1 Conv3d c' → layer_dims[i], then resample) →
    scratch.layer{i}_rn (3×3×3 Conv3d → feature_dim, no bias) → refinenet4..1 →
    head1 (3×3×3 Conv3d feature_dim → feature_dim // 2) → trilinear resize to ``output_size``
    (align_corners=True; skipped when already that size) → head2 (3×3×3 Conv3d → last_dim, ReLU,
    1×1×1 Conv3d → C). No output activation (the task head applies it).
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        layer_dims: Sequence[int],
        feature_dim: int,
        last_dim: int,
        out_channels: int,
        output_size: tuple[int, int, int],
        actpost_factors: Factors = DENSE_ACTPOST_FACTORS,
        fusion_factors: Factors = DENSE_FUSION_FACTORS,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        if len(layer_dims) != 4 or len(actpost_factors) != 4 or len(fusion_factors) != 4:
            raise ValueError("DPTAdapter needs 4 layer_dims, 4 actpost and 4 fusion factors")
        self.output_size = tuple(int(s) for s in output_size)
        self.act_postprocess = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(embed_dim, dim, kernel_size=1, **factory),
                make_resample(dim, fac, **factory),
            )
            for dim, fac in zip(layer_dims, actpost_factors)
        )
        scratch = nn.Module()
        for i, dim in enumerate(layer_dims, start=1):
            conv = nn.Conv3d(dim, feature_dim, kernel_size=3, padding=1, bias=False, **factory)
            scratch.add_module(f"layer{i}_rn", conv)
        for i, fac in enumerate(fusion_factors, start=1):
            scratch.add_module(f"refinenet{i}", FeatureFusionBlock(feature_dim, fac, **factory))
        self.scratch = scratch
        mid = feature_dim // 2
        self.head1 = nn.Sequential(nn.Conv3d(feature_dim, mid, kernel_size=3, padding=1, **factory))
        self.head2 = nn.Sequential(
            nn.Conv3d(mid, last_dim, kernel_size=3, padding=1, **factory),
            nn.ReLU(),
            nn.Conv3d(last_dim, out_channels, kernel_size=1, **factory),
        )

    def forward(self, taps: Sequence[Tensor], *, stages: dict[str, tuple] | None = None) -> Tensor:
        """taps: 4 × (B, c', N', h', w'). If ``stages`` is a dict, every stage's output shape is
        recorded in it (for `teacher info` and the shape tests)."""

        def note(name: str, x: Tensor) -> Tensor:
            if stages is not None:
                stages[name] = tuple(x.shape)
            return x

        sc = self.scratch
        layers = [
            note(f"act_postprocess.{i}", act(t)) for i, (act, t) in enumerate(zip(self.act_postprocess, taps))
        ]
        rn = (sc.layer1_rn, sc.layer2_rn, sc.layer3_rn, sc.layer4_rn)
        layers = [note(f"scratch.layer{i + 1}_rn", conv(x)) for i, (conv, x) in enumerate(zip(rn, layers))]
        path = sc.refinenet4(layers[3])
        # The source crops path_4 to layer 3's size (a no-op unless the downsampling conv of an
        # odd-sized grid rounded up); we crop all three axes (the source: T and Y).
        t3, y3, x3 = layers[2].shape[2:]
        path = note("scratch.refinenet4", path[:, :, :t3, :y3, :x3])
        path = note("scratch.refinenet3", sc.refinenet3(path, layers[2]))
        path = note("scratch.refinenet2", sc.refinenet2(path, layers[1]))
        path = note("scratch.refinenet1", sc.refinenet1(path, layers[0]))
        out = note("head1", self.head1(path))
        if tuple(out.shape[-3:]) != self.output_size:
            out = F.interpolate(out, size=self.output_size, mode="trilinear", align_corners=True)
        out = note("resize", out)
        return note("head2", self.head2(out))
