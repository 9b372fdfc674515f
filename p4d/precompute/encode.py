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

__all__ = ["DEVICE_CODECS", "all_finite", "encode_latents", "dpcm_encode"]

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


def _dpcm_block(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(residual, step, offset) of x (B, N', h', w', c') float32: one block of clip-taps.

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
    step = torch.maximum(DPCM_STEP_RMS * rms, absmax / 127.0).to(torch.float32)
    step = torch.where(step > 0, step, torch.ones_like(step))
    offset = offset64.to(torch.float32)
    q = torch.round((rows - offset) / step).clamp_(-127, 127).to(torch.int16)
    return _dpcm_residual(q.reshape(x.shape)), step[:, 0], offset[:, 0]


def dpcm_encode(x: torch.Tensor, *, block: int | None = None) -> dict[str, torch.Tensor]:
    """The ``dpcm-channel`` codec: x (..., N', h', w', c') finite float -> parts on x's device.

    ``f4d`` (..., N', h', w', c') int8 residuals, ``f4d_scale`` and ``f4d_offset`` (..., c') float32.
    ``block``: clip-taps whose float64 statistics are held at once (None: all on CUDA, 1 on CPU).
    """
    x = x.to(torch.float32)
    lead, grid = x.shape[:-4], x.shape[-4:]
    flat = x.reshape(-1, *grid)
    block = block or (flat.shape[0] if x.is_cuda else 1)
    out = [_dpcm_block(flat[i:i + block]) for i in range(0, flat.shape[0], block)]
    residual, step, offset = (torch.cat(t) for t in zip(*out))
    c = grid[-1]
    return {"f4d": residual.reshape(x.shape), "f4d_scale": step.reshape(*lead, c),
            "f4d_offset": offset.reshape(*lead, c)}


def _float16(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"f4d": x.to(torch.float16)}


#: codec name -> torch encoder; the other codecs are encoded on the host by their numpy encoder.
DEVICE_CODECS = {"dpcm-channel": dpcm_encode, "float16-zstd": _float16}


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
