"""F_4D encoded where the teacher ran (CUDA, or CPU tensors): the store's latent codec in torch.

Only the encoded parts cross to the host: for the default ``dpcm-channel`` codec int8 residuals
plus a float32 step and offset per channel (a quarter of the float32 bytes). Bit-exact with the
numpy reference encoders of :mod:`p4d.cache_schema.codecs` on the same float32 input (tested on
CPU tensors through this very code):

* the per-channel statistics (mean, RMS, absmax over N', h', w') are taken in float64, then
  rounded to float32, as numpy does; the quantisation ``rint((x - offset) / step)`` is the same
  float32 arithmetic (round half to even), and the DPCM prediction floor((left + up) / 2) the
  same integer arithmetic. Every token's residual depends only on already-quantised
  neighbours, so the encode side is one vectorised pass (the decode side is the recurrence).
* float64 sums in another order than numpy's can differ in their last bit; that moves a float32
  step or offset by one ulp only when the float64 value sits within ~1e-16 of a float32 rounding
  boundary (about 1e-9 per channel), which no test or store here has met.

Memory: the float64 statistics are taken ``block`` clip-taps at a time (default: all at once on
CUDA, one clip-tap on CPU), so the host path holds at most one (N', h', w', c') float64 block.
"""

from __future__ import annotations

import numpy as np
import torch

from p4d.cache_schema.codecs import DPCM_STEP_RMS, LATENT_CODECS
from p4d.errors import CacheSchemaError

__all__ = ["DEVICE_CODECS", "all_finite", "encode_checked", "encode_latents", "dpcm_encode", "token_fidelity"]

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


def _quantise(x: torch.Tensor, step_over_rms: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q int16, step, offset) of x (B, N', h', w', c') float32: one block of clip-taps.

    The statistics run on (B, N' h' w', c') rows. absmax = max(max(x) - mean, mean - min(x)) in
    float64 equals numpy's max |x - mean| exactly (float64 rounding of x - mean is monotone in x).
    """
    b, c = x.shape[0], x.shape[-1]
    rows = x.reshape(b, -1, c)
    x64 = rows.to(torch.float64)
    offset64 = x64.sum(dim=1, keepdim=True) / rows.shape[1]
    if not bool(torch.isfinite(offset64).all()):  # a float64 sum of finite float32 values cannot overflow
        raise CacheSchemaError("latents for codec 'dpcm-channel': expected finite values, found NaN/Inf "
                               "(record such clips as failed)")
    x64 -= offset64
    rms = (x64.square_().sum(dim=1, keepdim=True) / rows.shape[1]).sqrt_()
    del x64
    absmax = torch.maximum(rows.amax(dim=1, keepdim=True).to(torch.float64) - offset64,
                           offset64 - rows.amin(dim=1, keepdim=True).to(torch.float64))
    step = torch.maximum(step_over_rms * rms, absmax / 127.0).to(torch.float32)
    step = torch.where(step > 0, step, torch.ones_like(step))
    offset = offset64.to(torch.float32)
    q = torch.round((rows - offset) / step).clamp_(-127, 127).to(torch.int16)
    return q.reshape(x.shape), step[:, 0], offset[:, 0]


def _dpcm(x: torch.Tensor, step_over_rms: float, block: int | None,
          decode: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(dpcm-channel parts, decoded float32) of x (..., N', h', w', c'); decoded = q * step + offset,
    the numpy decoder's arithmetic (it reconstructs q exactly from the residuals)."""
    x = x.to(torch.float32)
    lead, grid = x.shape[:-4], x.shape[-4:]
    flat = x.reshape(-1, *grid)
    block = block or (flat.shape[0] if x.is_cuda else 1)
    q, step, offset = (torch.cat(t) for t in zip(*(_quantise(flat[i:i + block], step_over_rms)
                                                     for i in range(0, flat.shape[0], block))))
    c = grid[-1]
    parts = {"f4d": _dpcm_residual(q).reshape(x.shape), "f4d_scale": step.reshape(*lead, c),
             "f4d_offset": offset.reshape(*lead, c)}
    if not decode:
        return parts, None
    decoded = q.to(torch.float32) * step[:, None, None, None, :] + offset[:, None, None, None, :]
    return parts, decoded.reshape(x.shape)


def dpcm_encode(x: torch.Tensor, *, step_over_rms: float = DPCM_STEP_RMS, block: int | None = None
                ) -> dict[str, torch.Tensor]:
    """The ``dpcm-channel`` codec: x (..., N', h', w', c') finite float -> parts on x's device.

    ``f4d`` (..., N', h', w', c') int8 residuals, ``f4d_scale`` and ``f4d_offset`` (..., c') float32.
    ``step_over_rms=0`` is the finest step (the self-check's level 1). ``block``: clip-taps whose
    float64 statistics are held at once (None: all on CUDA, 1 on CPU).
    """
    return _dpcm(x, step_over_rms, block, decode=False)[0]


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
    against ``x`` by ``policy`` (a FidelityPolicy, or None: no check), falling back to the finest
    dpcm step, then bfloat16. Returns host arrays for ``write_shard``'s encoded ``f4d``: the
    codec's parts, ``f4d_bf16`` (only when a clip fell back that far), ``levels`` (B,) uint8 and
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
        for level, step_over_rms in ((0, DPCM_STEP_RMS), (1, 0.0)):
            parts, decoded = _dpcm(clip, step_over_rms, None)
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
