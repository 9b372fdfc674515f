"""What a cache holds: :class:`CacheSpec` (shapes, taps, dtypes, codec, provenance) and :class:`VideoEntry`.

Shapes use the paper's names: N, H, W (frames, pixels of the teacher input), N', h', w', c'
(teacher latent grid), h_p, w_p (camray patch grid).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from p4d.cache_schema.codecs import DEFAULT_LATENT_CODEC, LATENT_CODEC_ALIASES, LATENT_CODECS, resolve_latent_codec
from p4d.cache_schema.map_codecs import DEFAULT_MAP_CODEC, MAP_CODECS
from p4d.errors import ConfigError, check_fields

#: v2: a crc32c checksum on every chunk and shard index, the creation marker ``created.json``, and
#: ``VideoEntry.note``. v1 stores (no checksums) are read-only: read, summarised and verified, never written.
SCHEMA_VERSION: int = 2
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
MODALITIES: tuple[str, ...] = ("depth", "flow", "motion", "camray")
MAP_DTYPES: tuple[str, ...] = ("float16", "float32")
MAP_CHANNELS: dict[str, int] = {"depth": 1, "flow": 2, "motion": 1, "camray": 6}


def _fail(name: str, expected: str, got: Any) -> None:
    raise ConfigError(f"CacheSpec.{name}: expected {expected}, got {got!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(name, "a positive int", value)


@dataclass(frozen=True, kw_only=True)
class CacheSpec:
    """Everything that fixes the layout and meaning of a cache store.

    ``taps`` are the encoder layer indices F_4D holds (L4P: 14, 21, 28, 36); latents are
    ``(taps, N', h', w', c')`` per clip, maps ``(N, H, W, ch)``, camray ``(N, h_p, w_p, 6)``.
    ``teacher`` = {name, preset, config, weights_hash}; ``sampling`` = {num_frames, policy,
    frame_stride}; ``spatial`` = {input_size: [H, W], resize, rotation}; missing keys of
    ``sampling``/``spatial`` are filled from the shape fields, contradicting ones are refused.
    ``latent_codec_version``: the stored format of the codec (``LatentCodec.version``; dpcm-channel
    v2 added level 1's outlier arrays); None means the current one. A store's spec written before
    the field existed reads as version 1 (:meth:`from_dict`); such stores are read, never written.
    ``map_codec``: how maps are stored (:mod:`p4d.cache_schema.map_codecs`): ``quant16`` (new stores:
    int16 codes + per-clip (step, offset), a stated error bound per map, float16 fallback per clip)
    or ``float16`` (floats of ``map_dtype``, the layout of every store made before the field, which
    :meth:`from_dict` reads as such; an older p4d refuses a spec with this field, never misreads it).
    """

    modalities: tuple[str, ...] = MODALITIES
    taps: tuple[int, ...] = (14, 21, 28, 36)
    num_frames: int = 16
    height: int = 224
    width: int = 224
    latent_frames: int = 8
    latent_height: int = 16
    latent_width: int = 16
    latent_dim: int = 1408
    ray_height: int = 16
    ray_width: int = 16
    map_dtype: str = "float16"
    latent_codec: str = DEFAULT_LATENT_CODEC
    latent_codec_version: int | None = None  # None: the codec's current format; see from_dict
    map_codec: str = DEFAULT_MAP_CODEC
    clips_per_shard: int = 16
    teacher: dict = field(default_factory=lambda: {"name": "l4p", "preset": "l4p", "config": {}, "weights_hash": ""})
    sampling: dict = field(default_factory=dict)
    spatial: dict = field(default_factory=dict)
    normalisation: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        mods = tuple(self.modalities) if isinstance(self.modalities, (list, tuple)) else self.modalities
        if not isinstance(mods, tuple) or any(m not in MODALITIES for m in mods) or len(set(mods)) != len(mods):
            _fail("modalities", f"distinct names from {MODALITIES}", self.modalities)
        object.__setattr__(self, "modalities", mods)
        taps = tuple(self.taps) if isinstance(self.taps, (list, tuple)) else self.taps
        if (not isinstance(taps, tuple) or not taps or len(set(taps)) != len(taps)
                or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in taps)):
            _fail("taps", "a non-empty tuple of distinct non-negative layer indices", self.taps)
        object.__setattr__(self, "taps", taps)
        for name in ("num_frames", "height", "width", "latent_frames", "latent_height", "latent_width",
                     "latent_dim", "ray_height", "ray_width", "clips_per_shard"):
            _positive_int(name, getattr(self, name))
        if self.map_dtype not in MAP_DTYPES:
            _fail("map_dtype", f"one of {MAP_DTYPES}", self.map_dtype)
        if self.map_codec not in MAP_CODECS:
            _fail("map_codec", f"one of {MAP_CODECS}", self.map_codec)
        if self.map_codec == "quant16" and self.map_dtype != "float16":
            _fail("map_dtype", "float16 with map_codec 'quant16' (its per-clip fallback is float16; "
                  "map_dtype float32 needs map_codec 'float16')", self.map_dtype)
        object.__setattr__(self, "latent_codec", resolve_latent_codec(self.latent_codec))  # exact -> bfloat16
        if self.latent_codec not in LATENT_CODECS:
            _fail("latent_codec", f"one of {tuple(LATENT_CODECS) + tuple(LATENT_CODEC_ALIASES)}", self.latent_codec)
        current = LATENT_CODECS[self.latent_codec].version
        if self.latent_codec_version is None:
            object.__setattr__(self, "latent_codec_version", current)
        elif (isinstance(self.latent_codec_version, bool) or not isinstance(self.latent_codec_version, int)
              or not 1 <= self.latent_codec_version <= current):
            _fail("latent_codec_version", f"a format version of {self.latent_codec} in 1..{current}",
                  self.latent_codec_version)
        for name in ("teacher", "sampling", "spatial", "normalisation"):
            if not isinstance(getattr(self, name), dict):
                _fail(name, "a dict", getattr(self, name))
        missing = {"name", "preset", "config", "weights_hash"} - set(self.teacher)
        if missing:
            _fail("teacher", f"a dict with keys name, preset, config, weights_hash (missing {sorted(missing)})",
                  self.teacher)
        sampling = {"num_frames": self.num_frames, "policy": "uniform", "frame_stride": 1, **self.sampling}
        if sampling["num_frames"] != self.num_frames:
            _fail("sampling['num_frames']", f"num_frames = {self.num_frames}", sampling["num_frames"])
        spatial = {"input_size": [self.height, self.width], "resize": "bilinear, non-aspect-preserving",
                   "rotation": "applied", **self.spatial}
        if list(spatial["input_size"]) != [self.height, self.width]:
            _fail("spatial['input_size']", f"[height, width] = {[self.height, self.width]}", spatial["input_size"])
        spatial["input_size"] = list(spatial["input_size"])
        object.__setattr__(self, "sampling", sampling)
        object.__setattr__(self, "spatial", spatial)

    # --- derived shapes (per clip) -------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int, int, int, int]:
        """F_4D of one clip: (taps, N', h', w', c')."""
        return (len(self.taps), self.latent_frames, self.latent_height, self.latent_width, self.latent_dim)

    def map_shape(self, modality: str) -> tuple[int, int, int, int]:
        """One clip's map: (N, H, W, ch), or (N, h_p, w_p, 6) for camray."""
        if modality == "camray":
            return (self.num_frames, self.ray_height, self.ray_width, 6)
        return (self.num_frames, self.height, self.width, MAP_CHANNELS[modality])

    def num_shards(self, num_clips: int) -> int:
        return math.ceil(num_clips / self.clips_per_shard)

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["modalities"] = list(self.modalities)
        d["taps"] = list(self.taps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CacheSpec":
        check_fields("CacheSpec", cls, d)
        kw = dict(d)
        kw.setdefault("latent_codec_version", 1)  # written before codec formats had versions
        kw.setdefault("map_codec", "float16")  # written before map codecs: float maps
        for k in ("modalities", "taps"):
            if k in kw and isinstance(kw[k], list):
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def compatible_with(self, other: "CacheSpec") -> list[str]:
        """Human-readable differences between this spec (the store's) and ``other`` (requested).

        An empty list means a precompute run with ``other`` may fill a store created with ``self``.
        Nested dicts (e.g. ``teacher.config``) are compared key by key, so each entry names one
        differing leaf (``teacher.config.depth: store has 12, requested 4``) with short values.
        """
        diffs: list[str] = []
        _diff_into(diffs, "", self.to_dict(), other.to_dict())
        return diffs


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _diff_into(diffs: list[str], prefix: str, a: Any, b: Any) -> None:
    """Append ``prefix.key: store has A, requested B`` for every differing leaf of ``a`` vs ``b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _diff_into(diffs, f"{prefix}.{key}" if prefix else str(key), a.get(key, "<absent>"),
                       b.get(key, "<absent>"))
    elif a != b:
        diffs.append(f"{prefix}: store has {_short(a)}, requested {_short(b)}")


@dataclass(frozen=True, kw_only=True)
class VideoEntry:
    """One row of ``videos.json``: a source video and how many clips it contributes.

    ``content_hash`` fingerprints the file (e.g. a hash of its size and first MiB) so a replaced
    file is noticed; ``rotation`` is the display rotation in degrees (applied when decoding).
    ``note``: what the planner found: with ``num_frames`` 0, why the video is unusable (its one clip
    is recorded failed with this reason); otherwise a warning (e.g. fewer frames than the container
    declares), empty when nothing. Shown by ``p4d cache summary``.
    """

    path: str
    size_bytes: int
    content_hash: str
    fps: float
    duration: float
    num_frames: int
    width: int
    height: int
    rotation: int
    num_clips: int
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(f"VideoEntry.path: expected a non-empty str, got {self.path!r}")
        for name in ("size_bytes", "num_frames", "width", "height", "num_clips"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"VideoEntry.{name} of {self.path}: expected an int >= 0, got {v!r}")
        for name in ("fps", "duration"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"VideoEntry.{name} of {self.path}: expected a finite number >= 0, got {v!r}")
        if not isinstance(self.rotation, int) or self.rotation % 90:
            raise ConfigError(f"VideoEntry.rotation of {self.path}: expected a multiple of 90, got {self.rotation!r}")
        if not isinstance(self.note, str):
            raise ConfigError(f"VideoEntry.note of {self.path}: expected a str, got {self.note!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoEntry":
        known = {f.name for f in dataclasses.fields(cls)}
        if isinstance(d, dict) and "note" not in d:  # schema v1 rows have no note
            d = {**d, "note": ""}
        if not isinstance(d, dict) or set(d) != known:
            raise ConfigError(f"VideoEntry: expected keys {sorted(known)}, got {sorted(d) if isinstance(d, dict) else d!r}")
        return cls(**d)
