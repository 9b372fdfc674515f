"""Map codecs: how depth / flow / motion / camray are stored, each with a stated error bound.

A store's ``CacheSpec.map_codec`` names one of :data:`MAP_CODECS`:

* ``float16`` (format of stores made before map codecs): maps stored as floats of
  ``CacheSpec.map_dtype`` (float16 by default: relative error <= 2^-11 = 0.049 % in range),
  blosc-zstd byte shuffle.
* ``quant16`` (default of new stores): per clip and channel, ``maps/<m>`` int16 codes q and
  ``maps/<m>_quant`` (clips, 2, ch) float32 = (step, offset), value ``v = q * step + offset``
  (float32 multiply, then add), and for depth ``depth = exp(v)`` (computed in float64, rounded to
  float32, so numpy and torch decodes agree bit for bit). The step is fixed per map
  (below), so each map's maximum error is a stated constant; the offset centres the clip's range.
  A flow, motion or camray channel whose std in the clip is under 8 steps gets the finer step
  std / 8 (a map that barely moves keeps its shape; the error only gets smaller).

  ========  ==================  ======================  =========================================
  map       stored              bound (max per clip)     teacher's own error, for scale
  ========  ==================  ======================  =========================================
  depth     log-depth           0.25 % relative          depth abs_rel of video-depth models:
                                                         several % to tens of % (>= 20x the bound)
  flow      pixels              1/16 px absolute         flow EPE: ~1 px and more (>= 16x)
  motion    logits              1/32 logit absolute      sigmoid(logit) moves <= 1/128
  camray    Pluecker ray units  1e-4 absolute            direction error 1e-4 rad = 0.006 deg
  ========  ==================  ======================  =========================================

  Every clip is checked at write time: the codes are decoded exactly as a reader does and the
  maximum error against the float32 source compared with the bound. A clip that misses it (a
  range wider than 65,536 steps, NaN/Inf, depth <= 0) is stored as float16 instead: its
  ``maps/<m>`` row holds float16 bit patterns (viewed as int16) and its step is NaN, the clip's
  fallback mark (shown by ``p4d cache summary``).

Shapes: a map of S clips is (S, N, H, W, ch) (camray (S, N, h_p, w_p, 6)); statistics per clip
and channel are over (N, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from p4d.errors import CacheSchemaError

__all__ = ["MAP_CODECS", "DEFAULT_MAP_CODEC", "MapQuant", "MAP_QUANT", "QUANT_PART", "quant_part",
           "encode_map", "decode_map", "roundtrip_map", "map_error", "is_fallback", "map_codec_attrs"]

MAP_CODECS: tuple[str, ...] = ("float16", "quant16")
DEFAULT_MAP_CODEC: str = "quant16"
QUANT_CODEC_VERSION = 1
QUANT_PART = "quant"  # maps/<m>_quant
_Q = 32767  # codes in [-32767, 32767]; -32768 never written
#: the step is 2 x bound x this, so float32 rounding of the decode stays inside the bound
_STEP_MARGIN = 1.0 - 1.0 / 64
_F16_MAX = 65504.0
#: linear maps: a channel whose spread in the clip (std) is under this many bound-steps is quantised at
#: std / SPREAD_STEPS instead, finer than the bound, so a map that barely moves is not flattened to a few
#: levels (the tiny teacher's flow: std ~0.05 px against a 0.12 px step); L4P-scale maps keep the bound's step
SPREAD_STEPS = 8


@dataclass(frozen=True)
class MapQuant:
    """The quant16 rule of one map: ``log`` (store log-values, bound relative) or linear (bound
    absolute, in ``unit``)."""

    bound: float
    log: bool
    unit: str

    @property
    def step(self) -> float:
        """Quantisation step of the stored value (log-depth, px, logit, ray units)."""
        half = math.log1p(self.bound) if self.log else self.bound
        return 2.0 * half * _STEP_MARGIN

    def describe(self) -> str:
        what = "relative" if self.log else "absolute"
        return f"max {what} error {self.bound:g}{'' if self.log else ' ' + self.unit} (step {self.step:.6g})"


MAP_QUANT: dict[str, MapQuant] = {
    "depth": MapQuant(bound=0.0025, log=True, unit="relative"),
    "flow": MapQuant(bound=1.0 / 16, log=False, unit="px"),
    "motion": MapQuant(bound=1.0 / 32, log=False, unit="logit"),
    "camray": MapQuant(bound=1e-4, log=False, unit="ray units"),
}


def quant_part(modality: str) -> str:
    """The path name of a map's (step, offset) array: ``<m>_quant``."""
    return f"{modality}_{QUANT_PART}"


def map_codec_attrs(modality: str, codec: str) -> dict:
    """What the array ``maps/<m>`` records about its codec (zarr / xarray users read it)."""
    if codec == "float16":
        return {"name": "float16", "meaning": "values as stored (floats)"}
    rule = MAP_QUANT[modality]
    value = "exp(q * step + offset)" if rule.log else "q * step + offset"
    return {"name": "quant16", "version": QUANT_CODEC_VERSION, "bound": rule.bound,
            "bound_kind": "relative" if rule.log else f"absolute ({rule.unit})", "step": rule.step,
            "step_rule": ("fixed" if rule.log else f"this step, or std / {SPREAD_STEPS} of a channel whose std in the "
                          f"clip is under {SPREAD_STEPS} steps (each clip's own step is in its quant row)"),
            "meaning": (f"{modality} = {value}, q = this int16 array, (step, offset) = maps/{quant_part(modality)}"
                        f"[clip, 0|1, channel] in float32; a clip whose step is NaN failed the bound and holds "
                        f"float16 bit patterns here (view as float16)")}


def map_error(modality: str, decoded: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(S,) max error of each clip: relative for depth (|d'/d - 1|), absolute for the others; inf
    where the source or the decode is not finite."""
    s = len(source)
    src = np.asarray(source, np.float32).reshape(s, -1)
    dec = np.asarray(decoded, np.float32).reshape(s, -1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        err = np.abs(dec / src - 1.0) if MAP_QUANT[modality].log else np.abs(dec - src)
    err = np.where(np.isfinite(err), err, np.inf)
    return err.max(axis=1) if err.shape[1] else np.zeros(s)


def is_fallback(quant: np.ndarray) -> np.ndarray:
    """(S,) bool: clips stored as float16 (their step is NaN)."""
    return np.isnan(np.asarray(quant)[:, 0, 0])


def decode_map(modality: str, codes: np.ndarray, quant: np.ndarray) -> np.ndarray:
    """float32 map (S, N, H, W, ch) from int16 ``codes`` (S, N, H, W, ch) and ``quant`` (S, 2, ch)."""
    codes = np.asarray(codes)
    quant = np.asarray(quant, np.float32)
    if codes.dtype != np.int16 or quant.shape != (codes.shape[0], 2, codes.shape[-1]):
        raise CacheSchemaError(f"maps/{modality}: expected int16 codes (S, ..., ch) and quant (S, 2, ch), got "
                               f"{codes.dtype} {codes.shape} and {quant.shape}")
    lead = (slice(None),) + (None,) * (codes.ndim - 2)
    out = codes.astype(np.float32) * quant[:, 0][lead] + quant[:, 1][lead]
    if MAP_QUANT[modality].log:  # exp in float64, rounded once: the torch decode gives the same float32
        out = np.exp(out.astype(np.float64)).astype(np.float32)
    fallback = is_fallback(quant)
    if fallback.any():
        out[fallback] = codes[fallback].view(np.float16).astype(np.float32)
    return out


def _float16_bits(x: np.ndarray) -> np.ndarray:
    """float16 bit patterns (int16) of ``x``, finite values clamped to +-65504 (a done clip holds no
    inf that the source did not), NaN kept."""
    with np.errstate(invalid="ignore"):
        return np.clip(x, -_F16_MAX, _F16_MAX).astype(np.float16).view(np.int16)


def _encode_clip(rule: MapQuant, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(codes int16, quant (2, ch) float32, fits) of one clip ``x`` (N, H, W, ch) float32; ``fits``:
    finite (and > 0 for log maps) with a range of at most 2 x 32767 steps per channel."""
    ch = x.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # float32 throughout: the check decides
        v = np.log(x) if rule.log else x
        flat = v.reshape(-1, ch)
        offset = ((flat.min(axis=0) + flat.max(axis=0)) / 2).astype(np.float32) if flat.size else np.zeros(ch, np.float32)
        step = np.full(ch, rule.step, np.float32)
        if not rule.log and flat.size:  # a channel spread over fewer than SPREAD_STEPS steps gets std / SPREAD_STEPS
            std = flat.std(axis=0)
            step = np.where(np.isfinite(std) & (std > 0), np.minimum(step, std / SPREAD_STEPS), step).astype(np.float32)
        q = np.rint((v - offset) * (np.float32(1.0) / step))
    fits = bool(np.isfinite(q).all() and np.abs(q).max(initial=0) <= _Q)
    quant = np.stack([step, np.where(np.isfinite(offset), offset, np.float32(0))])
    return (q.astype(np.int16) if fits else np.zeros(x.shape, np.int16)), quant, fits


def encode_map(modality: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quant16 of a map of S clips ``x`` (S, N, H, W, ch) float: (codes int16, quant (S, 2, ch)
    float32, (S,) max error of each clip as stored). Each clip is decoded as a reader does and
    checked against ``x``; a clip that misses the bound is stored as float16 (step NaN), and its
    error is then float16's."""
    rule = MAP_QUANT[modality]
    x = np.asarray(x, np.float32)
    codes = np.empty(x.shape, np.int16)
    quant = np.empty((len(x), 2, x.shape[-1]), np.float32)
    err = np.empty(len(x))
    for i, clip in enumerate(x):  # one clip at a time: a shard of paper clips in float64 would be GBs
        codes[i], quant[i], fits = _encode_clip(rule, clip)
        err[i] = map_error(modality, decode_map(modality, codes[i:i + 1], quant[i:i + 1]), clip[None])[0] if fits else np.inf
        if err[i] > rule.bound:  # the check: what a reader decodes vs the float32 source
            codes[i] = _float16_bits(clip)
            quant[i, 0] = np.nan
            err[i] = map_error(modality, codes[i:i + 1].view(np.float16), clip[None])[0]
    return codes, quant, err


def roundtrip_map(modality: str, x: np.ndarray, codec: str = DEFAULT_MAP_CODEC) -> tuple[np.ndarray, np.ndarray]:
    """A map of S clips ``x`` (S, N, H, W, ch) float32 through ``codec`` and back, as a reader gets
    it: (decoded float32, (S,) bool stored-as-float16 fallback). For benches and tests."""
    if codec not in MAP_CODECS:
        raise CacheSchemaError(f"map codec {codec!r}: expected one of {MAP_CODECS}")
    x = np.asarray(x, np.float32)
    if codec == "float16":
        return _float16_bits(x).view(np.float16).astype(np.float32), np.ones(len(x), bool)
    codes, quant, _ = encode_map(modality, x)
    return decode_map(modality, codes, quant), is_fallback(quant)
