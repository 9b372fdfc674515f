"""The synthetic data generators: the statistics they promise, checked by measurement."""

from __future__ import annotations

import numpy as np

from p4d.bench.latents import natural_maps, pink_field, vit_like_latents


def test_vit_like_latents_shape_determinism_and_channel_scales():
    x = vit_like_latents(2, 4, 8, 8, 700, seed=5)
    assert x.shape == (2, 4, 8, 8, 700) and x.dtype == np.float32
    np.testing.assert_array_equal(x, vit_like_latents(2, 4, 8, 8, 700, seed=5))
    assert not np.array_equal(x, vit_like_latents(2, 4, 8, 8, 700, seed=6))
    sd = x[0].std(axis=(0, 1, 2))
    med = np.median(sd)
    outliers = sd > 15 * med
    assert outliers.sum() == 2  # c // 350
    body = np.sort(sd[~outliers])
    spread = body[-3] / body[2]  # robust max/min of the non-outlier channel scales
    assert 40 < spread < 120  # two orders of magnitude (10**U(-1, 1))
    assert np.all(sd[outliers] / med > 15) and np.all(sd[outliers] / med < 130)


def test_vit_like_latents_are_spatially_smooth_but_not_deterministic():
    x = vit_like_latents(1, 8, 16, 16, 256, seed=1, num_outliers=0)[0]
    xc = (x - x.mean(axis=(0, 1, 2))) / x.std(axis=(0, 1, 2))
    rho_w = (xc[:, :, 1:] * xc[:, :, :-1]).mean()
    rho_far = (xc[:, :, 8:] * xc[:, :, :-8]).mean()
    assert 0.5 < rho_w < 0.95  # neighbouring tokens correlate; white noise keeps it below 1
    assert abs(rho_far) < rho_w / 2


def test_pink_field_has_a_1_over_f_squared_spectrum():
    rng = np.random.default_rng(0)
    power = np.zeros(64)
    for _ in range(8):
        f = pink_field((128, 128), rng)
        spec = np.abs(np.fft.fft2(f)) ** 2
        fy, fx = np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij")
        r = np.minimum((np.hypot(fy, fx) * 128).astype(int), 63)
        power += np.bincount(r.ravel(), spec.ravel(), minlength=64)[:64] / np.bincount(r.ravel(), minlength=64)[:64]
    k = np.arange(4, 50)
    slope = np.polyfit(np.log(k), np.log(power[k]), 1)[0]
    assert -2.3 < slope < -1.7


def test_natural_maps_physical_constraints():
    m = natural_maps(6, 32, 24, 4, 3, seed=2)
    assert m["depth"].shape == (6, 32, 24, 1) and (m["depth"] > 0).all()
    assert m["flow"].shape == (6, 32, 24, 2) and (m["flow"][0] == 0).all() and np.abs(m["flow"][1:]).max() > 0.5
    assert m["motion"].shape == (6, 32, 24, 1)
    ray = m["camray"]
    assert ray.shape == (6, 4, 3, 6)
    np.testing.assert_allclose(np.linalg.norm(ray[..., :3], axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose((ray[..., :3] * ray[..., 3:]).sum(-1), 0.0, atol=1e-6)  # moment is normal to d
    np.testing.assert_allclose(ray[0, ..., 3:], 0.0, atol=1e-7)  # frame 0's camera is the origin
    assert all(v.dtype == np.float32 for v in m.values())
