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
* ``dpcm-channel``   (default) per-channel step = 0.13 x the channel's RMS (3.8 % relative error in
                     every channel, cosine ~0.9993 whatever the data), integer DPCM along the token
                     grid (prediction = floor((left + up) / 2)), residual mod 256 as int8, zstd(1);
                     scale and offset per channel as float32.  0.134, cos 0.99935
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

    ``kind``: ``full`` (..., N', h', w', c'), ``token`` (..., N', h', w') or ``channel`` (..., c').
    """

    name: str
    dtype: str
    kind: str
    compressors: Callable[[], list]
    fill_value: object
    description: str

    def shape(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        latent_shape = tuple(latent_shape)
        if self.kind == "full":
            return latent_shape
        if self.kind == "token":
            return latent_shape[:-1]
        return latent_shape[:-4] + latent_shape[-1:]

    def dims(self, lead: tuple[str, ...]) -> tuple[str, ...]:
        grid = {"full": ("t4d", "h4d", "w4d", "c4d"), "token": ("t4d", "h4d", "w4d"), "channel": ("c4d",)}
        return tuple(lead) + grid[self.kind]


@dataclass(frozen=True)
class LatentCodec:
    """A named F_4D codec: numpy ``encode``/``decode`` and the zarr storage of its parts."""

    name: str
    description: str
    parts: tuple[LatentPart, ...]
    encode: Callable[[np.ndarray], dict[str, np.ndarray]]
    decode: Callable[[dict[str, np.ndarray]], np.ndarray]
    params: dict = field(default_factory=dict)
    lossless_nan: bool = True  # can NaN/Inf be stored (float codecs) or must the input be finite?

    def to_attrs(self) -> dict:
        """What a store's attrs record about the codec."""
        return {
            "name": self.name,
            "description": self.description,
            "params": dict(self.params),
            "parts": {p.name: {"dtype": p.dtype, "kind": p.kind, "description": p.description} for p in self.parts},
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

DPCM_STEP_RMS = 0.13  # step / channel RMS: relative error ~ 0.13 / sqrt(12) = 3.8 %, cosine ~ 1 - 0.13**2 / 24


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


def _dpcm_encode_one(x: np.ndarray, step_over_rms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residual int8, step, offset) of one clip-tap ``x`` (N', h', w', c') float32 (finite)."""
    offset = x.mean(axis=_GRID_AXES, keepdims=True, dtype=np.float64)
    centred = x - offset
    rms = np.sqrt((centred ** 2).mean(axis=_GRID_AXES, keepdims=True))
    absmax = np.abs(centred).max(axis=_GRID_AXES, keepdims=True)
    del centred
    step = np.maximum(step_over_rms * rms, absmax / 127.0).astype(np.float32)
    step = np.where(step > 0, step, np.float32(1.0))
    offset = offset.astype(np.float32)
    q = np.clip(np.rint((x - offset) / step), -127, 127).astype(np.int16)
    return _wrap_int8(q - _dpcm_predict(q)), step[0, 0, 0], offset[0, 0, 0]


def dpcm_encode(x: np.ndarray, step_over_rms: float = DPCM_STEP_RMS) -> dict[str, np.ndarray]:
    """dpcm-channel parts of ``x`` (..., N', h', w', c'); step per channel = max(``step_over_rms``
    x RMS, absmax / 127), so ``step_over_rms=0`` gives the finest step int8 allows (the
    self-check's first fallback, :mod:`p4d.cache_schema.fidelity`); the decoder is the same.

    Encoded clip-tap by clip-tap (each leading index on its own), so the float64 statistics and
    int16 temporaries never exceed one (N', h', w', c') block, whatever the number of clips."""
    x = np.asarray(x, dtype=np.float32)
    _check_finite(x, "dpcm-channel")
    lead, c = x.shape[:-4], x.shape[-1]
    residual = np.empty(x.shape, np.int8)
    step, offset = np.empty(lead + (c,), np.float32), np.empty(lead + (c,), np.float32)
    for i in np.ndindex(*lead):
        residual[i], step[i], offset[i] = _dpcm_encode_one(x[i], step_over_rms)
    return {"f4d": residual, "f4d_scale": step, "f4d_offset": offset}


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


def _dpcm_decode(parts: dict[str, np.ndarray]) -> np.ndarray:
    q = _dpcm_reconstruct(parts["f4d"])
    out = q.astype(np.float32)
    out *= parts["f4d_scale"].astype(np.float32)[..., None, None, None, :]
    out += parts["f4d_offset"].astype(np.float32)[..., None, None, None, :]
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
            description=(f"per-channel step {DPCM_STEP_RMS} x RMS (~3.8% rel. err, cosine ~0.9993) + DPCM over the "
                         "token grid (int8 residuals mod 256) + zstd(1); ~0.13 of raw"),
            parts=(LatentPart("f4d", "int8", "full", _zstd_fast, 0,
                              "DPCM residuals mod 256 of q = rint((x - offset) / scale), prediction "
                              "floor((left + up) / 2) on the (h', w') grid"),
                   LatentPart("f4d_scale", "float32", "channel", _zstd, _NAN16, "quantisation step per channel"),
                   LatentPart("f4d_offset", "float32", "channel", _zstd, _NAN16, "mean per channel")),
            encode=dpcm_encode, decode=_dpcm_decode,
            params={"step_over_rms": DPCM_STEP_RMS, "predictor": "floor((left + up) / 2)", "zstd_level": 1},
            lossless_nan=False,
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
