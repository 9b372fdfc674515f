"""A latent codec that checks itself: encode, decode what was just encoded, measure, fall back.

The default codec (``dpcm-channel``) was sized on synthetic latents; the teacher's real output
may have tokens it serves badly (a token whose values are small next to its channels' ranges
loses most of its direction to quantisation). So every clip is checked at write time against
the float32 it came from, token by token over (N', h', w') per tap:

* mean token cosine >= ``min_mean_cosine`` (default 0.999) and worst token cosine >=
  ``min_worst_cosine`` (default 0.995), else
* level 1, the same codec with a per-channel outlier split (dpcm-channel only): per channel
  the 8 tokens farthest from its mean stored exactly (``latents/f4d_outlier_*``), the rest at
  the finest step int8 allows for them (their own absmax / 127), checked again, else. Measured on
  paper-shape ``vit_like_latents`` with 3 outlier tokens per tap at 30-60x the channel's SD
  (level 0: step absmax / 127 set by the outliers, 5.75 % relative error, worst cosine 0.964):
  0.36 % and worst cosine 0.9999 at level 1, 16x less error, for 0.213 of raw float32 bytes
  (level 0 0.093, bfloat16 0.432); without outlier tokens 0.64 % vs 3.41 % (0.216 vs 0.134);
* level 2, bfloat16 (relative error <= 2^-9 per value) in ``latents/f4d_bf16``.

``clips/latent_codec`` records each clip's level; each shard's figures go to
``fidelity/shard-{id}.json`` and ``p4d cache summary`` shows their distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS, bfloat16_bits_to_float32, dpcm_encode, float32_to_bfloat16_bits
from p4d.errors import ConfigError

__all__ = ["FidelityPolicy", "CODEC_LEVELS", "token_fidelity", "encode_checked", "FALLBACK_PART"]

#: what ``clips/latent_codec`` holds per clip
CODEC_LEVELS = {0: "store codec", 1: "store codec, outliers exact + finest step", 2: "bfloat16 fallback"}
FALLBACK_PART = "f4d_bf16"
#: codecs whose output is checked (the float codecs are near-lossless: nothing to fall back to)
CHECKED_CODECS = ("dpcm-channel", "int8-channel", "int8-token")


@dataclass(frozen=True)
class FidelityPolicy:
    """Thresholds a clip's decoded F_4D must meet; :meth:`parse` reads the ``MEAN[,WORST]`` of
    ``p4d precompute --min-cosine``."""

    min_mean_cosine: float = 0.999
    min_worst_cosine: float = 0.995

    def __post_init__(self):
        for name in ("min_mean_cosine", "min_worst_cosine"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not -1.0 <= v <= 1.0:
                raise ConfigError(f"--min-cosine: {name} must lie in [-1, 1], got {v!r}")

    @classmethod
    def parse(cls, text: str) -> "FidelityPolicy":
        """``"0.999,0.995"`` (mean, worst) or ``"0.999"`` (mean; worst keeps its default)."""
        try:
            values = [float(v) for v in str(text).split(",")]
        except ValueError:
            raise ConfigError(f"--min-cosine {text!r}: expected MEAN[,WORST], e.g. 0.999,0.995") from None
        if len(values) not in (1, 2):
            raise ConfigError(f"--min-cosine {text!r}: expected MEAN[,WORST], e.g. 0.999,0.995")
        return cls(*values)

    def accepts(self, stats: dict) -> bool:
        return stats["mean_cosine"] >= self.min_mean_cosine and stats["worst_cosine"] >= self.min_worst_cosine


def token_fidelity(x: np.ndarray, y: np.ndarray) -> dict:
    """How well ``y`` reproduces ``x``, both one clip's F_4D (taps, N', h', w', c'):
    mean and worst token cosine (over taps x N' x h' x w' tokens) and the relative error
    ||y - x|| / ||x|| per tap. A token that is zero in both counts as cosine 1. Per-token sums
    in float32 (c' terms: ~1e-7 relative), everything after in float64."""
    taps, c = x.shape[0], x.shape[-1]
    x = np.asarray(x, np.float32).reshape(taps, -1, c)
    y = np.asarray(y, np.float32).reshape(x.shape)
    d = y - x
    dot, nx2, ny2, err2 = (np.einsum("tkc,tkc->tk", a, b).astype(np.float64) for a, b in ((x, y), (x, x), (y, y), (d, d)))
    denom = np.sqrt(nx2 * ny2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(denom > 0, dot / denom, np.where((nx2 == 0) & (ny2 == 0), 1.0, 0.0))
    norm2 = nx2.sum(axis=1)
    rel = np.sqrt(err2.sum(axis=1) / np.where(norm2 > 0, norm2, 1.0))
    return {"mean_cosine": float(cos.mean()), "worst_cosine": float(min(cos.min(), 1.0)),
            "rel_error_per_tap": [float(v) for v in rel]}


def _levels(codec_name: str):
    """(level, encode) candidates in order of size: the codec, then its outlier split (dpcm only)."""
    codec = LATENT_CODECS[codec_name]
    yield 0, codec.encode
    if codec_name == "dpcm-channel":
        yield 1, lambda clip: dpcm_encode(clip, step_over_rms=0.0, outliers=True)


def encode_checked(codec_name: str, f4d: np.ndarray, good: np.ndarray, policy: FidelityPolicy | None
                   ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray, list[dict | None]]:
    """Encode a shard's F_4D (S, taps, N', h', w', c') clip by clip, each checked by ``policy``.

    Returns the codec's parts for the whole shard, the bfloat16 bits (S, ...) uint16 holding the
    clips that fell back to level 2 (None when none did; their codec rows encode zeros), each
    clip's level (S,) uint8 and its figures (None for rows not ``good`` or not checked). Without a
    policy, or for a codec not in ``CHECKED_CODECS``, every clip is encoded at level 0 unchecked.
    """
    codec = LATENT_CODECS[codec_name]
    check = policy is not None and codec_name in CHECKED_CODECS
    levels = np.zeros(len(f4d), np.uint8)
    stats: list[dict | None] = [None] * len(f4d)
    bf16 = None
    per_clip: list[dict[str, np.ndarray]] = []
    for i in range(len(f4d)):
        clip = np.asarray(f4d[i : i + 1], np.float32)  # one clip at a time bounds the encoder's memory
        if not (check and good[i]):
            per_clip.append(codec.encode(clip))
            continue
        for level, encode in _levels(codec_name):
            parts = encode(clip)
            st = {**token_fidelity(clip[0], codec.decode(parts)[0]), "level": level}
            if policy.accepts(st):
                break
        else:  # level 2: bfloat16 bits in their own array, zeros in the codec's rows
            bits = float32_to_bfloat16_bits(clip)
            bf16 = np.zeros(f4d.shape, np.uint16) if bf16 is None else bf16
            bf16[i] = bits[0]
            parts = codec.encode(np.zeros_like(clip))
            st = {**token_fidelity(clip[0], bfloat16_bits_to_float32(bits)[0]), "level": 2}
        levels[i], stats[i] = st["level"], st
        per_clip.append(parts)
    shard_parts = {name: np.concatenate([p[name] for p in per_clip]) for name in per_clip[0]}
    return shard_parts, bf16, levels, stats
