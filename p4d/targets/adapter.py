"""A drop-in for an online L4P adapter: the same output fields, served from the cache.

A VILA-style trainer that distils from L4P online calls an adapter on the step's videos and
reads, from the object it returns, the stacked taps and the heads' maps (notes/release.md §7).
:class:`CachedL4P` answers the same call from a p4d cache: it needs to know *which* clip each
row of the batch is (video path + the frame indices the trainer sampled), not its pixels, so
the call takes those as keywords; the pixel tensor, if passed, only fixes B, N and the device::

    teacher = CachedL4P("cache.zarr", teacher_hash=None, on_missing="raise")
    out = teacher(pixel_values, videos=paths, frame_indices=frames)   # (B, N) ints
    out.l4p_encs                 # (B, 4, 8, 1408, 16, 16): replaces stacking feats_enc's taps
    out.pred_depth, out.pred_flow_2d_backward, out.pred_dyn_mask, out.pred_camray

The cache holds the tapped layers only (``taps``); ``feats_enc`` (all 41 encoder outputs) is
not available and says so. With ``on_missing="skip"`` a batch with a miss returns None (counted
in ``teacher.reader.misses``); the trainer then decides (e.g. SFT-only for that step).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from p4d.errors import ConfigError, P4DError
from p4d.targets.lookup import TargetReader, open_targets

__all__ = ["CachedL4P", "LowLevelPerceptionOutput"]


@dataclass
class LowLevelPerceptionOutput:
    """The teacher's outputs for a batch, channels-first (the release's names and shapes; L4P sizes)."""

    l4p_encs: Any                # (B, taps, N', c', h', w')  = (B, 4, 8, 1408, 16, 16)
    pred_depth: Any              # (B, 1, N, H, W) depth
    pred_flow_2d_backward: Any   # (B, 2, N, H, W) pixels, t -> t-1
    pred_dyn_mask: Any           # (B, 1, N, H, W) logits
    pred_camray: Any             # (B, 6, N, h_p, w_p) raw Pluecker rays
    taps: tuple[int, ...] = ()   # the encoder layers stacked in l4p_encs

    @property
    def feats_enc(self):
        raise P4DError(f"the cache holds the tapped encoder layers {list(self.taps)} only, not every encoder "
                       "output: use .l4p_encs (the taps stacked, b hook n c h w) instead of stacking feats_enc")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "taps"}


class CachedL4P:
    """Serves :class:`LowLevelPerceptionOutput` from a cache instead of running L4P.

    ``store``: url or open store. ``device``: where the tensors go (None: the pixel tensor's
    device at each call, else CPU; needs torch). ``on_missing`` / ``teacher_hash`` /
    ``video_root``: as :func:`p4d.targets.open_targets`.
    """

    def __init__(self, store, *, device=None, on_missing: str = "raise", teacher_hash: str | None = None,
                 video_root: str | Path | None = None):
        self.reader: TargetReader = open_targets(store, layout="release", on_missing=on_missing,
                                                 teacher_hash=teacher_hash, device=device or "cpu",
                                                 video_root=video_root)
        self._fixed_device = device is not None
        self.taps = tuple(self.reader.store.spec.taps)

    def __call__(self, pixel_values=None, *, videos, frame_indices) -> LowLevelPerceptionOutput | None:
        """Targets of the batch's clips: ``videos`` (B paths), ``frame_indices`` (B, N) ints;
        ``pixel_values`` (B, 3, N, H, W) or (B, N, 3, H, W), optional, checked against B and N."""
        import numpy as np

        frames = np.asarray(frame_indices.cpu() if hasattr(frame_indices, "cpu") else frame_indices)
        if pixel_values is not None:
            shape = tuple(pixel_values.shape)
            if len(shape) != 5 or shape[0] != len(frames) or frames.shape[-1] not in shape[1:3]:
                raise ConfigError(f"CachedL4P: pixel_values {shape} do not match {len(frames)} videos of "
                                  f"{frames.shape[-1]} frame indices each")
            if not self._fixed_device and hasattr(pixel_values, "device"):
                self.reader.device = pixel_values.device
        out = self.reader.get(list(videos), frames)
        if out is None:
            return None
        return LowLevelPerceptionOutput(**out, taps=self.taps)

    forward = __call__
