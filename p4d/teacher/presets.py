"""Teacher presets: the published L4P architecture (``l4p``) and a small one with the same code:
``tiny`` (weights trained on synthetic scenes, shipped in the package) and ``tiny-random`` (seeded random init).

A preset holds the architecture (encoder and DPT head dims), the input contract (N frames of
H×W pixels, ImageNet mean/std) and where the real weights come from. Weight provenance is kept
apart from the arch dims only by being a separate field; there is one published layout (L4P).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from p4d.errors import ConfigError

if TYPE_CHECKING:
    from p4d.heads import HeadsConfig

ALL_MODALITIES: tuple[str, ...] = ("depth", "flow", "motion", "camray")


@dataclass(frozen=True, kw_only=True)
class TeacherPreset:
    """One teacher architecture.

    The encoder maps a clip (B, 3, N, H, W) to a token grid N' × h' × w' × c' with
    N' = N / tubelet, h' = H / patch_size, w' = W / patch_size, c' = embed_dim; the dense heads
    read the encoder layers listed in ``taps`` (0 = patch embedding, i = block i, depth = final norm).
    """

    name: str
    num_frames: int = 16
    img_size: int = 224
    patch_size: int = 14
    tubelet: int = 2
    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_dim: int = 6144
    taps: tuple[int, ...] = (14, 21, 28, 36)
    feature_dim: int = 256
    last_dim: int = 128
    layer_dims: tuple[int, ...] = (256, 512, 1024, 1024)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layer_norm_eps: float = 1e-6
    weights: str = ""
    packaged: str = ""  # a weights file shipped in p4d/teacher/weights/ that build_teacher loads by default

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> ConfigError:
            return ConfigError(
                f"teacher preset {self.name!r}: {field} must be {expected}, got {getattr(self, field)!r}"
            )

        for field in ("num_frames", "img_size", "patch_size", "tubelet", "embed_dim", "depth", "num_heads", "mlp_dim"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) <= 0:
                raise bad(field, "a positive int")
        if self.img_size % self.patch_size:
            raise bad("img_size", f"a multiple of patch_size={self.patch_size}")
        if self.num_frames % self.tubelet:
            raise bad("num_frames", f"a multiple of tubelet={self.tubelet}")
        if self.embed_dim % self.num_heads:
            raise bad("embed_dim", f"a multiple of num_heads={self.num_heads}")
        if len(self.taps) != 4 or any(not 0 <= t <= self.depth for t in self.taps):
            raise bad("taps", f"4 layer indices in [0, {self.depth}]")
        if list(self.taps) != sorted(set(self.taps)):
            raise bad("taps", "strictly increasing")
        if len(self.layer_dims) != 4:
            raise bad("layer_dims", "4 channel counts, one per tap")

    @property
    def packaged_weights(self):
        """Path of the shipped weights file (None if the preset has none)."""
        if not self.packaged:
            return None
        from pathlib import Path

        return Path(__file__).parent / "weights" / self.packaged

    @property
    def latent_grid(self) -> tuple[int, int, int, int]:
        """(N', h', w', c'): the encoder token grid of one clip."""
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet, side, side, self.embed_dim)

    @property
    def num_tokens(self) -> int:
        """N'·h'·w', the length of the flattened token sequence (2048 for l4p)."""
        t, h, w, _ = self.latent_grid
        return t * h * w

    @property
    def ray_grid(self) -> tuple[int, int]:
        """(h_p, w_p): the camray head's per-patch grid (one Plücker ray per patch per frame)."""
        side = self.img_size // self.patch_size
        return (side, side)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def heads_config(self, modalities: tuple[str, ...] = ALL_MODALITIES) -> HeadsConfig:
        """The p4d.heads config of this teacher's D_m decoders."""
        from p4d.heads import HeadsConfig

        n, h, w, _ = self.latent_grid
        return HeadsConfig(
            embed_dim=self.embed_dim,
            latent_grid=(n, h, w),
            num_frames=self.num_frames,
            image_size=(self.img_size, self.img_size),
            patch_size=self.patch_size,
            num_taps=len(self.taps),
            feature_dim=self.feature_dim,
            last_dim=self.last_dim,
            layer_dims=tuple(self.layer_dims),
            modalities=tuple(modalities),
        )

    def describe(self) -> str:
        """One line: input, encoder, taps and weights."""
        n, h, w, c = self.latent_grid
        return (
            f"{self.num_frames}x{self.img_size}x{self.img_size} clips -> {n}x{h}x{w}x{c} tokens; "
            f"ViT depth {self.depth}, width {self.embed_dim}, {self.num_heads} heads, MLP {self.mlp_dim}; "
            f"taps {list(self.taps)}; DPT {self.feature_dim}/{self.last_dim}; weights: {self.weights.split(';')[0]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists), e.g. for cache root attrs."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


_TINY = dict(
    num_frames=16,
    img_size=112,
    embed_dim=64,
    depth=4,
    num_heads=4,
    mlp_dim=256,
    taps=(1, 2, 3, 4),
    feature_dim=16,
    last_dim=8,
    layer_dims=(16, 32, 64, 64),
)

PRESETS: dict[str, TeacherPreset] = {
    "l4p": TeacherPreset(
        name="l4p",
        weights=(
            "NVlabs/L4P release l4p_depth_flow_2d3dtrack_camray_dynseg_v1.ckpt (Google Drive id "
            "1jN3VHBeDoYWZHFMT7VXV2tVmfadR7WgI, via weights/download.sh); code CC BY-NC-SA 4.0, "
            "weights carry no separate licence (NC terms presumably apply); pass the local path with --teacher-weights"
        ),
    ),
    "tiny": TeacherPreset(
        name="tiny",
        **_TINY,
        weights=("trained on synthetic scenes against their analytic depth/flow/motion/camray "
                 "(p4d/teacher/train_tiny.py, 3000 token-flow encoder steps + 500 steps, ~15 CPU-minutes); shipped as p4d/teacher/weights/tiny.safetensors"),
        packaged="tiny.safetensors",
    ),
    "tiny-random": TeacherPreset(
        name="tiny-random",
        **_TINY,
        weights="none published: seeded random init (tests, smoke runs)",
    ),
}


def get_preset(name: str | TeacherPreset, *, flag: str = "--teacher") -> TeacherPreset:
    """The preset called ``name``; a TeacherPreset is returned as is. ``flag`` names the option in errors."""
    if isinstance(name, TeacherPreset):
        return name
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"{flag} {name!r}: unknown preset (known: {', '.join(PRESETS)})"
        ) from None
