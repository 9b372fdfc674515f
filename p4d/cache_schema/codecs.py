"""Latent codecs for F_4D, in numpy (bfloat16 included), plus the zarr codec chain each part uses.

A codec turns float latents ``x`` of shape ``(..., N', h', w', c')`` (leading axes: clip, tap)
into named parts (``f4d`` and, for integer codecs, ``f4d_scale`` / ``f4d_offset``) and back.
Statistics of the per-channel codecs are taken over ``(N', h', w')``, i.e. per channel per tap
per clip; per-token codecs over ``c'``.

Codecs, measured on paper-shape ViT-like latents (``p4d.bench.latents``, 4 taps x 8x16x16x1408,
4 clips, 2-core CPU): bytes on disk / raw float32, mean per-token cosine:

* ``float16-zstd``   float16, zstd(3).                                      0.477, cos 1.00000
* ``bfloat16``       bf16 bits (round to nearest even) as uint16, blosc-zstd bitshuffle.  0.432, 1.00000
* ``int8-token``     symmetric int8, float16 absmax scale per token, zstd(1).  0.130, cos 0.9989-0.9994
                     depending on the outlier channels (below 0.999 on some clips), and channels
                     far below the outliers' scale lose most of their information.
* ``int8-channel``   symmetric int8, float16 absmax scale per channel, zstd(1).  0.225, cos 0.99996
* ``dpcm-channel``   (default) per-channel step = max(0.13 x the channel's RMS, absmax / 127),
                     integer DPCM along the token grid (prediction = floor((left + up) / 2)),
                     residual mod 256 as int8, zstd(1); scale and offset per channel as float32.
                     0.134, cos 0.99935.

What the dpcm step gives depends on the data (measured, ``vit_like_latents`` 4 taps x 8x16x16x1408,
seeds 0 and 1): where a channel's absmax < 16.5 x its RMS the step is 0.13 x RMS, relative error
~3.4 % and mean token cosine 0.9993 (worst 0.996-0.998). A channel with outlier tokens (a few
tokens 30-60x its RMS, as attention-sink tokens are) gets step absmax / 127 instead: relative
error 5.8 %, mean cosine 0.993-0.994, worst 0.96-0.98, below the self-check's 0.999 / 0.995.
Tokens far smaller than their channels' range (``crushed_tokens``) lose their direction
whatever the step (mean cosine ~0.75). The self-check (:mod:`p4d.cache_schema.fidelity`) measures
each clip and falls back: first to level 1, the outlier split (format v2, :func:`dpcm_encode`
with ``outliers=True``): per channel the 8 tokens farthest from its mean stored exactly, the rest
at their own absmax / 127. Measured the same way on 2 paper-shape clips, bytes on disk / raw float32
(all five arrays), relative error, worst token cosine:

=========================  ==========  ==========  ========  ============
latents                    level       bytes/raw   rel. err  worst cosine
=========================  ==========  ==========  ========  ============
without outlier tokens     0           0.134       3.41 %    0.9964
without outlier tokens     1           0.216       0.64 %    0.9999
3 outlier tokens per tap   0           0.093       5.75 %    0.9641
3 outlier tokens per tap   1           0.213       0.36 %    0.9999
=========================  ==========  ==========  ========  ============

so level 1 cuts the error 16x on clips with outlier tokens (5x without) for 0.005 of raw in
outlier arrays plus finer residuals, about half of level 2's bfloat16 (0.432). Numpy encode of a
paper-shape clip: 0.5 s at level 0, 1.2 s at level 1 (2-core CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from zarr.codecs import BloscCodec, ZstdCodec

from p4d.errors import CacheSchemaError

__all__ = [
    "LatentCodec",
    "LatentPart",
    "DPCM_OUTLIERS",
    "apply_outliers",
    "outlier_count",
    "LATENT_CODECS",
    "DEFAULT_LATENT_CODEC",
    "LATENT_CODEC_ALIASES",
    "resolve_latent_codec",
    "float32_to_bfloat16_bits",
    "bfloat16_bits_to_float32",
]

_GRID_AXES = (-4, -3, -2)  # N', h', w'
BF16_NAN_BITS = 0x7FC0


# --- bfloat16 --------------------------------------------------------------------------


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of ``x``: float32 rounded to nearest, ties to even.

    Matches torch's ``Tensor.bfloat16()`` bit for bit for every non-NaN value: infinities stay
    infinities, finite values that round past the largest bfloat16 become inf, denormals round
    like any other value. Every NaN becomes 0x7FC0, the quiet NaN of torch's reference scalar
    conversion (c10::BFloat16); torch's own NaN payload varies by path (vectorised CPU 0xFFFF,
    CUDA 0x7FFF), so only "NaN stays NaN" is portable.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) >> 16).astype(np.uint16)  # uint32 wraps only for NaN patterns, fixed below
    out[np.isnan(x)] = BF16_NAN_BITS
    return out


def bfloat16_bits_to_float32(b: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


# --- codec description -------------------------------------------------------------------


@dataclass(frozen=True)
class LatentPart:
    """One stored array of a codec: ``latents/<name>``.

    ``kind``: ``full`` (..., N', h', w', c'), ``token`` (..., N', h', w'), ``channel`` (..., c') or
    ``outlier`` (..., K, c') with K = :func:`outlier_count` of the grid. ``since``: the codec's
    format version that added the part (stores of an older version do not have it).
    """

    name: str
    dtype: str
    kind: str
    compressors: Callable[[], list]
    fill_value: object
    description: str
    since: int = 1

    def shape(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        latent_shape = tuple(latent_shape)
        if self.kind == "full":
            return latent_shape
        if self.kind == "token":
            return latent_shape[:-1]
        if self.kind == "outlier":
            return latent_shape[:-4] + (outlier_count(latent_shape), latent_shape[-1])
        return latent_shape[:-4] + latent_shape[-1:]

    def dims(self, lead: tuple[str, ...]) -> tuple[str, ...]:
        grid = {"full": ("t4d", "h4d", "w4d", "c4d"), "token": ("t4d", "h4d", "w4d"), "channel": ("c4d",),
                "outlier": ("outlier", "c4d")}
        return tuple(lead) + grid[self.kind]


@dataclass(frozen=True)
class LatentCodec:
    """A named F_4D codec: numpy ``encode``/``decode`` and the zarr storage of its parts.

    ``version``: the format its encoder writes now (a store records its own in
    ``CacheSpec.latent_codec_version``); ``decode`` reads every version: parts a version lacks
    are simply absent from its dict.
    """

    name: str
    description: str
    parts: tuple[LatentPart, ...]
    encode: Callable[[np.ndarray], dict[str, np.ndarray]]
    decode: Callable[[dict[str, np.ndarray]], np.ndarray]
    params: dict = field(default_factory=dict)
    lossless_nan: bool = True  # can NaN/Inf be stored (float codecs) or must the input be finite?
    version: int = 1

    def stored_parts(self, version: int | None = None) -> tuple[LatentPart, ...]:
        """The parts a store of format ``version`` (default: the current one) holds."""
        v = self.version if version is None else version
        return tuple(p for p in self.parts if p.since <= v)

    def to_attrs(self, version: int | None = None) -> dict:
        """What a store's attrs record about the codec (format ``version``, default the current one)."""
        v = self.version if version is None else version
        return {
            "name": self.name,
            "version": v,
            "description": self.description,
            "params": dict(self.params),
            "parts": {p.name: {"dtype": p.dtype, "kind": p.kind, "description": p.description}
                      for p in self.stored_parts(v)},
        }


def _zstd() -> list:
    return [ZstdCodec(level=3)]


def _zstd_fast() -> list:
    """zstd level 1 for int8 codes: on these noise-like residuals it is both faster and ~4 %
    smaller than level 3 (measured: 0.133 vs 0.138 of raw for dpcm-channel), since the longer
    match search of higher levels buys matches that cost more than the literals they replace."""
    return [ZstdCodec(level=1)]


def _blosc_bitshuffle() -> list:
    return [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle", typesize=2)]


def _check_finite(x: np.ndarray, codec: str) -> None:
    if not np.isfinite(x).all():
        raise CacheSchemaError(
            f"latents for codec {codec!r}: expected finite values, found {int((~np.isfinite(x)).sum())} NaN/Inf "
            "(record such clips as failed, or use a float codec: float16-zstd, bfloat16)"
        )


# float16 ---------------------------------------------------------------------------------


def _f16_encode(x: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(over="ignore"):
        return {"f4d": np.asarray(x).astype(np.float16)}


def _f16_decode(parts: dict[str, np.ndarray]) -> np.ndarray:
    return parts["f4d"].astype(np.float32)


# bfloat16 --------------------------------------------------------------------------------


def _bf16_encode(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"f4d": float32_to_bfloat16_bits(np.asarray(x, dtype=np.float32))}


def _bf16_decode(parts: dict[str, np.ndarray]) -> np.ndarray:
    return bfloat16_bits_to_float32(parts["f4d"])


# symmetric int8 with a float16 absmax scale ------------------------------------------------


def _f16_scale(absmax: np.ndarray, codec: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        scale = (absmax / 127.0).astype(np.float16)
    if not np.isfinite(scale).all():
        raise CacheSchemaError(f"latents for codec {codec!r}: |values| up to {float(absmax.max()):.3g} "
                               f"overflow the float16 scale (max 65504 x 127); use dpcm-channel or a float codec")
    return scale


def _int8_symmetric(x: np.ndarray, scale16: np.ndarray) -> np.ndarray:
    s = scale16.astype(np.float32)
    safe = np.where(s > 0, s, np.float32(1.0))
    return np.clip(np.rint(x / safe), -127, 127).astype(np.int8)


def _int8_token_encode(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    _check_finite(x, "int8-token")
    scale = _f16_scale(np.abs(x).max(axis=-1, keepdims=True), "int8-token")
    return {"f4d": _int8_symmetric(x, scale), "f4d_scale": scale[..., 0]}


def _int8_token_decode(parts: dict[str, np.ndarray]) -> np.ndarray:
    return parts["f4d"].astype(np.float32) * parts["f4d_scale"].astype(np.float32)[..., None]


def _int8_channel_encode(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    _check_finite(x, "int8-channel")
    scale = _f16_scale(np.abs(x).max(axis=_GRID_AXES, keepdims=True), "int8-channel")
    return {"f4d": _int8_symmetric(x, scale), "f4d_scale": scale[..., 0, 0, 0, :]}


def _int8_channel_decode(parts: dict[str, np.ndarray]) -> np.ndarray:
    scale = parts["f4d_scale"].astype(np.float32)[..., None, None, None, :]
    return parts["f4d"].astype(np.float32) * scale


# dpcm-channel -------------------------------------------------------------------------------

#: step / channel RMS where absmax / 127 is smaller (absmax < 16.5 RMS): relative error ~ 0.13 / sqrt(12)
#: = 3.8 % of the RMS, cosine ~ 1 - 0.13**2 / 24; a channel with outlier tokens gets absmax / 127 instead
DPCM_STEP_RMS = 0.13


def _wrap_int8(v: np.ndarray) -> np.ndarray:
    """Integers modulo 256 into [-128, 127] (as int8)."""
    return (((v.astype(np.int16) + 128) & 0xFF) - 128).astype(np.int8)


def _dpcm_predict(q: np.ndarray) -> np.ndarray:
    """Prediction of each token from its causal neighbours on the (h', w') grid (int16).

    Interior: floor((left + up) / 2); first row: left; first column: up; (0, 0): 0.
    ``q``: (..., h', w', c') int16.
    """
    pred = np.zeros_like(q)
    left = q[..., :, :-1, :]
    up = q[..., :-1, :, :]
    pred[..., 1:, 1:, :] = (left[..., 1:, :, :] + up[..., :, 1:, :]) >> 1
    pred[..., 0, 1:, :] = q[..., 0, :-1, :]
    pred[..., 1:, 0, :] = q[..., :-1, 0, :]
    return pred


#: level 1 of the self-check (:mod:`p4d.cache_schema.fidelity`) keeps this many tokens per channel
#: (per tap per clip) exactly, the ones farthest from the channel's mean, and quantises the rest
#: with a step taken without them
DPCM_OUTLIERS = 8
#: ``f4d_outlier_index`` of an entry that holds no outlier (every entry of a level 0 or 2 clip)
NO_OUTLIER = -1


def outlier_count(latent_shape: tuple[int, ...]) -> int:
    """K, the outlier entries per channel of a latent grid (..., N', h', w', c'): DPCM_OUTLIERS,
    or every token of a grid that has fewer."""
    return min(DPCM_OUTLIERS, int(np.prod(latent_shape[-4:-1])))


def select_outliers(d: np.ndarray, k: int) -> np.ndarray:
    """(T, c') bool: per channel (column) the ``k`` largest of ``d`` (T, c') float32; of values
    equal to the k-th largest, the first in token order. A rule of values and positions only, so
    the torch encoder (:mod:`p4d.precompute.encode`) picks the same tokens."""
    t = d.shape[0]
    kth = np.partition(d, t - k, axis=0)[t - k]
    above = d > kth
    tied = d == kth
    need = k - above.sum(axis=0)
    chosen = above | tied
    ambiguous = np.flatnonzero(tied.sum(axis=0) > need)  # more ties than places: first ones in token order
    if ambiguous.size:
        sub = tied[:, ambiguous]
        chosen[:, ambiguous] = above[:, ambiguous] | (sub & (np.cumsum(sub, axis=0) <= need[ambiguous]))
    return chosen


def _dpcm_encode_one(x: np.ndarray, step_over_rms: float, outliers: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(residual int8, step, offset, outlier index, outlier value) of one clip-tap ``x``
    (N', h', w', c') float32 (finite); ``outliers`` = 0 or the K of :func:`outlier_count`."""
    c = x.shape[-1]
    offset = x.mean(axis=_GRID_AXES, keepdims=True, dtype=np.float64)
    chosen = index = value = None
    if not outliers:  # format v1's arithmetic, unchanged
        centred = x - offset
        rms = np.sqrt((centred ** 2).mean(axis=_GRID_AXES, keepdims=True))
        absmax = np.abs(centred).max(axis=_GRID_AXES, keepdims=True)
        del centred
    else:  # the K tokens farthest from the channel's mean kept exactly; statistics of the rest
        flat = x.reshape(-1, c)
        chosen = select_outliers(np.abs(flat - offset.astype(np.float32).reshape(1, c)), outliers)
        index = np.nonzero(chosen.T)[1].reshape(c, outliers).T.astype(np.int32)  # (K, c'), ascending
        value = np.take_along_axis(flat, index, axis=0)
        rest = max(flat.shape[0] - outliers, 1)
        x64 = np.where(chosen, 0.0, flat.astype(np.float64))
        offset = (x64.sum(axis=0) / rest).reshape(offset.shape)
        x64 -= offset.reshape(1, c)
        x64[chosen] = 0.0
        absmax = np.abs(x64).max(axis=0).reshape(offset.shape)
        rms = np.sqrt((x64 * x64).sum(axis=0) / rest).reshape(offset.shape)
        del x64
    step = np.maximum(step_over_rms * rms, absmax / 127.0).astype(np.float32)
    step = np.where(step > 0, step, np.float32(1.0))
    offset = offset.astype(np.float32)
    q = np.clip(np.rint((x - offset) / step), -127, 127).astype(np.int16)
    if chosen is not None:
        q.reshape(-1, c)[chosen] = 0  # an outlier's own value replaces it on decode
    return _wrap_int8(q - _dpcm_predict(q)), step[0, 0, 0], offset[0, 0, 0], index, value


def dpcm_encode(x: np.ndarray, step_over_rms: float = DPCM_STEP_RMS, outliers: bool = False) -> dict[str, np.ndarray]:
    """dpcm-channel parts of ``x`` (..., N', h', w', c'); step per channel = max(``step_over_rms``
    x RMS, absmax / 127), so ``step_over_rms=0`` gives the finest step int8 allows.

    ``outliers=True`` (the self-check's level 1, :mod:`p4d.cache_schema.fidelity`): per channel
    the K = :func:`outlier_count` tokens farthest from its mean are stored exactly (float32 value
    + flat token index over (N', h', w')), and mean, RMS and absmax are taken over the other
    tokens, so a few outlier tokens no longer set the step; an outlier token's quantised value is 0.
    Otherwise ``f4d_outlier_index`` is all NO_OUTLIER (-1) and the encoding is that of format v1.
    Measured (``vit_like_latents`` 2 taps x 8x16x16x64 plus 3 outlier tokens per tap at 30-60x
    the channel's SD, the test's data): relative error 5.4 % at level 0 -> 0.43 % at level 1,
    worst token cosine 0.59 -> 0.998; without outlier tokens 3.7 % -> 0.70 %. Paper-shape bytes
    and errors: the module docstring.

    Encoded clip-tap by clip-tap (each leading index on its own), so the float64 statistics and
    int16 temporaries never exceed one (N', h', w', c') block, whatever the number of clips."""
    x = np.asarray(x, dtype=np.float32)
    _check_finite(x, "dpcm-channel")
    lead, c = x.shape[:-4], x.shape[-1]
    k = outlier_count(x.shape)
    residual = np.empty(x.shape, np.int8)
    step, offset = np.empty(lead + (c,), np.float32), np.empty(lead + (c,), np.float32)
    index = np.full(lead + (k, c), NO_OUTLIER, np.int32)
    value = np.zeros(lead + (k, c), np.float32)
    for i in np.ndindex(*lead):
        residual[i], step[i], offset[i], idx, val = _dpcm_encode_one(x[i], step_over_rms, k if outliers else 0)
        if outliers:
            index[i], value[i] = idx, val
    return {"f4d": residual, "f4d_scale": step, "f4d_offset": offset,
            "f4d_outlier_index": index, "f4d_outlier_value": value}


def _dpcm_reconstruct(residual: np.ndarray) -> np.ndarray:
    """Invert the DPCM exactly: quantised values from int8 residuals (returned as int8).

    Runs token by token in raster order on a (h', w', everything else) copy, so each step is
    one contiguous block of int8 arithmetic: q lies in [-127, 127], so int8 addition wrapping
    modulo 256 gives q = residual + prediction exactly, and the prediction is computed in int8
    without overflow as floor((a + b) / 2) = (a >> 1) + (b >> 1) + (a & b & 1).
    """
    r = np.asarray(residual, dtype=np.int8)
    h, w = r.shape[-3], r.shape[-2]
    grid_first = np.ascontiguousarray(np.moveaxis(r, (-3, -2), (0, 1)))
    rt = grid_first.reshape(h, w, int(np.prod(grid_first.shape[2:])))
    q = np.empty_like(rt)
    pred, tmp = np.empty(rt.shape[2], np.int8), np.empty(rt.shape[2], np.int8)
    with np.errstate(over="ignore"):
        q[0, 0] = rt[0, 0]
        for x in range(1, w):  # first row: prediction = left
            np.add(rt[0, x], q[0, x - 1], out=q[0, x])
        for y in range(1, h):
            np.add(rt[y, 0], q[y - 1, 0], out=q[y, 0])  # first column: prediction = up
            for x in range(1, w):
                left, up = q[y, x - 1], q[y - 1, x]
                np.bitwise_and(left, up, out=pred)
                np.bitwise_and(pred, 1, out=pred)
                np.right_shift(left, 1, out=tmp)
                np.add(pred, tmp, out=pred)
                np.right_shift(up, 1, out=tmp)
                np.add(pred, tmp, out=pred)
                np.add(rt[y, x], pred, out=q[y, x])
    return np.moveaxis(q.reshape(grid_first.shape), (0, 1), (-3, -2))


def apply_outliers(out: np.ndarray, index: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Decoded ``out`` (..., N', h', w', c') float32 with the stored outlier values put in (in place
    when ``out`` is C-contiguous): ``index`` (..., K, c') flat token indices over (N', h', w')
    (NO_OUTLIER: none), ``value`` (..., K, c') float32."""
    index = np.asarray(index)
    out = np.ascontiguousarray(out)
    tokens = int(np.prod(out.shape[-4:-1]))
    if index.size and (index.max() >= tokens or index.min() < NO_OUTLIER):
        raise CacheSchemaError(f"f4d_outlier_index: values in [{int(index.min())}, {int(index.max())}], "
                               f"expected -1 or a token index below {tokens}")
    *lead, k, c = np.nonzero(index != NO_OUTLIER)
    flat = out.reshape(out.shape[:-4] + (tokens, out.shape[-1]))
    flat[(*lead, index[(*lead, k, c)], c)] = np.asarray(value, np.float32)[(*lead, k, c)]
    return out


def _dpcm_decode(parts: dict[str, np.ndarray]) -> np.ndarray:
    """F_4D from dpcm-channel parts, format v1 (no ``f4d_outlier_*``) or v2."""
    q = _dpcm_reconstruct(parts["f4d"])
    out = q.astype(np.float32)
    out *= parts["f4d_scale"].astype(np.float32)[..., None, None, None, :]
    out += parts["f4d_offset"].astype(np.float32)[..., None, None, None, :]
    if "f4d_outlier_index" in parts:
        out = apply_outliers(out, parts["f4d_outlier_index"], parts["f4d_outlier_value"])
    return out


# --- registry --------------------------------------------------------------------------------

_NAN16 = float("nan")

LATENT_CODECS: dict[str, LatentCodec] = {
    c.name: c
    for c in (
        LatentCodec(
            name="float16-zstd",
            description="float16 + zstd(3); near-lossless (rel. err ~2e-4), ~0.48 of raw float32",
            parts=(LatentPart("f4d", "float16", "full", _zstd, _NAN16, "F_4D as float16"),),
            encode=_f16_encode, decode=_f16_decode, params={"zstd_level": 3},
        ),
        LatentCodec(
            name="bfloat16",
            description=("bfloat16 bits (round-to-nearest-even, = torch .bfloat16()) as uint16 + blosc-zstd "
                         "bitshuffle; ~0.43 of raw"),
            parts=(LatentPart("f4d", "uint16", "full", _blosc_bitshuffle, BF16_NAN_BITS,
                              "F_4D bfloat16 bit patterns stored as uint16: float32 = bits << 16"),),
            encode=_bf16_encode, decode=_bf16_decode,
            params={"storage": "uint16 = high 16 bits of float32, round to nearest even",
                    "blosc": "zstd5 bitshuffle"},
        ),
        LatentCodec(
            name="int8-token",
            description=("symmetric int8 + float16 absmax scale per token + zstd(1); ~0.13 of raw, but outlier "
                         "channels set the scale: cosine can drop below 0.999 and small channels are crushed"),
            parts=(LatentPart("f4d", "int8", "full", _zstd_fast, 0, "F_4D quantised: x = f4d * f4d_scale"),
                   LatentPart("f4d_scale", "float16", "token", _zstd, _NAN16, "absmax/127 per token")),
            encode=_int8_token_encode, decode=_int8_token_decode,
            params={"levels": 255, "scale": "per token", "zstd_level": 1},
            lossless_nan=False,
        ),
        LatentCodec(
            name="int8-channel",
            description=("symmetric int8 + float16 absmax scale per channel (per tap, per clip) + zstd(1); "
                         "~0.22 of raw, cosine ~0.99996"),
            parts=(LatentPart("f4d", "int8", "full", _zstd_fast, 0, "F_4D quantised: x = f4d * f4d_scale"),
                   LatentPart("f4d_scale", "float16", "channel", _zstd, _NAN16,
                              "absmax/127 per channel over (N', h', w')")),
            encode=_int8_channel_encode, decode=_int8_channel_decode,
            params={"levels": 255, "scale": "per channel per tap per clip", "zstd_level": 1}, lossless_nan=False,
        ),
        LatentCodec(
            name="dpcm-channel",
            description=(f"per-channel step max({DPCM_STEP_RMS} x RMS, absmax/127) (~3.4% rel. err, cosine ~0.9993 "
                         "without outlier tokens; absmax/127 and less on channels with them) + DPCM over the "
                         "token grid (int8 residuals mod 256) + zstd(1); ~0.13 of raw. Self-check level 1: per "
                         f"channel {DPCM_OUTLIERS} outlier tokens stored exactly, the rest at their absmax/127 "
                         "(~0.21 of raw, rel. err 0.4-0.6 %)"),
            parts=(LatentPart("f4d", "int8", "full", _zstd_fast, 0,
                              "DPCM residuals mod 256 of q = rint((x - offset) / scale), prediction "
                              "floor((left + up) / 2) on the (h', w') grid"),
                   LatentPart("f4d_scale", "float32", "channel", _zstd, _NAN16, "quantisation step per channel"),
                   LatentPart("f4d_offset", "float32", "channel", _zstd, _NAN16, "mean per channel"),
                   LatentPart("f4d_outlier_index", "int32", "outlier", _zstd, NO_OUTLIER,
                              "level 1: per channel, the flat (N', h', w') index of each token stored exactly "
                              "(-1: none)", since=2),
                   LatentPart("f4d_outlier_value", "float32", "outlier", _zstd, 0.0,
                              "level 1: the exact value of each outlier token (x there = this value)", since=2)),
            encode=dpcm_encode, decode=_dpcm_decode,
            params={"step_over_rms": DPCM_STEP_RMS, "predictor": "floor((left + up) / 2)", "zstd_level": 1,
                    "level1_outliers_per_channel": DPCM_OUTLIERS},
            lossless_nan=False, version=2,
        ),
    )
}

DEFAULT_LATENT_CODEC: str = "dpcm-channel"

#: names that stand for a codec: ``exact`` is the release-exact choice, F_4D kept at the precision
#: the public release trains in (bf16: its teacher runs online under bf16 and DeepSpeed bf16), no
#: quantisation step; a store records the codec it resolves to.
LATENT_CODEC_ALIASES: dict[str, str] = {"exact": "bfloat16"}


def resolve_latent_codec(name: str) -> str:
    """The codec an alias stands for (``exact`` -> ``bfloat16``); other names unchanged."""
    return LATENT_CODEC_ALIASES.get(name, name)
