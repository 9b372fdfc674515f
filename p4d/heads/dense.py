"""The four D_m task heads (depth, flow, motion, camray) on the teacher's F_4D taps.

Input: F_4D as ``num_taps`` tensors (B, N', h', w', c') or one tensor (B, taps, N', h', w', c')
(the cache's `latents/f4d` layout). Output: channels-last maps, the cache's `maps/*` layout:

- depth  (B, N, H, W, 1): exp of the predicted log-depth, > 0;
- flow   (B, N, H, W, 2): backward flow t → t−1 in pixels (u, v); frame 0 is invalid
  (:data:`FLOW_FRAME0_INVALID`);
- motion (B, N, H, W, 1): dynamic-mask logits;
- camray (B, N, h_p, w_p, 6): Plücker rays (d, m = o × d) per patch, relative to the window's
  first camera.

The heads are differentiable in their input, so frozen copies can decode the student's F̂_4D
with gradients flowing back to it (Eq. 4).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from p4d.errors import ConfigError
from p4d.heads.config import MODALITY_CHANNELS, HeadsConfig
from p4d.heads.dpt import (
    CAMRAY_ACTPOST_FACTORS,
    CAMRAY_FUSION_FACTORS,
    DENSE_ACTPOST_FACTORS,
    DENSE_FUSION_FACTORS,
    DPTAdapter,
)

#: Activation on the DPT output per modality: depth predicts log-depth (`depth_fn: exp`);
#: flow, motion (logits) and camray are linear.
OUTPUT_ACTIVATION: dict[str, str] = {"depth": "exp", "flow": "linear", "motion": "linear", "camray": "linear"}


class TaskHead(nn.Module):
    """One modality: ``dpt`` (a :class:`DPTAdapter`) plus its output activation."""

    def __init__(self, cfg: HeadsConfig, modality: str, *, device=None, dtype=None) -> None:
        super().__init__()
        if modality not in MODALITY_CHANNELS:
            raise ConfigError(f"modality: unknown {modality!r}; expected one of {tuple(MODALITY_CHANNELS)}")
        self.modality = modality
        camray = modality == "camray"
        n, *_ = cfg.output_shape(modality)
        spatial = cfg.ray_grid if camray else cfg.image_size
        self.dpt = DPTAdapter(
            embed_dim=cfg.embed_dim,
            layer_dims=cfg.layer_dims,
            feature_dim=cfg.feature_dim,
            last_dim=cfg.last_dim,
            out_channels=MODALITY_CHANNELS[modality],
            output_size=(n, *spatial),
            actpost_factors=CAMRAY_ACTPOST_FACTORS if camray else DENSE_ACTPOST_FACTORS,
            fusion_factors=CAMRAY_FUSION_FACTORS if camray else DENSE_FUSION_FACTORS,
            device=device,
            dtype=dtype,
        )

    def forward(self, taps: Sequence[Tensor], *, stages: dict[str, tuple] | None = None,
                raw: bool = False) -> Tensor:
        """taps: 4 × (B, c', N', h', w') channels-first → (B, N, Y, X, C) channels-last.

        ``raw``: the DPT output before the head's activation (log-depth for depth; the same map otherwise).
        """
        out = self.dpt(taps, stages=stages)
        if not raw and OUTPUT_ACTIVATION[self.modality] == "exp":
            out = torch.exp(out)
        return out.permute(0, 2, 3, 4, 1)


class DenseHeads(nn.Module):
    """All D_m heads of a :class:`HeadsConfig`; ``self.heads[modality]`` is a :class:`TaskHead`.

    Buildable on the "meta" device (``device="meta"``) to inspect shapes without memory.
    """

    def __init__(self, cfg: HeadsConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(cfg, HeadsConfig):
            raise ConfigError(f"DenseHeads: expected a HeadsConfig, found {type(cfg).__name__}")
        self.cfg = cfg
        self.heads = nn.ModuleDict(
            {m: TaskHead(cfg, m, device=device, dtype=dtype) for m in cfg.modalities}
        )

    def prepare_taps(self, f4d: Sequence[Tensor] | Tensor) -> list[Tensor]:
        """Validate F_4D and turn it into 4 × (B, c', N', h', w') channels-first views."""
        cfg = self.cfg
        want = cfg.tap_shape()
        if isinstance(f4d, Tensor):
            if f4d.dim() != 6 or f4d.shape[1] != cfg.num_taps:
                raise ConfigError(
                    f"f4d: expected a tensor (B, {cfg.num_taps}, {', '.join(map(str, want))}), "
                    f"found shape {tuple(f4d.shape)}"
                )
            taps = list(f4d.unbind(1))
        else:
            taps = list(f4d)
            if len(taps) != cfg.num_taps:
                raise ConfigError(f"f4d: expected {cfg.num_taps} taps, found {len(taps)}")
        for i, t in enumerate(taps):
            if not isinstance(t, Tensor) or t.dim() != 5 or tuple(t.shape[1:]) != want:
                found = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ConfigError(
                    f"f4d tap {i}: expected (B, N', h', w', c') = (B, {', '.join(map(str, want))}), "
                    f"found {found}"
                )
        if len({t.shape[0] for t in taps}) != 1:
            raise ConfigError(f"f4d: taps disagree on the batch size: {[t.shape[0] for t in taps]}")
        return [t.permute(0, 4, 1, 2, 3) for t in taps]

    def forward_modality(self, name: str, f4d: Sequence[Tensor] | Tensor) -> Tensor:
        """One head only: channels-last map (B, N, H, W, C) or (B, N, h_p, w_p, 6)."""
        if name not in self.heads:
            raise ConfigError(f"modality: {name!r} is not among this model's heads {tuple(self.heads)}")
        return self.heads[name](self.prepare_taps(f4d))

    def forward(self, f4d: Sequence[Tensor] | Tensor, *, modalities: Sequence[str] | None = None,
                raw: bool = False) -> dict[str, Tensor]:
        """Every head (or those in ``modalities``): {modality: channels-last map}.

        ``raw``: outputs before the heads' activations (log-depth instead of depth), as the ED loss wants.
        """
        names = list(self.heads) if modalities is None else list(modalities)
        unknown = [m for m in names if m not in self.heads]
        if unknown:
            raise ConfigError(f"modalities: {unknown} are not among this model's heads {tuple(self.heads)}")
        taps = self.prepare_taps(f4d)
        return {name: self.heads[name](taps, raw=raw) for name in names}

def dpt_stage_shapes(cfg: HeadsConfig, modality: str, batch: int = 1) -> dict[str, tuple]:
    """Shape of every DPT stage of head ``modality``, channels-first (B, C, T, Y, X) as in
    notes/l4p.md §2a, traced on the "meta" device (no memory, no compute)."""
    head = TaskHead(cfg, modality, device="meta")
    taps = [torch.empty(batch, cfg.embed_dim, *cfg.latent_grid, device="meta") for _ in range(cfg.num_taps)]
    stages: dict[str, tuple] = {}
    out = head(taps, stages=stages)
    stages["output"] = tuple(out.shape)
    return stages


def count_parameters(module: nn.Module) -> int:
    """Number of distinct parameters (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters())
