"""Synthetic cache targets with realistic statistics (numpy only), for codec and loader benchmarks.

Real L4P weights are not available here, so the cache benchmark judges codecs on data built to
share the statistics that matter for compression:

* :func:`vit_like_latents` – F_4D-like encoder tokens ``(taps, N', h', w', c')``:
  spatially/temporally smooth (trilinearly upsampled low-resolution noise) plus white noise,
  per-channel scales log-spread over two orders of magnitude, small per-channel offsets, and a
  few outlier channels 20-100x the median scale (the "massive activations" of ViTs, which make
  per-token int8 scales collapse).
* :func:`natural_maps` – depth / flow / motion / camray maps of one clip with natural-image
  statistics: 1/f ("pink") random fields varying smoothly over time, positive depth, backward
  flow with frame 0 zero (invalid), dynamic-mask logits, and Plücker rays of a moving pinhole
  camera (unit directions, moments relative to frame 0's camera).

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["vit_like_latents", "natural_maps", "pink_field"]


def _upsample_linear(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation of ``x`` along ``axis`` to ``size`` samples (align-corners style)."""
    n = x.shape[axis]
    if n == size:
        return x
    pos = np.linspace(0.0, n - 1.0, size)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = (pos - lo).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = size
    frac = frac.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - frac) + np.take(x, hi, axis=axis) * frac


def vit_like_latents(
    taps: int,
    n: int,
    h: int,
    w: int,
    c: int,
    seed: int = 0,
    *,
    smooth_factor: tuple[int, int, int] = (2, 4, 4),
    white_noise: float = 0.15,
    num_outliers: int | None = None,
    outlier_scale: tuple[float, float] = (20.0, 100.0),
) -> np.ndarray:
    """ViT-like latent tokens, float32 ``(taps, N', h', w', c')``.

    Per tap and channel: a smooth field (Gaussian noise on a grid ``smooth_factor`` = (t, y, x)
    times coarser than ``(N', h', w')``, trilinearly upsampled, renormalised to unit variance)
    mixed with white noise so that ``white_noise`` is the white fraction of the variance
    (default 15 %: neighbouring tokens correlate at ~0.7-0.8, as ViT tokens do on natural video).
    Channel ``k`` is then ``offset_k + scale_k * field``: ``scale_k = 10**U(-1, 1)`` (two
    orders of magnitude), ``offset_k ~ 0.5 * scale_k * N(0, 1)``; ``num_outliers`` channels
    (default ``max(1, c // 350)``, 4 at c'=1408) get a scale of ``outlier_scale`` = 20-100x the
    median scale (drawn uniformly).
    Deeper taps are scaled up slightly (x1.0 ... x2.0) as residual-stream norms grow with depth.
    """
    rng = np.random.default_rng(seed)
    ft, fy, fx = smooth_factor
    lt, ly, lx = (max(2, -(-n // ft) + 1), max(2, -(-h // fy) + 1), max(2, -(-w // fx) + 1))
    low = rng.standard_normal((taps, lt, ly, lx, c), dtype=np.float32)
    smooth = _upsample_linear(low, 1, n)
    smooth = _upsample_linear(smooth, 2, h)
    smooth = _upsample_linear(smooth, 3, w)
    smooth /= smooth.std(axis=(1, 2, 3), keepdims=True) + 1e-12
    white = rng.standard_normal(smooth.shape, dtype=np.float32)
    field = np.sqrt(1.0 - white_noise, dtype=np.float32) * smooth + np.sqrt(white_noise, dtype=np.float32) * white

    scale = 10.0 ** rng.uniform(-1.0, 1.0, size=c)
    k = max(1, c // 350) if num_outliers is None else num_outliers
    if k:
        idx = rng.choice(c, size=min(k, c), replace=False)
        scale[idx] = np.median(scale) * rng.uniform(*outlier_scale, size=idx.size)
    offset = 0.5 * scale * rng.standard_normal(c)
    depth_gain = np.linspace(1.0, 2.0, taps).reshape(taps, 1, 1, 1, 1)
    out = (offset + scale * field) * depth_gain
    return out.astype(np.float32)


def pink_field(shape: tuple[int, int], rng: np.random.Generator, *, exponent: float = 2.0) -> np.ndarray:
    """A zero-mean unit-variance 2-D random field with power spectrum ~ 1/f**exponent (natural images: 2)."""
    hh, ww = shape
    fy = np.fft.fftfreq(hh)[:, None]
    fx = np.fft.rfftfreq(ww)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    amp = f ** (-exponent / 2.0)
    amp[0, 0] = 0.0
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    field = np.fft.irfft2(spec, s=(hh, ww))
    return (field - field.mean()) / (field.std() + 1e-12)


def _pink_video(n: int, h: int, w: int, rng: np.random.Generator, keys: int = 3) -> np.ndarray:
    """(N, H, W) pink fields that drift smoothly over time (linear blend of ``keys`` key fields)."""
    key = np.stack([pink_field((h, w), rng) for _ in range(max(2, keys))])
    return _upsample_linear(key, 0, n)


def natural_maps(
    n: int = 16, h: int = 224, w: int = 224, hp: int = 16, wp: int = 16, seed: int = 0
) -> dict[str, np.ndarray]:
    """Maps of one clip with natural-image statistics, float32.

    Returns ``depth`` (N, H, W, 1) > 0 (log-depth a pink field, ~1-20 m), ``flow`` (N, H, W, 2)
    backward flow in pixels (a few px, frame 0 all zero: invalid), ``motion`` (N, H, W, 1)
    dynamic-mask logits, ``camray`` (N, h_p, w_p, 6) Plücker rays (unit direction, moment
    ``c x d``) of a pinhole camera translating/rotating slowly, relative to frame 0's camera.
    """
    rng = np.random.default_rng(seed)
    depth = np.exp(1.5 + 0.7 * _pink_video(n, h, w, rng))[..., None]
    flow = np.stack([_pink_video(n, h, w, rng) * 3.0, _pink_video(n, h, w, rng) * 1.5], axis=-1)
    flow[0] = 0.0
    motion = (4.0 * _pink_video(n, h, w, rng) - 2.0)[..., None]

    # Camera: focal ~ 1.2 * size, rotation about y growing linearly, translation along x/z.
    ys, xs = np.meshgrid((np.arange(hp) + 0.5) / hp - 0.5, (np.arange(wp) + 0.5) / wp - 0.5, indexing="ij")
    rays0 = np.stack([xs / 1.2, ys / 1.2, np.ones_like(xs)], axis=-1)
    rays0 /= np.linalg.norm(rays0, axis=-1, keepdims=True)
    yaw_rate, speed = rng.uniform(-0.02, 0.02), rng.uniform(0.01, 0.05, size=3)
    camray = np.empty((n, hp, wp, 6))
    for t in range(n):
        a = yaw_rate * t
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        d = rays0 @ rot.T
        centre = speed * t
        camray[t, ..., :3] = d
        camray[t, ..., 3:] = np.cross(np.broadcast_to(centre, d.shape), d)
    return {
        "depth": depth.astype(np.float32),
        "flow": flow.astype(np.float32),
        "motion": motion.astype(np.float32),
        "camray": camray.astype(np.float32),
    }


def crushed_tokens(base: np.ndarray, *, outlier: bool) -> np.ndarray:
    """Latents (taps, N', h', w', c') a quantiser serves badly: ``base`` with the first four token
    rows of every frame 1000x smaller (a step sized by the channel's RMS crushes them) and, with
    ``outlier``, one value of 1e4 per channel (even the finest int8 step, absmax / 127, then
    crushes them: only a float codec keeps them). For the codec self-check's fallback tests."""
    x = np.array(base, dtype=np.float32, copy=True)
    x[:, :, :4] *= 1e-3
    if outlier:
        x[:, 0, 7, 7] = 1e4
    return x
