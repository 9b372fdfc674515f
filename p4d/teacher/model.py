"""The frozen L4P teacher: preprocessing, the encoder E_4D and the D_m heads (p4d.heads).

One call maps a clip of N frames to F_4D (the encoder layers the dense heads tap) and the
heads' maps P_m, in the cache's layouts::

    frames (B, N, H, W, 3) uint8  ──► (B, 3, N, H, W) ImageNet-normalised ──► E_4D taps
        ──► {"f4d": (B, taps, N', h', w', c'), "depth": (B, N, H, W, 1), "flow": (B, N, H, W, 2),
             "motion": (B, N, H, W, 1), "camray": (B, N, h_p, w_p, 6)}

No windowing: L4P runs long videos as overlapping 16-frame windows and stitches the heads'
outputs (notes/l4p.md §4), but the cache stores one clip of exactly N = 16 sampled frames per
row, which is one window, so every clip is a single teacher pass. Frames must already be at the
preset size (224 × 224 for l4p; resizing is p4d.video's job); other N, H or W are rejected.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from p4d.errors import ConfigError
from p4d.heads import DenseHeads
from p4d.teacher.encoder import VideoMAEv2Encoder
from p4d.teacher.presets import ALL_MODALITIES, TeacherPreset, get_preset

log = logging.getLogger(__name__)


class L4PTeacher(nn.Module):
    """E_4D (``encoder``) + D_m (``heads``) of one preset. Build it with :func:`build_teacher`."""

    def __init__(
        self,
        preset: TeacherPreset,
        *,
        modalities: tuple[str, ...] = ALL_MODALITIES,
        attn_backend: str = "auto",
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.preset = preset
        self.encoder = VideoMAEv2Encoder.from_preset(preset, attn_backend=attn_backend, device=device, dtype=dtype)
        self.heads = DenseHeads(preset.heads_config(tuple(modalities)), device=device, dtype=dtype)
        self.register_buffer("mean", torch.tensor(preset.mean, device=device).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preset.std, device=device).view(1, 3, 1, 1, 1), persistent=False)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.heads.heads)

    def reset_buffers(self) -> None:
        """Recompute the non-persistent buffers (position table, mean/std) on the parameters' device,
        e.g. after the parameters of a model built on "meta" were assigned from a checkpoint."""
        device = self.encoder.patch_embed.proj.weight.device
        self.encoder.reset_buffers(device=device)
        self.mean = torch.tensor(self.preset.mean, device=device).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(self.preset.std, device=device).view(1, 3, 1, 1, 1)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, N, H, W, 3) -> ImageNet-normalised (B, 3, N, H, W) in the encoder's dtype.

        A floating tensor is taken as already normalised and must be (B, 3, N, H, W).
        """
        p = self.preset
        want = (p.num_frames, p.img_size, p.img_size)
        dtype = self.encoder.patch_embed.proj.weight.dtype
        if frames.dtype == torch.uint8:
            if frames.ndim != 5 or frames.shape[-1] != 3:
                raise ConfigError(f"frames: expected uint8 (B, N, H, W, 3), got shape {tuple(frames.shape)}")
            got = tuple(frames.shape[1:4])
        elif frames.is_floating_point():
            if frames.ndim != 5 or frames.shape[1] != 3:
                raise ConfigError(
                    f"frames: expected normalised float (B, 3, N, H, W), got shape {tuple(frames.shape)}"
                )
            got = tuple(frames.shape[2:5])
        else:
            raise ConfigError(f"frames: expected uint8 (B, N, H, W, 3) or float (B, 3, N, H, W), got {frames.dtype}")
        if got != want:
            raise ConfigError(
                f"frames: teacher preset {p.name!r} takes clips of N={want[0]} frames at H×W={want[1]}×{want[2]}, "
                f"got N={got[0]}, H×W={got[1]}×{got[2]}; sample exactly {want[0]} frames and resize them first "
                f"(there is no windowing: each cached clip is one {want[0]}-frame teacher window)"
            )
        if frames.dtype == torch.uint8:
            x = frames.permute(0, 4, 1, 2, 3).to(torch.float32).div_(255.0)
            x = (x - self.mean.float()) / self.std.float()
            return x.to(dtype)
        return frames.to(dtype)

    def forward_f4d(self, frames: torch.Tensor) -> torch.Tensor:
        """F_4D only: (B, taps, N', h', w', c')."""
        return torch.stack(self.encoder.forward_intermediates(self.preprocess(frames), self.preset.taps), dim=1)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames: uint8 (B, N, H, W, 3) or normalised float (B, 3, N, H, W).

        Returns {"f4d": (B, taps, N', h', w', c')} plus one channels-last map per head: depth
        (B, N, H, W, 1), flow (B, N, H, W, 2), motion (B, N, H, W, 1), camray (B, N, h_p, w_p, 6).
        """
        taps = self.encoder.forward_intermediates(self.preprocess(frames), self.preset.taps)
        out = {"f4d": torch.stack(taps, dim=1)}
        out.update(self.heads(taps))
        return out


def build_teacher(
    preset: str | TeacherPreset,
    *,
    weights: str | Path | None = None,
    device=None,
    dtype=None,
    modalities: tuple[str, ...] = ALL_MODALITIES,
    attn_backend: str = "auto",
    seed: int = 0,
) -> L4PTeacher:
    """The frozen teacher (eval mode, no parameter gradients) of ``preset``.

    weights: None -> the preset's shipped weights (``tiny``: trained on synthetic scenes, float16 on disk,
    float32 unless ``dtype``) or, for a preset without any, seeded random init (``tiny-random``, ``l4p``
    in tests and benchmarks; ``seed``); a path -> the released L4P checkpoint or its .safetensors export,
    through :func:`p4d.teacher.checkpoint.load_teacher_weights` (strict). With weights, the model is built
    on the meta device and the checkpoint tensors are assigned, so no memory is spent on a throw-away init.
    """
    p = get_preset(preset)
    if weights is None and p.packaged_weights is not None:
        if not p.packaged_weights.is_file():
            raise ConfigError(f"teacher preset {p.name!r}: its shipped weights {p.packaged_weights} are missing; "
                              f"regenerate them with `python -m p4d.teacher.train_tiny`, or use {p.name}-random")
        weights, dtype = p.packaged_weights, dtype or torch.float32
    if weights is None:
        if torch.device(device or "cpu").type == "meta":
            model = L4PTeacher(p, modalities=modalities, attn_backend=attn_backend, device="meta", dtype=dtype)
        else:
            with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
                torch.manual_seed(seed)
                model = L4PTeacher(p, modalities=modalities, attn_backend=attn_backend)
                model.encoder.init_weights(torch.Generator().manual_seed(seed))
            model = model.to(device=device, dtype=dtype)
    else:
        from p4d.teacher.checkpoint import load_teacher_weights

        model = L4PTeacher(p, modalities=modalities, attn_backend=attn_backend, device="meta")
        report = load_teacher_weights(model, weights)
        log.info("%s", report.summary())
        model.reset_buffers()
        model = model.to(device=device, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    return model
