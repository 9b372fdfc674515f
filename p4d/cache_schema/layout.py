"""The arrays of a cache store: path, shape, dtype, chunks, shards, codec chain, dimension names.

One chunk = one clip (one clip and tap for ``latents/f4d``); one shard = S clips on the clip
axis for every clip-indexed array, ``clips/*`` included, so a shard of clips is one file per
array and the unit of work of one writer. Every chunk ends in a crc32c checksum (the last codec
of each chain) and so does every shard index (zarr's sharding default, checked by
:func:`checksum_problems`): a flipped byte anywhere in a shard file fails the read. Dimension names have one size per name within a
group, so ``xarray.open_zarr(store, group=g, consolidated=False)`` opens every group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.cache_schema.fidelity import CHECKED_CODECS, CODEC_LEVELS, FALLBACK_PART
from p4d.cache_schema.map_codecs import MAP_QUANT, quant_part
from p4d.cache_schema.spec import CacheSpec

GROUPS = ("latents", "maps", "clips")
MAP_DIMS = {
    "depth": ("clip", "frame", "y", "x", "depth_c"),
    "flow": ("clip", "frame", "y", "x", "flow_c"),
    "motion": ("clip", "frame", "y", "x", "motion_c"),
    "camray": ("clip", "frame", "py", "px", "ray_c"),
}
MAP_DESCRIPTIONS = {
    "depth": "depth (exp of the head's log-depth), per pixel of the teacher input",
    "flow": "backward optical flow t -> t-1 in pixels (x, y); frame 0 is invalid",
    "motion": "dynamic-mask logits (sigmoid > 0.5 = moving)",
    "camray": "Pluecker rays (direction xyz, moment xyz) per patch, relative to frame 0's camera",
}
STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
STATUS_NAMES = {STATUS_PENDING: "pending", STATUS_DONE: "done", STATUS_FAILED: "failed"}


def _map_compressors() -> list:
    """Blosc zstd level 3, byte shuffle. Measured on 16x224x224 float16 natural-statistics maps
    (``p4d.bench.latents.natural_maps``, one core): level 5 stores 0.74-0.83 of the float16 bytes
    but encodes at 9-15 ms per map; level 3 stores 0.80-0.90 at 2.4-4.5 ms, which keeps the map
    encode of one clip well under an L4P forward on a GPU."""
    return [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]


def _small_compressors() -> list:
    return [ZstdCodec(level=3)]


def _checksummed(compressors: Callable[[], list]) -> Callable[[], list]:
    """The chain ``compressors`` followed by a crc32c checksum of the compressed chunk."""
    def chain() -> list:
        return [*compressors(), Crc32cCodec()]
    return chain


def checksum_problems(arr) -> list[str]:
    """What is missing from ``arr``'s crc32c coverage: the chunk chain or the shard index."""
    problems = []
    sharding = arr.metadata.codecs[0] if arr.metadata.codecs else None
    inner = list(getattr(sharding, "codecs", None) or arr.metadata.codecs)
    index = list(getattr(sharding, "index_codecs", None) or ())
    if not inner or not isinstance(inner[-1], Crc32cCodec):
        problems.append("chunks carry no crc32c checksum")
    if sharding is not None and hasattr(sharding, "index_codecs") and not any(isinstance(c, Crc32cCodec) for c in index):
        problems.append("the shard index carries no crc32c checksum")
    return problems


@dataclass(frozen=True)
class ArrayLayout:
    """How one array of the store is laid out."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...]
    dims: tuple[str, ...]
    compressors: Callable[[], list]
    fill_value: object
    description: str
    raw_itemsize: int = 4  # bytes per element of the "raw" baseline (float32 for targets)

    @property
    def group(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.path.split("/", 1)[1]

    def clip_shape(self) -> tuple[int, ...]:
        return self.shape[1:]


def array_layouts(spec: CacheSpec, num_clips: int) -> dict[str, ArrayLayout]:
    """Every array of a store with ``num_clips`` clips, keyed by path (e.g. ``maps/depth``)."""
    s = spec.clips_per_shard
    out: dict[str, ArrayLayout] = {}
    codec = LATENT_CODECS[spec.latent_codec]
    lat = (num_clips,) + spec.latent_shape
    for part in codec.stored_parts(spec.latent_codec_version):
        shape = part.shape(lat)
        if part.kind == "full":
            chunks = (1, 1) + shape[2:]  # one clip, one tap
        else:
            chunks = (1,) + shape[1:]
        out[f"latents/{part.name}"] = ArrayLayout(
            path=f"latents/{part.name}", shape=shape, dtype=part.dtype, chunks=chunks,
            shards=(s,) + shape[1:], dims=part.dims(("clip", "tap")), compressors=_checksummed(part.compressors),
            fill_value=part.fill_value, description=f"{part.description} (codec {codec.name})",
            raw_itemsize=4 if part.kind == "full" else 0,
        )
    if codec.name in CHECKED_CODECS:  # the self-check's bfloat16 fallback (p4d.cache_schema.fidelity)
        bf16 = LATENT_CODECS["bfloat16"].parts[0]
        out[f"latents/{FALLBACK_PART}"] = ArrayLayout(
            path=f"latents/{FALLBACK_PART}", shape=lat, dtype=bf16.dtype, chunks=(1, 1) + lat[2:],
            shards=(s,) + lat[1:], dims=bf16.dims(("clip", "tap")), compressors=_checksummed(bf16.compressors),
            fill_value=0, description="F_4D as bfloat16 bits of the clips whose codec failed the fidelity check "
                                      "(clips/latent_codec = 2); written only for those clips",
            raw_itemsize=0,
        )
    quantised = spec.map_codec == "quant16"
    for m in spec.modalities:
        shape = (num_clips,) + spec.map_shape(m)
        out[f"maps/{m}"] = ArrayLayout(
            path=f"maps/{m}", shape=shape, dtype="int16" if quantised else spec.map_dtype, chunks=(1,) + shape[1:],
            shards=(s,) + shape[1:], dims=MAP_DIMS[m], compressors=_checksummed(_map_compressors),
            fill_value=0 if quantised else float("nan"),
            description=MAP_DESCRIPTIONS[m] + (f"; quant16 codes, {MAP_QUANT[m].describe()}" if quantised else ""),
        )
        if quantised:
            qshape = (num_clips, 2, shape[-1])
            out[f"maps/{quant_part(m)}"] = ArrayLayout(
                path=f"maps/{quant_part(m)}", shape=qshape, dtype="float32", chunks=(1,) + qshape[1:],
                shards=(s,) + qshape[1:], dims=("clip", "quant", MAP_DIMS[m][-1]),
                compressors=_checksummed(_small_compressors), fill_value=float("nan"),
                description=f"(step, offset) per channel of maps/{m}: value = {'exp' if MAP_QUANT[m].log else ''}"
                            f"(q * step + offset); step NaN: the clip missed the bound and is stored as float16",
                raw_itemsize=0,
            )
    n = spec.num_frames
    for name, dtype, shape, dims, fill, desc in (
        ("frame_index", "int32", (num_clips, n), ("clip", "frame"), -1, "frames decoded from the source video"),
        ("timestamp", "float32", (num_clips, n), ("clip", "frame"), float("nan"),
         "seconds since the stream's first decoded frame (TPE input)"),
        ("video", "int32", (num_clips,), ("clip",), -1, "row of videos.json"),
        ("status", "uint8", (num_clips,), ("clip",), STATUS_PENDING, "0 pending, 1 done, 2 failed"),
    ) + ((("latent_codec", "uint8", (num_clips,), ("clip",), 0,
           "F_4D codec level of the clip: " + ", ".join(f"{k} {v}" for k, v in CODEC_LEVELS.items())),)
         if codec.name in CHECKED_CODECS else ()):
        out[f"clips/{name}"] = ArrayLayout(
            path=f"clips/{name}", shape=shape, dtype=dtype, chunks=(1,) + shape[1:], shards=(s,) + shape[1:],
            dims=dims, compressors=_checksummed(_small_compressors), fill_value=fill, description=desc,
            raw_itemsize=np.dtype(dtype).itemsize,
        )
    return out


def dims_description(spec: CacheSpec) -> dict[str, str]:
    """Meaning and size of every dimension name (stored in the root attrs)."""
    return {
        "clip": "clip index (video-major order, see clips/video and videos.json)",
        "tap": f"encoder layer tapped, layers {list(spec.taps)}",
        "t4d": f"N' = {spec.latent_frames} latent frames",
        "h4d": f"h' = {spec.latent_height} latent rows",
        "w4d": f"w' = {spec.latent_width} latent columns",
        "c4d": f"c' = {spec.latent_dim} latent channels",
        "frame": f"N = {spec.num_frames} sampled frames",
        "y": f"H = {spec.height} pixel rows of the teacher input",
        "x": f"W = {spec.width} pixel columns of the teacher input",
        "py": f"h_p = {spec.ray_height} patch rows (camray)",
        "px": f"w_p = {spec.ray_width} patch columns (camray)",
        "depth_c": "1 (depth)",
        "flow_c": "2 (dx, dy)",
        "motion_c": "1 (logit)",
        "ray_c": "6 (direction xyz, moment xyz)",
        "quant": "2 (step, offset) of a quant16 map (p4d.cache_schema.map_codecs)",
    }


def raw_float32_bytes_per_clip(spec: CacheSpec) -> dict[str, int]:
    """Bytes of one clip's targets as raw float32, per group (the baseline of ``ratio``)."""
    lat = 4 * math.prod(spec.latent_shape)
    maps = sum(4 * math.prod(spec.map_shape(m)) for m in spec.modalities)
    return {"latents": lat, "maps": maps}
