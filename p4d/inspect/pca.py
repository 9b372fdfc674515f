"""F_4D latents → RGB by PCA, with one fixed basis per clip and tap.

For each tap, the N'·h'·w' latent vectors (c' channels) of the clip are centred and their top
three principal directions (SVD) become R, G, B. The basis, the centring and the [0, 255]
scaling are shared by all N' latent frames of the clip, so colours are comparable over time.
Signs are fixed (largest-magnitude loading positive) so the result is deterministic.
"""

from __future__ import annotations

import numpy as np

from p4d.errors import ConfigError

#: Projections are scaled to [0, 255] between these percentiles of each component (per clip).
PCA_PERCENTILES = (1.0, 99.0)


#: Above this min(M, c), the top components come from a seeded randomized range finder with
#: power iterations (Halko, Martinsson & Tropp 2011) instead of a full SVD (L4P: 2048 x 1408).
EXACT_SVD_MAX = 256


def _top_singular(xc: np.ndarray, k: int, oversample: int = 8, iters: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(singular values, right singular vectors (r, c)) of ``xc``: all of them by SVD when small,
    else the top k + oversample by a deterministic randomized range finder."""
    if min(xc.shape) <= EXACT_SVD_MAX:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        return s, vt
    omega = np.random.default_rng(0).standard_normal((xc.shape[1], k + oversample))
    q = _orthonormal(xc @ omega)
    for _ in range(iters):
        q = _orthonormal(xc.T @ q)
        q = _orthonormal(xc @ q)
    _, s, vt = np.linalg.svd(q.T @ xc, full_matrices=False)
    return s, vt


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of a tall ``y`` (M, r), from the eigendecomposition of
    its r x r Gram matrix, done twice for accuracy (numpy's tall-skinny QR can be very slow under
    multi-threaded OpenBLAS); columns of (near) zero norm are dropped."""
    for _ in range(2):
        w, v = np.linalg.eigh(y.T @ y)
        keep = w > w.max() * 1e-13 if w.size and w.max() > 0 else np.zeros(w.shape, bool)
        y = (y @ v[:, keep]) / np.sqrt(w[keep])
    return y


def pca_basis(vectors: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(mean (c,), basis (k, c)) of ``vectors`` (M, c): the top-k right singular vectors of the
    centred data, each signed so its largest-|.| entry is positive; rows beyond rank are zero."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"pca_basis: expected (M, c) vectors, found shape {x.shape}")
    mean = x.mean(axis=0)
    xc = x - mean
    basis = np.zeros((k, x.shape[1]))
    if xc.size and np.any(xc):
        s, vt = _top_singular(xc, k)
        tol = s.max() * max(xc.shape) * np.finfo(np.float64).eps
        for i in range(min(k, int((s > tol).sum()))):
            v = vt[i]
            basis[i] = v if v[np.argmax(np.abs(v))] > 0 else -v
    return mean, basis


def pca_rgb(latents: np.ndarray) -> np.ndarray:
    """Latents (taps, N', h', w', c') (or (N', h', w', c') for one tap) → uint8 RGB
    (taps, N', h', w', 3) (or (N', h', w', 3)).

    Constant latents give a uniform mid-grey (128) image; a component with no variance is 128.
    """
    lat = np.asarray(latents, dtype=np.float64)
    single = lat.ndim == 4
    if single:
        lat = lat[None]
    if lat.ndim != 5:
        raise ConfigError(f"latents: expected (taps, N', h', w', c'), found shape {np.shape(latents)}")
    lat = np.nan_to_num(lat)
    out = np.empty(lat.shape[:-1] + (3,), dtype=np.uint8)
    for t in range(lat.shape[0]):
        flat = lat[t].reshape(-1, lat.shape[-1])
        mean, basis = pca_basis(flat)
        proj = (flat - mean) @ basis.T  # (M, 3)
        rgb = np.full(proj.shape, 0.5)
        for ch in range(3):
            lo, hi = np.percentile(proj[:, ch], PCA_PERCENTILES)
            if hi - lo > 1e-12 * max(1.0, np.abs(proj[:, ch]).max()):
                rgb[:, ch] = np.clip((proj[:, ch] - lo) / (hi - lo), 0, 1)
        out[t] = np.round(rgb * 255).astype(np.uint8).reshape(lat.shape[1:-1] + (3,))
    return out[0] if single else out
