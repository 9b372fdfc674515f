"""Deterministic clip data for cache tests: clip ``i``'s truth depends only on ``i`` (and the spec)."""

from __future__ import annotations

import numpy as np

from p4d.bench.latents import natural_maps, vit_like_latents


def clip_truth(spec, clip: int) -> dict[str, np.ndarray]:
    """The float32 targets of one clip, as precompute would hand them to write_shard."""
    n_, h_, w_, c_ = spec.latent_frames, spec.latent_height, spec.latent_width, spec.latent_dim
    out = {"f4d": vit_like_latents(len(spec.taps), n_, h_, w_, c_, seed=clip)}
    maps = natural_maps(spec.num_frames, spec.height, spec.width, spec.ray_height, spec.ray_width, seed=clip)
    out.update({m: maps[m] for m in spec.modalities})
    out["frame_index"] = (np.arange(spec.num_frames) * 3 + clip).astype(np.int64)
    out["timestamp"] = (out["frame_index"] / 24.0).astype(np.float64)
    return out


def shard_arrays(store, shard: int) -> dict[str, np.ndarray]:
    rows = [clip_truth(store.spec, i) for i in store.shard_clips(shard)]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def with_outlier_tokens(x: np.ndarray, rng: np.random.Generator, k: int = 3) -> np.ndarray:
    """``x`` (taps, N', h', w', c') with ``k`` tokens per tap pushed 30-60x the channel's SD away in every channel."""
    out = x.copy()
    for t in range(x.shape[0]):
        flat = out[t].reshape(-1, x.shape[-1])
        sd = flat.std(axis=0)
        for tok in rng.choice(len(flat), k, replace=False):
            flat[tok] += sd * rng.uniform(30, 60, size=sd.shape) * rng.choice([-1, 1], size=sd.shape)
    return out
