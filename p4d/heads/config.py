"""Configuration of the D_m decoders (the four L4P dense DPT heads).

The defaults are the published L4P sizes (notes/l4p.md §2a/§2b): taps of c' = 1408 channels on an
N' × h' × w' = 8 × 16 × 16 latent grid, outputs for N = 16 frames of H × W = 224 × 224 pixels, and a
camray grid of h_p × w_p = (H/14) × (W/14) = 16 × 16 patches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from p4d.cache_schema.contract import MAP_CHANNELS
from p4d.errors import ConfigError, check_fields

#: Output channels per modality (the cache's channel axis).
MODALITY_CHANNELS: dict[str, int] = MAP_CHANNELS  # one table: the cache contract's (p4d.cache_schema.contract)

#: The released checkpoint's task names (`l4p_model.task_heads.<name>`) for our modalities.
PUBLISHED_TASK_NAMES: dict[str, str] = {
    "depth": "depth",
    "flow": "flow_2d_backward",
    "motion": "dyn_mask",
    "camray": "camray",
}

#: Backward flow t → t−1 has no previous frame at t = 0: frame 0 of every window is invalid
#: (L4P's stitching skips it, dense_heads.py L136-138). Consumers must mask it out.
FLOW_FRAME0_INVALID: bool = True


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"HeadsConfig.{name}: expected a positive int, found {value!r}")
    return value


def _int_tuple(name: str, value: Any, length: int | None) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)):
        raise ConfigError(f"HeadsConfig.{name}: expected a tuple of positive ints, found {value!r}")
    out = tuple(value)
    if length is not None and len(out) != length:
        raise ConfigError(
            f"HeadsConfig.{name}: expected {length} positive ints, found {len(out)}: {value!r}"
        )
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"HeadsConfig.{name}: expected positive ints, found {value!r}")
    return out


@dataclass(frozen=True, kw_only=True)
class HeadsConfig:
    """Sizes of the D_m heads.

    embed_dim: c', channels of each teacher tap.
    latent_grid: (N', h', w'), the teacher's token grid.
    num_frames, image_size: N and (H, W) of the dense maps.
    patch_size: the camray grid is (H / patch_size) × (W / patch_size) = h_p × w_p.
    num_taps: the four encoder layers the DPT reassembles (the DPT has exactly four stages).
    feature_dim, last_dim, layer_dims: DPT widths (head1 outputs feature_dim // 2, as in CroCo).
    modalities: which heads to build, a subset of depth, flow, motion, camray.
    """

    embed_dim: int = 1408
    latent_grid: tuple[int, int, int] = (8, 16, 16)
    num_frames: int = 16
    image_size: tuple[int, int] = (224, 224)
    patch_size: int = 14
    num_taps: int = 4
    feature_dim: int = 256
    last_dim: int = 128
    layer_dims: tuple[int, ...] = (256, 512, 1024, 1024)
    modalities: tuple[str, ...] = ("depth", "flow", "motion", "camray")

    def __post_init__(self) -> None:
        for name in ("embed_dim", "num_frames", "patch_size", "num_taps", "feature_dim", "last_dim"):
            _positive_int(name, getattr(self, name))
        object.__setattr__(self, "latent_grid", _int_tuple("latent_grid", self.latent_grid, 3))
        object.__setattr__(self, "image_size", _int_tuple("image_size", self.image_size, 2))
        object.__setattr__(self, "layer_dims", _int_tuple("layer_dims", self.layer_dims, None))
        if self.num_taps != 4:
            raise ConfigError(
                f"HeadsConfig.num_taps: the DPT reassembles exactly 4 taps, found {self.num_taps}"
            )
        if len(self.layer_dims) != self.num_taps:
            raise ConfigError(
                f"HeadsConfig.layer_dims: expected one width per tap ({self.num_taps}), "
                f"found {len(self.layer_dims)}: {self.layer_dims}"
            )
        if self.feature_dim < 2:
            raise ConfigError(
                f"HeadsConfig.feature_dim: expected >= 2 (head1 outputs feature_dim // 2), "
                f"found {self.feature_dim}"
            )
        h, w = self.image_size
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(
                f"HeadsConfig.image_size: expected multiples of patch_size={self.patch_size} "
                f"(the camray grid is one ray per patch), found {self.image_size}"
            )
        mods = self.modalities
        if isinstance(mods, str) or not isinstance(mods, (tuple, list)) or not mods:
            raise ConfigError(
                f"HeadsConfig.modalities: expected a non-empty tuple from "
                f"{tuple(MODALITY_CHANNELS)}, found {mods!r}"
            )
        mods = tuple(mods)
        unknown = [m for m in mods if m not in MODALITY_CHANNELS]
        if unknown:
            raise ConfigError(
                f"HeadsConfig.modalities: unknown {unknown}; expected a subset of "
                f"{tuple(MODALITY_CHANNELS)}"
            )
        if len(set(mods)) != len(mods):
            raise ConfigError(f"HeadsConfig.modalities: duplicates in {mods}")
        object.__setattr__(self, "modalities", mods)

    @property
    def ray_grid(self) -> tuple[int, int]:
        """(h_p, w_p): the camray grid, one ray per patch."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    def output_shape(self, modality: str) -> tuple[int, int, int, int]:
        """Channels-last shape of one clip's map: (N, H, W, C), or (N, h_p, w_p, 6) for camray."""
        if modality not in MODALITY_CHANNELS:
            raise ConfigError(
                f"modality: unknown {modality!r}; expected one of {tuple(MODALITY_CHANNELS)}"
            )
        spatial = self.ray_grid if modality == "camray" else self.image_size
        return (self.num_frames, *spatial, MODALITY_CHANNELS[modality])

    def tap_shape(self) -> tuple[int, int, int, int]:
        """Shape of one tap without the batch axis: (N', h', w', c')."""
        return (*self.latent_grid, self.embed_dim)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadsConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        check_fields("HeadsConfig", cls, data)
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


#: The published L4P head sizes.
L4P_HEADS = HeadsConfig()

#: The tiny example used in tests and by the teacher's tiny preset.
TINY_HEADS = HeadsConfig(
    embed_dim=64,
    latent_grid=(8, 8, 8),
    image_size=(112, 112),
    feature_dim=16,
    last_dim=8,
    layer_dims=(16, 32, 64, 64),
)
