"""F_4D encoded where the teacher ran (CUDA, or CPU tensors): the store's latent codec in torch.

Only the encoded parts cross to the host: for the default ``dpcm-channel`` codec int8 residuals
plus a float32 step and offset per channel (a quarter of the float32 bytes), and at level 1 the
K = 8 outlier tokens per channel (int32 index + float32 value). Bit-exact with the
numpy reference encoders of :mod:`p4d.cache_schema.codecs` on the same float32 input (tested on
CPU tensors through this very code):

* the per-channel statistics (mean, RMS, absmax over N', h', w') are taken in float64, then
  rounded to float32, as numpy does; the quantisation ``rint((x - offset) / step)`` is the same
  float32 arithmetic (round half to even), and the DPCM prediction floor((left + up) / 2) the
  same integer arithmetic. Every token's residual depends only on already-quantised
  neighbours, so the encode side is one vectorised pass (the decode side is the recurrence).
* level 1's outliers are chosen by the same rule on the same float32 |x - mean| (the K largest
  per channel, ties at the K-th value in token order: the K-th largest value from ``topk``, then
  a cumulative count over the ties, never the tie order of a sort), then the statistics of the
  rest as above.
* float64 sums in another order than numpy's can differ in their last bit; that moves a float32
  step or offset by one ulp only when the float64 value sits within ~1e-16 of a float32 rounding
  boundary (about 1e-9 per channel), which no test or store here has met.

Memory: the float64 statistics are taken ``block`` clip-taps at a time (default: all at once on
CUDA, one clip-tap on CPU), so the host path holds at most one (N', h', w', c') float64 block.
"""

from __future__ import annotations

import numpy as np
import torch

from p4d.cache_schema.codecs import DPCM_STEP_RMS, LATENT_CODECS, NO_OUTLIER, outlier_count
from p4d.errors import CacheSchemaError

__all__ = ["DEVICE_CODECS", "all_finite", "cast_clamped", "encode_checked", "encode_latents", "dpcm_encode", "token_fidelity"]

_GRID = (-4, -3, -2)  # N', h', w'


def _wrap_int8(v: torch.Tensor) -> torch.Tensor:
    return (((v + 128) & 0xFF) - 128).to(torch.int8)


def _dpcm_residual(q: torch.Tensor) -> torch.Tensor:
    """int8 residual q - prediction on the (h', w') grid; ``q`` (..., h', w', c') int16."""
    pred = torch.zeros_like(q)
    pred[..., 1:, 1:, :] = (q[..., 1:, :-1, :] + q[..., :-1, 1:, :]) >> 1  # >> floors negatives
    pred[..., 0, 1:, :] = q[..., 0, :-1, :]
    pred[..., 1:, 0, :] = q[..., :-1, 0, :]
    return _wrap_int8(q - pred)


def _select_outliers(d: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`p4d.cache_schema.codecs.select_outliers` on (B, T, c') rows: per (clip-tap, channel)
    the ``k`` largest of ``d``, ties at the k-th largest value taken in token order."""
    # the k-th largest value: topk over a tokens-last copy (5x faster on CPU than kthvalue along dim 1)
    kth = d.transpose(1, 2).contiguous().topk(k, dim=-1).values[..., -1:].transpose(1, 2)
    above, tied = d > kth, d == kth
    need = k - above.sum(dim=1, keepdim=True)
    chosen = above | tied
    ambiguous = tied.sum(dim=1, keepdim=True) > need  # more ties than places: first ones in token order
    if bool(ambiguous.any()):
        chosen = torch.where(ambiguous, above | (tied & (tied.cumsum(dim=1) <= need)), chosen)
    return chosen


def _quantise(x: torch.Tensor, step_over_rms: float, outliers: int = 0):
    """(q int16, step, offset, outlier index, outlier value) of x (B, N', h', w', c') float32: one
    block of clip-taps; index (B, K, c') int32 and value (B, K, c') float32 only when ``outliers``
    (= K), else None.

    The statistics run on (B, N' h' w', c') rows. absmax = max(max(x) - mean, mean - min(x)) in
    float64 equals numpy's max |x - mean| exactly (float64 rounding of x - mean is monotone in x).
    With outliers, the numpy encoder's steps: the K tokens farthest (float32 |x - mean|) from the
    channel's mean are chosen, mean / RMS / absmax taken over the others, their q set to 0.
    """
    b, c = x.shape[0], x.shape[-1]
    rows = x.reshape(b, -1, c)
    x64 = rows.to(torch.float64)
    offset64 = x64.sum(dim=1, keepdim=True) / rows.shape[1]
    if not bool(torch.isfinite(offset64).all()):  # a float64 sum of finite float32 values cannot overflow
        raise CacheSchemaError("latents for codec 'dpcm-channel': expected finite values, found NaN/Inf "
                               "(record such clips as failed)")
    index = value = chosen = None
    if not outliers:
        x64 -= offset64
        rms = (x64.square_().sum(dim=1, keepdim=True) / rows.shape[1]).sqrt_()
        del x64
        absmax = torch.maximum(rows.amax(dim=1, keepdim=True).to(torch.float64) - offset64,
                               offset64 - rows.amin(dim=1, keepdim=True).to(torch.float64))
    else:
        chosen = _select_outliers((rows - offset64.to(torch.float32)).abs(), outliers)
        index = chosen.transpose(1, 2).nonzero()[:, 2].reshape(b, c, outliers).transpose(1, 2)
        value = rows.gather(1, index)
        index = index.to(torch.int32)
        rest = max(rows.shape[1] - outliers, 1)
        x64.masked_fill_(chosen, 0.0)
        offset64 = x64.sum(dim=1, keepdim=True) / rest
        x64 -= offset64
        x64.masked_fill_(chosen, 0.0)
        absmax = x64.abs().amax(dim=1, keepdim=True)
        rms = (x64.square_().sum(dim=1, keepdim=True) / rest).sqrt_()
        del x64
    step = torch.maximum(step_over_rms * rms, absmax / 127.0).to(torch.float32)
    step = torch.where(step > 0, step, torch.ones_like(step))
    offset = offset64.to(torch.float32)
    q = torch.round((rows - offset) / step).clamp_(-127, 127).to(torch.int16)
    if chosen is not None:
        q.masked_fill_(chosen, 0)
    return q.reshape(x.shape), step[:, 0], offset[:, 0], index, value


def _dpcm(x: torch.Tensor, step_over_rms: float, block: int | None, decode: bool = True,
          outliers: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(dpcm-channel parts, decoded float32) of x (..., N', h', w', c'); decoded = q * step + offset
    with the outlier values put back, the numpy decoder's arithmetic (it reconstructs q exactly
    from the residuals)."""
    x = x.to(torch.float32)
    lead, grid = x.shape[:-4], x.shape[-4:]
    flat = x.reshape(-1, *grid)
    block = block or (flat.shape[0] if x.is_cuda else 1)
    k = outlier_count(tuple(x.shape))
    blocks = [_quantise(flat[i:i + block], step_over_rms, k if outliers else 0)
              for i in range(0, flat.shape[0], block)]
    q, step, offset = (torch.cat(t) for t in list(zip(*blocks))[:3])
    c = grid[-1]
    if outliers:
        index, value = (torch.cat(t) for t in list(zip(*blocks))[3:])
    else:
        index = torch.full((flat.shape[0], k, c), NO_OUTLIER, dtype=torch.int32, device=x.device)
        value = torch.zeros((flat.shape[0], k, c), dtype=torch.float32, device=x.device)
    parts = {"f4d": _dpcm_residual(q).reshape(x.shape), "f4d_scale": step.reshape(*lead, c),
             "f4d_offset": offset.reshape(*lead, c), "f4d_outlier_index": index.reshape(*lead, k, c),
             "f4d_outlier_value": value.reshape(*lead, k, c)}
    if not decode:
        return parts, None
    decoded = q.to(torch.float32) * step[:, None, None, None, :] + offset[:, None, None, None, :]
    if outliers:
        decoded = decoded.reshape(flat.shape[0], -1, c).scatter_(1, index.long(), value)
    return parts, decoded.reshape(x.shape)


def dpcm_encode(x: torch.Tensor, *, step_over_rms: float = DPCM_STEP_RMS, block: int | None = None,
                outliers: bool = False) -> dict[str, torch.Tensor]:
    """The ``dpcm-channel`` codec: x (..., N', h', w', c') finite float -> parts on x's device.

    ``f4d`` (..., N', h', w', c') int8 residuals, ``f4d_scale`` and ``f4d_offset`` (..., c') float32,
    ``f4d_outlier_index`` (..., K, c') int32 and ``f4d_outlier_value`` (..., K, c') float32.
    ``step_over_rms=0, outliers=True`` is the self-check's level 1 (per channel K tokens kept
    exactly, the rest at their finest step); ``outliers=False`` stores index -1 everywhere.
    ``block``: clip-taps whose float64 statistics are held at once (None: all on CUDA, 1 on CPU).
    """
    return _dpcm(x, step_over_rms, block, decode=False, outliers=outliers)[0]


def token_fidelity(x: torch.Tensor, y: torch.Tensor) -> dict:
    """:func:`p4d.cache_schema.fidelity.token_fidelity` in torch on one clip (taps, N', h', w', c'):
    the same formulas; per-token float32 sums in another order, so figures agree to ~1e-7. The
    channel-balanced figures (:func:`channel_fidelity`) are included, as in numpy."""
    taps, c = x.shape[0], x.shape[-1]
    x = x.reshape(taps, -1, c).to(torch.float32)
    y = y.reshape(x.shape).to(torch.float32)
    d = y - x
    dot, nx2, ny2, err2 = ((a * b).sum(dim=-1).to(torch.float64) for a, b in ((x, y), (x, x), (y, y), (d, d)))
    denom = (nx2 * ny2).sqrt()
    both_zero = (nx2 == 0) & (ny2 == 0)
    cos = torch.where(denom > 0, dot / torch.where(denom > 0, denom, torch.ones_like(denom)),
                      both_zero.to(torch.float64))
    norm2 = nx2.sum(dim=1)
    rel = (err2.sum(dim=1) / torch.where(norm2 > 0, norm2, torch.ones_like(norm2))).sqrt()
    return {"mean_cosine": float(cos.mean()), "worst_cosine": float(min(float(cos.min()), 1.0)),
            "rel_error_per_tap": [float(v) for v in rel.cpu()], **channel_fidelity(x, y)}


def channel_fidelity(x: torch.Tensor, y: torch.Tensor) -> dict:
    """:func:`p4d.cache_schema.fidelity.channel_fidelity` in torch on one clip (taps, N', h', w', c'):
    the per-channel sums (squared error, spread about the channel mean, x^2; float64) are taken on
    x's device, only the (taps, c') sums cross to the host for the same R^2 formula."""
    from p4d.cache_schema.fidelity import _r2_figures, channel_r2_from_sums

    taps, c = x.shape[0], x.shape[-1]
    x = x.reshape(taps, -1, c).to(torch.float32)
    y = y.reshape(x.shape).to(torch.float32)
    sse = (y - x).square().sum(dim=1, dtype=torch.float64)
    centred = x - x.mean(dim=1, keepdim=True, dtype=torch.float64).to(torch.float32)
    sst = centred.square().sum(dim=1, dtype=torch.float64)
    ssx = x.square().sum(dim=1, dtype=torch.float64)
    return _r2_figures(channel_r2_from_sums(*(t.cpu().numpy() for t in (sse, sst, ssx))))


def _float16(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"f4d": x.to(torch.float16)}


#: codec name -> torch encoder; the other codecs are encoded on the host by their numpy encoder.
DEVICE_CODECS = {"dpcm-channel": dpcm_encode, "float16-zstd": _float16}


def _bf16_bits(x: torch.Tensor) -> torch.Tensor:
    """bfloat16 bit patterns as int16 (round to nearest even, = numpy's float32_to_bfloat16_bits for finite x)."""
    return x.to(torch.bfloat16).view(torch.int16)


def encode_checked(codec: str, x: torch.Tensor, policy) -> dict:
    """:func:`p4d.cache_schema.fidelity.encode_checked` where the teacher ran: each clip of F_4D
    ``x`` (B, taps, N', h', w', c') (finite) encoded, decoded on its device, checked token by token
    against ``x`` by ``policy`` (a FidelityPolicy, or None: no check), falling back to level 1
    (each channel's outlier tokens kept exactly, the rest at their finest step), then bfloat16.
    Returns host arrays for ``write_shard``'s encoded ``f4d``: the codec's parts, ``f4d_bf16`` (only when a clip fell back that far), ``levels`` (B,) uint8 and
    ``fidelity`` (B figures or None). Codecs without a torch encoder go through the numpy one."""
    from p4d.cache_schema.fidelity import CHECKED_CODECS, FALLBACK_PART
    from p4d.cache_schema.fidelity import encode_checked as numpy_checked

    b = x.shape[0]
    if codec != "dpcm-channel" or policy is None:
        if codec in CHECKED_CODECS and policy is not None:  # no torch encoder: checked on the host
            parts, bf16, levels, stats = numpy_checked(codec, x.float().cpu().numpy(), np.ones(b, bool), policy)
            return {**parts, **({FALLBACK_PART: bf16} if bf16 is not None else {}), "levels": levels,
                    "fidelity": stats}
        return {**encode_latents(codec, x), "levels": np.zeros(b, np.uint8), "fidelity": [None] * b}
    per_clip, levels, stats, bf16 = [], np.zeros(b, np.uint8), [None] * b, None
    for i in range(b):
        clip = x[i:i + 1].to(torch.float32)
        for level, step_over_rms, outliers in ((0, DPCM_STEP_RMS, False), (1, 0.0, True)):
            parts, decoded = _dpcm(clip, step_over_rms, None, outliers=outliers)
            st = {**token_fidelity(clip[0], decoded[0]), "level": level}
            if policy.accepts(st):
                break
        else:  # level 2: bfloat16 bits in their own array, zeros in the codec's rows
            bits = _bf16_bits(clip)
            bf16 = np.zeros(x.shape, np.uint16) if bf16 is None else bf16
            bf16[i] = bits[0].cpu().numpy().view(np.uint16)
            parts = _dpcm(torch.zeros_like(clip), DPCM_STEP_RMS, None, decode=False)[0]
            st = {**token_fidelity(clip[0], bits.view(torch.bfloat16).to(torch.float32)[0]), "level": 2}
        levels[i], stats[i] = st["level"], st
        per_clip.append({k: v.cpu().numpy() for k, v in parts.items()})
    out = {k: np.concatenate([p[k] for p in per_clip]) for k in per_clip[0]}
    if bf16 is not None:
        out[FALLBACK_PART] = bf16
    return {**out, "levels": levels, "fidelity": stats}


def encode_latents(codec: str, x: torch.Tensor) -> dict[str, np.ndarray]:
    """The codec's stored parts of F_4D ``x`` (..., N', h', w', c') as host numpy arrays.

    Encoded on x's device when the codec has a torch encoder (only the parts are copied to the
    host), else copied to the host as float32 and encoded by the numpy reference.
    """
    if codec not in LATENT_CODECS:
        raise CacheSchemaError(f"latent codec {codec!r}: expected one of {', '.join(LATENT_CODECS)}")
    if codec in DEVICE_CODECS:
        return {k: v.cpu().numpy() for k, v in DEVICE_CODECS[codec](x).items()}
    return LATENT_CODECS[codec].encode(x.float().cpu().numpy())


def all_finite(x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: is every value of each x[b] finite. min/max propagate NaN and keep +-inf, and cost
    a tenth of ``isfinite(x).all()`` on CPU."""
    rows = x.reshape(x.shape[0], -1)
    return torch.isfinite(rows.amin(dim=1)) & torch.isfinite(rows.amax(dim=1))


def cast_clamped(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (B, ...) finite, cast to ``dtype`` first, then every value that overflowed to +-inf
    clamped to +-the largest finite value of ``dtype`` (float16: 65504); returns (the cast tensor,
    (B,) int64 count of clamped values per row). Cast, then check: a float16 map of a finite
    float32 one holds inf exactly where the float32 value rounds past 65504."""
    y = x.to(dtype)
    over = torch.isinf(y).reshape(y.shape[0], -1).sum(dim=1)
    if bool(over.any()):
        big = torch.finfo(dtype).max
        y = y.clamp(-big, big)
    return y, over
