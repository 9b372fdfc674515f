"""Cache targets decoded on the trainer's device: stored parts in, float32 targets out.

The loader hands the stored bytes' arrays (:func:`p4d.cache_schema.read_clip_parts`): int8
DPCM residuals + per-channel float32 scale/offset for F_4D (and, in dpcm-channel format v2, the
level-1 outlier tokens' int32 indices + float32 values, put back after the affine decode), float16 maps. The trainer moves them
to its device (a quarter of the float32 bytes over PCIe) and reconstructs there. Bit-exact with
the numpy decoders of :mod:`p4d.cache_schema.codecs` (the same integer arithmetic, and the same
float32 multiply-then-add), on CPU tensors as on CUDA.

The DPCM inverse is a recurrence on the (h', w') grid (q[y, x] = r[y, x] + floor((q[y, x-1] +
q[y-1, x]) / 2)); every token of one anti-diagonal y + x = d depends only on the previous one,
so it runs as h' + w' - 1 steps, each vectorised over that diagonal's tokens and every other
axis (clips x taps x N' x c' lanes).
"""

from __future__ import annotations

import torch

from p4d.cache_schema.map_codecs import MAP_QUANT, QUANT_PART
from p4d.errors import CacheSchemaError

__all__ = ["apply_outliers", "dpcm_reconstruct", "decode_latent_parts", "decode_map_parts", "decode_target_parts"]


def _wrap_int8(v: torch.Tensor) -> torch.Tensor:
    """Integers modulo 256 into [-128, 127] (int16 in, int16 out)."""
    return ((v + 128) & 0xFF) - 128


def _diagonals(h: int, w: int, device) -> list[tuple[torch.Tensor, ...]]:
    """Per anti-diagonal d = y + x (d >= 1): flat indices of its tokens, of their left and upper
    neighbours (clamped at the border), and the masks of first-row / first-column tokens."""
    out = []
    for d in range(1, h + w - 1):
        ys = torch.arange(max(0, d - w + 1), min(d, h - 1) + 1)
        xs = d - ys
        out.append(tuple(t.to(device) for t in (
            ys * w + xs, ys * w + (xs - 1).clamp(min=0), (ys - 1).clamp(min=0) * w + xs,
            (ys == 0)[:, None], (xs == 0)[:, None])))
    return out


def dpcm_reconstruct(residual: torch.Tensor) -> torch.Tensor:
    """Quantised values q (int16) from int8 DPCM residuals ``(..., h', w', c')``.

    Prediction: interior floor((left + up) / 2), first row left, first column up, (0, 0) zero.
    """
    if residual.dtype != torch.int8:
        raise CacheSchemaError(f"dpcm residuals: expected int8, got {residual.dtype}")
    h, w = residual.shape[-3], residual.shape[-2]
    grid_first = residual.movedim((-3, -2), (0, 1))
    r = grid_first.reshape(h * w, -1).to(torch.int16)  # (h' w', lanes)
    q = torch.empty_like(r)
    q[0] = r[0]
    for token, left_i, up_i, row0, col0 in _diagonals(h, w, r.device):
        left = q.index_select(0, left_i)
        up = q.index_select(0, up_i)
        pred = torch.where(row0, left, torch.where(col0, up, (left + up) >> 1))  # >> floors negatives
        q.index_copy_(0, token, _wrap_int8(r.index_select(0, token) + pred))
    return q.reshape(grid_first.shape).movedim((0, 1), (-3, -2))


def apply_outliers(out: torch.Tensor, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """:func:`p4d.cache_schema.codecs.apply_outliers` on the device: ``out`` (..., N', h', w', c')
    float32 with ``value`` (..., K, c') put at the flat (N', h', w') token ``index`` (..., K, c')
    of each entry that is not -1 (level 0 and 2 clips hold only -1). A scatter into one spare
    token per channel takes the -1 entries, so no host sync (no nonzero) is needed."""
    shape = out.shape
    tokens = shape[-4] * shape[-3] * shape[-2]
    flat = out.reshape(*shape[:-4], tokens, shape[-1])
    spare = torch.cat([flat, flat.new_zeros(*shape[:-4], 1, shape[-1])], dim=-2)
    idx = index.to(torch.int64)
    idx = torch.where(idx < 0, torch.full_like(idx, tokens), idx)
    spare.scatter_(-2, idx, value.to(torch.float32))
    return spare[..., :tokens, :].reshape(shape)


def decode_latent_parts(codec: str, parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """F_4D ``(..., N', h', w', c')`` float32 from a codec's stored parts (tensors on any device)."""
    if codec == "dpcm-channel":
        q = dpcm_reconstruct(parts["f4d"])
        out = q.to(torch.float32)
        out = out * parts["f4d_scale"].to(torch.float32)[..., None, None, None, :]
        out = out + parts["f4d_offset"].to(torch.float32)[..., None, None, None, :]
        if "f4d_outlier_index" in parts:  # format v2; a v1 store's parts have none
            out = apply_outliers(out, parts["f4d_outlier_index"], parts["f4d_outlier_value"])
        return out
    if codec == "int8-channel":
        return parts["f4d"].to(torch.float32) * parts["f4d_scale"].to(torch.float32)[..., None, None, None, :]
    if codec == "int8-token":
        return parts["f4d"].to(torch.float32) * parts["f4d_scale"].to(torch.float32)[..., None]
    if codec == "float16-zstd":
        return parts["f4d"].to(torch.float32)
    if codec == "bfloat16":
        return (parts["f4d"].to(torch.int32) << 16).view(torch.float32)
    raise CacheSchemaError(f"no device decoder for latent codec {codec!r}")


def decode_map_parts(modality: str, codes: torch.Tensor, quant: torch.Tensor) -> torch.Tensor:
    """A quant16 map (B, N, H, W, ch) float32 from its int16 ``codes`` and ``quant`` (B, 2, ch)
    (step, offset): ``codes * step + offset`` (exp for depth); clips whose step is NaN hold float16
    bits. :func:`p4d.cache_schema.map_codecs.decode_map` on the device, bit for bit (the same float32
    arithmetic; depth's exp in float64, rounded once)."""
    lead = (slice(None),) + (None,) * (codes.dim() - 2)
    quant = quant.to(torch.float32)
    out = codes.to(torch.float32) * quant[:, 0][lead] + quant[:, 1][lead]
    if MAP_QUANT[modality].log:  # float64 exp rounded once, as the numpy decode does
        out = out.double().exp().float()
    fallback = torch.isnan(quant[:, 0, 0]).view((-1,) + (1,) * (codes.dim() - 1))
    return torch.where(fallback, codes.view(torch.float16).to(torch.float32), out)


def decode_target_parts(codec: str, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every target of a batch of stored parts as float32: ``f4d`` from the ``f4d*`` parts
    (when present; ``f4d_level`` / ``f4d_bf16`` carry the clips of the codec's bfloat16
    fallback), each map converted (float16 as stored) or decoded (a quant16 map's int16 codes with
    its ``<m>_quant``); other entries pass through."""
    out: dict[str, torch.Tensor] = {}
    latent = {k: v for k, v in parts.items() if k.startswith("f4d")}
    if latent:
        levels, bf16 = latent.pop("f4d_level", None), latent.pop("f4d_bf16", None)
        out["f4d"] = decode_latent_parts(codec, latent)
        if bf16 is not None:  # clips the codec's self-check stored as bfloat16 (level 2)
            fallback = (levels == 2).view((-1,) + (1,) * (bf16.dim() - 1))
            out["f4d"] = torch.where(fallback, decode_latent_parts("bfloat16", {"f4d": bf16}), out["f4d"])
    for k, v in parts.items():
        if k.startswith("f4d") or k.endswith(f"_{QUANT_PART}"):
            continue
        quant = parts.get(f"{k}_{QUANT_PART}")
        if quant is not None:  # a quant16 map: int16 codes + (step, offset) per clip and channel
            out[k] = decode_map_parts(k, v, quant)
        else:
            out[k] = v.to(torch.float32) if v.is_floating_point() else v
    return out
