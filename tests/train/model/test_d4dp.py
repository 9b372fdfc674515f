import math

import pytest
import torch

from p4d.train.model import D4DP, rearrange_to_teacher_grid


@pytest.mark.parametrize(
    "src, dst",
    [
        ((16, 11, 11), (8, 16, 16)),  # NVILA-Lite 448 px, 16 frames → L4P grid
        ((16, 2, 2), (8, 8, 8)),
        ((4, 3, 3), (2, 2, 2)),  # spatial shrink
        ((6, 11, 11), (4, 16, 16)),  # N' does not divide N
        ((8, 4, 4), (8, 4, 4)),  # identity
    ],
)
def test_rearrange_and_d4dp_shapes(src, dst):
    x = torch.randn(2, *src, 12)
    assert rearrange_to_teacher_grid(x, dst).shape == (2, *dst, 12)
    d4dp = D4DP(12, (3, *dst, 5), hidden=20)
    assert d4dp(x).shape == (2, 3, *dst, 5)


def test_temporal_grouping_averages_consecutive_frames():
    # frame n holds the value n everywhere: 16 → 8 groups of 2 frames: means 0.5, 2.5, ..., 14.5
    x = torch.arange(16.0).view(1, 16, 1, 1, 1).expand(1, 16, 3, 3, 2)
    y = rearrange_to_teacher_grid(x, (8, 5, 5))
    assert torch.allclose(y[0, :, 2, 2, 0], torch.arange(8) * 2 + 0.5)
    # a spatially constant frame stays constant after the spatial resize
    assert torch.allclose(y[0, 3], torch.full((5, 5, 2), 6.5))
    # 16 → 4: groups of 4 frames, means 1.5, 5.5, 9.5, 13.5
    z = rearrange_to_teacher_grid(x, (4, 3, 3))
    assert torch.allclose(z[0, :, 0, 0, 1], torch.tensor([1.5, 5.5, 9.5, 13.5]))


def test_identity_grid_is_untouched():
    x = torch.randn(1, 8, 4, 4, 3)
    assert torch.equal(rearrange_to_teacher_grid(x, (8, 4, 4)), x)


def test_d4dp_mlp_is_xavier_with_gelu_and_zero_bias():
    torch.manual_seed(0)
    d4dp = D4DP(64, (4, 2, 2, 2, 16), hidden=2560)
    assert len(d4dp.mlps) == 4  # one MLP per tap
    first, act, second = d4dp.mlps[0]
    assert isinstance(act, torch.nn.GELU)
    assert first.weight.shape == (2560, 64) and second.weight.shape == (16, 2560)
    for layer in (first, second):
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Xavier-uniform bound
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
