"""Targets decoded by torch (the trainer's device path) equal the numpy decoders bit for bit."""

import numpy as np
import pytest
import torch

from p4d.cache_schema import LATENT_CODECS
from p4d.train.device_decode import decode_latent_parts, dpcm_reconstruct


def _scalar_dpcm_inverse(r: np.ndarray) -> np.ndarray:
    """Pure-Python inverse of one (h', w') residual grid, straight from the predictor's definition."""
    h, w = r.shape
    q = [[0] * w for _ in range(h)]
    for y in range(h):
        for x in range(w):
            if y == 0 and x == 0:
                pred = 0
            elif y == 0:
                pred = q[y][x - 1]
            elif x == 0:
                pred = q[y - 1][x]
            else:
                pred = (q[y][x - 1] + q[y - 1][x]) // 2
            q[y][x] = (int(r[y, x]) + pred + 128) % 256 - 128
    return np.array(q)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (4, 1), (3, 7), (6, 6)])
def test_dpcm_reconstruct_matches_scalar_reference(h, w):
    rng = np.random.default_rng(h * 10 + w)
    r = rng.integers(-128, 128, size=(2, h, w, 3), dtype=np.int8)
    q = dpcm_reconstruct(torch.from_numpy(r)).numpy()
    for b in range(2):
        for c in range(3):
            np.testing.assert_array_equal(q[b, :, :, c], _scalar_dpcm_inverse(r[b, :, :, c]))


@pytest.mark.parametrize("codec", sorted(LATENT_CODECS))
def test_device_decode_bit_exact_with_numpy(codec):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5, 6, 16), dtype=np.float32)  # clips, taps, N', h', w', c'
    x[..., 3] *= 40.0  # an outlier channel
    c = LATENT_CODECS[codec]
    parts = c.encode(x)
    want = c.decode(parts)
    got = decode_latent_parts(codec, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in parts.items()})
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy().view(np.uint32), want.view(np.uint32))
    # and the decode is a faithful inverse, not merely the same as numpy's
    cos = (want * x).sum(-1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(x, axis=-1)
    assert cos.mean() > 0.99


def test_device_decode_applies_level1_outliers_bit_exactly():
    """dpcm-channel level-1 parts (outlier tokens stored exactly), with a level-0 clip (-1 entries)
    in the same batch: the device decode equals numpy's, and the outlier tokens are exact."""
    from p4d.cache_schema.codecs import dpcm_encode

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 2, 4, 5, 16), dtype=np.float32)
    x[:, :, 0, 1, 2, :] += 80.0  # an outlier token in every channel
    level1, level0 = dpcm_encode(x[:1], step_over_rms=0.0, outliers=True), dpcm_encode(x[1:])
    parts = {k: np.concatenate([level1[k], level0[k]]) for k in level1}
    want = LATENT_CODECS["dpcm-channel"].decode(parts)
    got = decode_latent_parts("dpcm-channel", {k: torch.from_numpy(v) for k, v in parts.items()})
    np.testing.assert_array_equal(got.numpy().view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(want[0, :, 0, 1, 2, :], x[0, :, 0, 1, 2, :])
    assert np.abs(want[1, :, 0, 1, 2, :] - x[1, :, 0, 1, 2, :]).max() > 0  # level 0: quantised there
