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

Besides the token cosine, the check holds a channel-balanced criterion (a clip failing either
falls back the same way). A token's cosine is decided by its few massive-activation channels: a
codec that destroys the small channels (e.g. zeroes 10 % of them) keeps it above 0.9999. So each
channel's R^2 = 1 - sum (y - x)^2 / sum (x - mean)^2 over the clip's (N', h', w') tokens, i.e. its
error relative to its own spread in the clip whatever its scale (:func:`channel_fidelity`), must
reach, per tap, ``min_channel_r2_mean`` (default 0.99) as a mean over channels and
``min_channel_r2_worst`` (default 0.95) in the worst channel. dpcm-channel's step (0.13 x the
channel's RMS) gives R^2 = 1 - 0.13^2 / 12 = 0.9986 in every channel; a per-tap PCA keeping 256 of
1408 components leaves the small channels at 0.8-0.96.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS, bfloat16_bits_to_float32, dpcm_encode, float32_to_bfloat16_bits
from p4d.errors import ConfigError

__all__ = ["FidelityPolicy", "CODEC_LEVELS", "token_fidelity", "channel_fidelity", "encode_checked", "FALLBACK_PART"]

#: what ``clips/latent_codec`` holds per clip
CODEC_LEVELS = {0: "store codec", 1: "store codec, outliers exact + finest step", 2: "bfloat16 fallback"}
FALLBACK_PART = "f4d_bf16"
#: codecs whose output is checked (the float codecs are near-lossless: nothing to fall back to)
CHECKED_CODECS = ("dpcm-channel", "int8-channel", "int8-token")


@dataclass(frozen=True)
class FidelityPolicy:
    """Thresholds a clip's decoded F_4D must meet; :meth:`parse` reads the ``MEAN[,WORST]`` of
    ``p4d precompute --min-cosine`` (token cosines) and of ``--min-channel-r2`` (per-channel R^2,
    per tap; :func:`channel_fidelity`)."""

    min_mean_cosine: float = 0.999
    min_worst_cosine: float = 0.995
    min_channel_r2_mean: float = 0.99
    min_channel_r2_worst: float = 0.95

    def __post_init__(self):
        for name in ("min_mean_cosine", "min_worst_cosine", "min_channel_r2_mean", "min_channel_r2_worst"):
            v = getattr(self, name)
            flag = "--min-cosine" if "cosine" in name else "--min-channel-r2"
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not -1.0 <= v <= 1.0:
                raise ConfigError(f"{flag}: {name} must lie in [-1, 1], got {v!r}")

    @classmethod
    def parse(cls, text: str | None, channel_r2: str | None = None) -> "FidelityPolicy":
        """``--min-cosine`` ``"0.999,0.995"`` (mean, worst) or ``"0.999"`` (mean; worst keeps its
        default), and the same form for ``--min-channel-r2`` (``"0.99,0.95"``); None keeps the defaults."""
        d = cls()
        mean, worst = _mean_worst("--min-cosine", text, d.min_mean_cosine, d.min_worst_cosine, "0.999,0.995")
        r2_mean, r2_worst = _mean_worst("--min-channel-r2", channel_r2, d.min_channel_r2_mean,
                                        d.min_channel_r2_worst, "0.99,0.95")
        return cls(mean, worst, r2_mean, r2_worst)

    def failures(self, stats: dict) -> list[str]:
        """The criteria ``stats`` (:func:`token_fidelity`'s figures) fall short of: ``token cosine``,
        ``channel R2``; empty when the clip is accepted."""
        out = []
        if not (stats["mean_cosine"] >= self.min_mean_cosine and stats["worst_cosine"] >= self.min_worst_cosine):
            out.append("token cosine")
        if not (stats["channel_r2_mean"] >= self.min_channel_r2_mean
                and stats["channel_r2_worst"] >= self.min_channel_r2_worst):
            out.append("channel R2")
        return out

    def accepts(self, stats: dict) -> bool:
        return not self.failures(stats)


def _mean_worst(flag: str, text: str | None, mean: float, worst: float, example: str) -> tuple[float, float]:
    if text is None:
        return mean, worst
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected MEAN[,WORST], e.g. {example}") from None
    if len(values) not in (1, 2):
        raise ConfigError(f"{flag} {text!r}: expected MEAN[,WORST], e.g. {example}")
    return values[0], values[1] if len(values) == 2 else worst


def token_fidelity(x: np.ndarray, y: np.ndarray) -> dict:
    """How well ``y`` reproduces ``x``, both one clip's F_4D (taps, N', h', w', c'):
    mean and worst token cosine (over taps x N' x h' x w' tokens) and the relative error
    ||y - x|| / ||x|| per tap. A token that is zero in both counts as cosine 1. Per-token sums
    in float32 (c' terms: ~1e-7 relative), everything after in float64. The channel-balanced
    figures of :func:`channel_fidelity` are included (both criteria of the self-check)."""
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
            "rel_error_per_tap": [float(v) for v in rel], **channel_fidelity(x, y)}


#: a channel whose spread is below this fraction of the tap's median channel spread (a dead channel) or
#: of its own magnitude (float32 noise about a constant) is judged against that floor instead
CHANNEL_SPREAD_FLOOR = 1e-3


def channel_r2_from_sums(sse: np.ndarray, sst: np.ndarray, ssx: np.ndarray) -> np.ndarray:
    """Per-channel R^2 from (taps, c') float64 sums over a clip's tokens: squared error ``sse``,
    squared spread about the channel's mean ``sst``, squared values ``ssx``. R^2 = 1 - sse / spread,
    spread = max(sst, (1e-3)^2 x the tap's median sst, (1e-3)^2 x ssx) (:data:`CHANNEL_SPREAD_FLOOR`),
    clipped to [0, 1]: 0 means no better than the channel's mean. A tap all zero scores 1 where
    reproduced exactly, else 0."""
    floor = CHANNEL_SPREAD_FLOOR ** 2
    denom = np.maximum(np.maximum(sst, floor * np.median(sst, axis=-1, keepdims=True)), floor * ssx)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(denom > 0, 1.0 - sse / np.where(denom > 0, denom, 1.0), np.where(sse == 0, 1.0, 0.0))
    return np.clip(r2, 0.0, 1.0)


def _r2_figures(r2: np.ndarray) -> dict:
    """(taps, c') R^2 -> per-tap mean / worst over channels, and the lowest tap's of each."""
    mean, worst = r2.mean(axis=1), r2.min(axis=1)
    return {"channel_r2_mean": float(mean.min()), "channel_r2_worst": float(worst.min()),
            "channel_r2_mean_per_tap": [float(v) for v in mean], "channel_r2_worst_per_tap": [float(v) for v in worst]}


def channel_fidelity(x: np.ndarray, y: np.ndarray) -> dict:
    """Channel-balanced fidelity of ``y`` to ``x``, both one clip's F_4D (taps, N', h', w', c'):
    each channel's R^2 over the clip's N' x h' x w' tokens (:func:`channel_r2_from_sums`: its
    squared error relative to its own spread, so a small channel weighs as much as a massive
    one; in [0, 1]), then per tap the mean and the worst over channels. ``channel_r2_mean`` /
    ``channel_r2_worst`` are the lowest tap's; the ``_per_tap`` lists hold every tap's.
    Differences and centring in float32, sums in float64."""
    taps, c = x.shape[0], x.shape[-1]
    x = np.asarray(x, np.float32).reshape(taps, -1, c)
    y = np.asarray(y, np.float32).reshape(x.shape)
    d = y - x
    sse = np.einsum("tkc,tkc->tc", d, d, dtype=np.float64)
    del d
    centred = x - x.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    sst = np.einsum("tkc,tkc->tc", centred, centred, dtype=np.float64)
    ssx = np.einsum("tkc,tkc->tc", x, x, dtype=np.float64)
    return _r2_figures(channel_r2_from_sums(sse, sst, ssx))


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
