"""Augmentation only where the cached targets can follow it.

Horizontal flip is replayed on the maps, which mirror with the image: depth and motion are
mirrored along W; backward flow is mirrored and its x component negated; the Plücker rays of
the camray map, relative to frame 0's camera, become those of the mirrored camera (reflection
S = diag(−1, 1, 1) in camera-0 coordinates): d → S·d = (−d_x, d_y, d_z) and m = c × d →
(S·c) × (S·d) = det(S)·S·m = (m_x, −m_y, −m_z), on the mirrored patch grid. F_4D does not mirror
with the image (the teacher's features are not flip-equivariant), so a flip is refused while
L_LD or an F_4D input is on (:meth:`p4d.train.config.TrainConfig.validate`), and
:func:`flip_targets` refuses an F_4D target. Temporal subsampling is refused: it breaks the
cached backward flow (t → t−1) and the teacher's 2-frame tubelets.

Arrays are one clip's, channels last: frames (N, H, W, 3), depth/motion (N, H, W, 1),
flow (N, H, W, 2), camray (N, h_p, w_p, 6).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from p4d.cache_schema.map_codecs import QUANT_PART
from p4d.errors import ConfigError

#: Separates the flip's random stream from other per-sample streams.
FLIP_STREAM = 0xF11
#: Sign applied per camray channel (d_x, d_y, d_z, m_x, m_y, m_z) after mirroring the grid.
CAMRAY_FLIP_SIGN = np.array([-1, 1, 1, 1, -1, -1], dtype=np.float32)


def flip_frames(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) → mirrored along W."""
    return np.ascontiguousarray(frames[:, :, ::-1])


#: Sign per channel of the maps whose channels change sign under the flip; depth and motion are only mirrored.
FLIP_SIGNS = {"flow": np.array([-1, 1], dtype=np.float32), "camray": CAMRAY_FLIP_SIGN}
MIRRORED_ONLY = ("depth", "motion")


def _check_flip_rule(name: str) -> None:
    if name == "f4d":
        raise ConfigError("--augment.hflip: F_4D does not mirror with the image; a flip is refused while LD or an "
                          "F_4D input is on (set --augment.hflip 0 or --loss ed-only)")
    if name not in MIRRORED_ONLY and name not in FLIP_SIGNS:
        raise ConfigError(f"flip: no flip rule for target {name!r}")


def flip_map(name: str, value: np.ndarray) -> np.ndarray:
    """One cached map of a clip, replayed for a horizontally flipped clip."""
    _check_flip_rule(name)
    mirrored = value[:, :, ::-1]
    out = mirrored * FLIP_SIGNS[name].astype(value.dtype) if name in FLIP_SIGNS else mirrored
    return np.ascontiguousarray(out)


def flip_quantised(name: str, codes: np.ndarray, quant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A quant16 map of one clip as stored (int16 ``codes`` (N, H, W, ch), ``quant`` (2, ch) =
    (step, offset), :mod:`p4d.cache_schema.map_codecs`), replayed for the flip without decoding:
    mirrored along W, and a channel whose sign flips gets codes -q and offset -offset (exact), or,
    in a clip stored as float16 (step NaN), its sign bit flipped."""
    _check_flip_rule(name)
    out = np.ascontiguousarray(codes[:, :, ::-1])
    quant = np.array(quant, dtype=np.float32, copy=True)
    neg = FLIP_SIGNS[name] < 0 if name in FLIP_SIGNS else np.zeros(codes.shape[-1], bool)
    if neg.any():
        if np.isnan(quant[0, 0]):
            out[..., neg] ^= np.int16(-0x8000)
        else:
            out[..., neg] = -out[..., neg]
            quant[1, neg] = -quant[1, neg]
    return out, quant


def flip_targets(targets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every target of a clip replayed for the flip (refuses ``f4d``); a quant16 map handed over
    as stored (``<m>`` int16 with ``<m>_quant``) is flipped in code space (:func:`flip_quantised`)."""
    out = {}
    for name, value in targets.items():
        if name.endswith(f"_{QUANT_PART}") and name[:-len(QUANT_PART) - 1] in targets:
            continue  # flipped with its map
        if f"{name}_{QUANT_PART}" in targets:
            out[name], out[f"{name}_{QUANT_PART}"] = flip_quantised(name, value, targets[f"{name}_{QUANT_PART}"])
        else:
            out[name] = flip_map(name, value)
    return out


def flip_region(region: dict, width: int) -> dict:
    """A region prompt on an image of ``width`` pixels, mirrored (box x0,x1 → W−x1, W−x0; masks
    and polygons are mirrored when decoded, see :func:`p4d.train.loader.region_for`)."""
    out = dict(region)
    if region.get("box") is not None:
        x0, y0, x1, y1 = region["box"]
        out["box"] = [width - x1, y0, width - x0, y1]
    else:
        out["_flip"] = True
    return out


def should_flip(probability: float, seed: int, epoch: int, index: int) -> bool:
    """A flip decision that depends only on (seed, epoch, sample index): the same with any
    number of workers or ranks, and after a resume."""
    if probability <= 0:
        return False
    return bool(np.random.default_rng([seed, epoch, index, FLIP_STREAM]).random() < probability)
