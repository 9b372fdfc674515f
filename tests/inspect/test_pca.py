"""PCA of F_4D latents to RGB: deterministic, constant → uniform, structure → the right channel."""

import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.inspect.pca import EXACT_SVD_MAX, pca_basis, pca_rgb


def _latents(seed=0, shape=(2, 4, 3, 3, 16)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_deterministic_and_shaped():
    lat = _latents()
    a, b = pca_rgb(lat), pca_rgb(lat.copy())
    assert a.shape == (2, 4, 3, 3, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert pca_rgb(lat[0]).shape == (4, 3, 3, 3)


def test_constant_latents_give_a_uniform_grey_image():
    lat = np.full((2, 4, 3, 3, 16), 3.25, np.float32)
    out = pca_rgb(lat)
    assert np.unique(out).tolist() == [128]


def test_one_basis_per_clip_and_tap():
    """Rank-1 latents x = mean + a·v: R follows a monotonically over every frame (one basis for
    the clip), G and B carry no variance and stay grey; taps are independent."""
    rng = np.random.default_rng(1)
    v = rng.standard_normal(16)
    v /= np.linalg.norm(v)
    a = np.linspace(-1, 1, 4 * 3 * 3)
    tap0 = (5 + a[:, None] * v).reshape(4, 3, 3, 16)
    tap1 = np.full((4, 3, 3, 16), -2.0)
    out = pca_rgb(np.stack([tap0, tap1]))
    red = out[0, ..., 0].reshape(-1).astype(int)
    diffs = np.diff(red)
    assert (diffs >= 0).all() or (diffs <= 0).all()
    assert red.max() - red.min() > 200
    assert np.unique(out[0, ..., 1:]).tolist() == [128]
    assert np.unique(out[1]).tolist() == [128]


def test_sign_convention_is_fixed():
    """Flipping the sign of the data around its mean keeps the basis (largest loading positive)."""
    x = np.random.default_rng(2).standard_normal((50, 8))
    m1, b1 = pca_basis(x)
    m2, b2 = pca_basis(2 * x.mean(0) - x)
    np.testing.assert_allclose(b1, b2, atol=1e-9)
    for row in b1:
        assert row[np.argmax(np.abs(row))] > 0


def test_randomized_path_finds_the_top_components():
    """Above EXACT_SVD_MAX the range finder must agree with an eigendecomposition of the covariance."""
    rng = np.random.default_rng(3)
    m, c = 600, EXACT_SVD_MAX + 40
    x = (rng.standard_normal((m, 3)) * [9, 5, 3]) @ rng.standard_normal((3, c)) + 0.05 * rng.standard_normal((m, c))
    _, basis = pca_basis(x)
    xc = x - x.mean(0)
    _, vecs = np.linalg.eigh(xc.T @ xc)
    ref = vecs[:, ::-1][:, :3].T
    np.testing.assert_allclose(np.abs((basis * ref).sum(1)), 1.0, atol=1e-6)


def test_bad_shape():
    with pytest.raises(ConfigError, match="taps, N'"):
        pca_rgb(np.zeros((3, 3, 3)))
