"""Colour codings of the cached maps: depth colormap + colorbar, flow colour wheel + legend,
motion overlay, ray directions as RGB. numpy (+ matplotlib colormap tables) only; every output
is uint8 RGB.

Flow uses the standard optical-flow colour wheel of Baker et al. (Middlebury, IJCV 2011): 55
colours, RY=15, YG=6, GC=4, CB=11, BM=13, MR=6, placed around the circle in image coordinates
(x right, y down). With θ = atan2(v, u) in [0°, 360°) measured clockwise on screen from +x, the
wheel position is k = θ / 360° · 54 and the hue is interpolated between colours ⌊k⌋ and ⌊k⌋+1:

====================  =========  ===================
flow (u, v)           θ          colour
====================  =========  ===================
right (1, 0)          0°         red (255, 0, 0)
down (0, 1)           90°        orange (255, 230, 0)
at 100°               100°       yellow (255, 255, 0)
at 140°               140°       green (0, 255, 0)
left (-1, 0)          180°       sky blue (0, 209, 255)
at 240°               240°       blue (0, 0, 255)
up (0, -1)            270°       violet (88, 0, 255)
====================  =========  ===================

Saturation grows with |flow| / max_magnitude: zero flow is white, |flow| = max_magnitude is the
pure wheel colour; above it the colour is darkened to 75 % (Middlebury convention).
"""

from __future__ import annotations

import numpy as np

from p4d.errors import ConfigError

#: Segment lengths of the Baker et al. wheel: red→yellow, yellow→green, green→cyan,
#: cyan→blue, blue→magenta, magenta→red.
WHEEL_SEGMENTS: tuple[int, ...] = (15, 6, 4, 11, 13, 6)

#: Matplotlib colormap for depth: near (small depth) is red, far is blue.
DEPTH_CMAP = "turbo_r"

#: Motion overlay colour (default) and opacity at sigmoid(logit) = 1.
MOTION_COLOR = (255, 0, 0)
MOTION_ALPHA = 0.6
#: Overlay colours :func:`motion_color` picks from: the one farthest from a clip's pixels.
MOTION_PALETTE = ((255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 255, 0), (0, 0, 255))


def flow_wheel() -> np.ndarray:
    """The (55, 3) float64 colour wheel in [0, 255] (see the module docstring)."""
    ry, yg, gc, cb, bm, mr = WHEEL_SEGMENTS
    parts = []
    ramp = lambda n: np.arange(n) / n  # noqa: E731 - 0, 1/n, ..., (n-1)/n
    # each segment runs from one primary/secondary colour to the next, channel by channel
    for n, start, end in ((ry, (1, 0, 0), (1, 1, 0)), (yg, (1, 1, 0), (0, 1, 0)), (gc, (0, 1, 0), (0, 1, 1)),
                          (cb, (0, 1, 1), (0, 0, 1)), (bm, (0, 0, 1), (1, 0, 1)), (mr, (1, 0, 1), (1, 0, 0))):
        t = ramp(n)[:, None]
        parts.append((1 - t) * np.asarray(start, float) + t * np.asarray(end, float))
    return 255.0 * np.concatenate(parts)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Backward flow (..., 2) in pixels (u, v) → (..., 3) uint8 through the colour wheel.

    ``max_magnitude``: |flow| drawn fully saturated (default: the largest |flow| in ``flow``;
    pass one value per clip so that frames are comparable). Zero flow is white.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim < 1 or flow.shape[-1] != 2:
        raise ConfigError(f"flow: expected (..., 2) (u, v) in pixels, found shape {flow.shape}")
    u, v = np.nan_to_num(flow[..., 0]), np.nan_to_num(flow[..., 1])
    mag = np.hypot(u, v)
    if max_magnitude is None:
        max_magnitude = float(mag.max()) if mag.size else 0.0
    rad = mag / max_magnitude if max_magnitude > 0 else np.zeros_like(mag)
    wheel = flow_wheel()
    ncols = len(wheel)
    theta = np.mod(np.arctan2(v, u), 2 * np.pi)
    k = theta / (2 * np.pi) * (ncols - 1)
    k0 = np.floor(k).astype(np.int64) % ncols
    k1 = (k0 + 1) % ncols
    f = (k - np.floor(k))[..., None]
    col = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return np.clip(np.round(255 * col), 0, 255).astype(np.uint8)


def flow_legend(size: int = 96) -> np.ndarray:
    """(size, size, 3) uint8 colour-wheel legend: the flow (u, v) pointing from the centre to each
    pixel, drawn with max_magnitude = the disc radius; white outside the disc."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    flow = np.stack([x - c, y - c], axis=-1)
    img = flow_to_rgb(flow, max_magnitude=c)
    img[np.hypot(x - c, y - c) > c] = 255
    return img


def depth_range(depth: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> tuple[float, float]:
    """Colormap range (vmin, vmax) of a clip's depth: robust percentiles of the finite values;
    a constant clip gets a unit-wide range around its value."""
    vals = np.asarray(depth, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return 0.0, 1.0
    lo, hi = (float(p) for p in np.percentile(vals, percentiles))
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def _apply_cmap(name: str, t: np.ndarray) -> np.ndarray:
    """Matplotlib colormap ``name`` at t in [0, 1] → uint8 RGB."""
    import matplotlib

    return (matplotlib.colormaps[name](t)[..., :3] * 255).round().astype(np.uint8)


def depth_to_rgb(depth: np.ndarray, vmin: float, vmax: float, cmap: str = DEPTH_CMAP) -> np.ndarray:
    """Depth (..., 1) or (...) → (..., 3) uint8 with ``cmap`` over [vmin, vmax] (clipped)."""
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim and d.shape[-1] == 1:
        d = d[..., 0]
    if not vmax > vmin:
        raise ConfigError(f"depth range: expected vmax > vmin, found [{vmin}, {vmax}]")
    t = np.clip((np.nan_to_num(d, nan=vmin) - vmin) / (vmax - vmin), 0, 1)
    return _apply_cmap(cmap, t)


def colorbar(width: int, height: int, cmap: str = DEPTH_CMAP) -> np.ndarray:
    """(height, width, 3) uint8 horizontal colorbar: vmin on the left, vmax on the right."""
    t = np.linspace(0, 1, width)
    row = _apply_cmap(cmap, t)
    return np.repeat(row[None], height, axis=0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def motion_overlay(frames: np.ndarray, logits: np.ndarray, alpha: float = MOTION_ALPHA,
                   color: tuple[int, int, int] = MOTION_COLOR) -> np.ndarray:
    """Frames (..., H, W, 3) uint8 with the dynamic mask p = sigmoid(logits (..., H, W, 1)) blended
    in: out = (1 − α·p)·frame + α·p·color."""
    frames = np.asarray(frames)
    p = sigmoid(logits)
    if p.ndim == frames.ndim and p.shape[-1] == 1:
        p = p[..., 0]
    if p.shape != frames.shape[:-1]:
        raise ConfigError(f"motion logits: expected shape {frames.shape[:-1]} (+1), found {np.shape(logits)}")
    a = (alpha * p)[..., None]
    out = (1 - a) * frames.astype(np.float64) + a * np.asarray(color, np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def motion_color(frames: np.ndarray) -> tuple[int, int, int]:
    """The :data:`MOTION_PALETTE` colour with the largest mean RGB distance to the pixels of
    ``frames`` (..., 3) uint8, so the overlay stays visible: red on a grey scene, cyan on a red one."""
    px = np.asarray(frames, dtype=np.float64).reshape(-1, 3)
    if px.shape[0] > 65536:  # an even subsample is plenty for a mean distance
        px = px[:: px.shape[0] // 65536]
    if not px.size:
        return MOTION_COLOR
    dist = [np.linalg.norm(px - np.asarray(c, np.float64), axis=1).mean() for c in MOTION_PALETTE]
    return MOTION_PALETTE[int(np.argmax(dist))]


def ray_directions_rgb(rays: np.ndarray) -> np.ndarray:
    """Plücker rays (..., 6) → direction d̂ (unit, first 3 channels) as RGB: (d̂ + 1) / 2 · 255."""
    rays = np.asarray(rays, dtype=np.float64)
    if rays.shape[-1] != 6:
        raise ConfigError(f"camray: expected (..., 6) Plücker rays, found shape {rays.shape}")
    d = np.nan_to_num(rays[..., :3])
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    d = np.where(n > 0, d / np.where(n > 0, n, 1), 0)
    return np.clip(np.round((d + 1) / 2 * 255), 0, 255).astype(np.uint8)


def upsample_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., h, w, C) → (..., height, width, C): each output pixel takes the cell whose centre is
    nearest (cell i covers rows [i·height/h, (i+1)·height/h))."""
    h, w = img.shape[-3], img.shape[-2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return img[..., rows, :, :][..., :, cols, :]
