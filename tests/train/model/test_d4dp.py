import math

import pytest
import torch

from p4d.errors import ConfigError
from p4d.train.model import D4DP, rearrange_to_teacher_grid
from p4d.train.model.config import TINY


def frame_indexed(n: int, h: int, w: int, c: int) -> torch.Tensor:
    """(1, N, h, w, c) whose every value is its frame index n."""
    return torch.arange(float(n)).view(1, n, 1, 1, 1).expand(1, n, h, w, c).clone()


@pytest.mark.parametrize("time", ["stride", "mean"])
@pytest.mark.parametrize(
    "src, dst",
    [
        ((16, 11, 11), (8, 16, 16)),  # NVILA-Lite 448 px, 16 frames → L4P grid
        ((16, 9, 9), (8, 16, 16)),  # SigLIP 384 px (27×27 → 9×9), the release's notes
        ((16, 2, 2), (8, 8, 8)),
        ((4, 3, 3), (2, 2, 2)),  # spatial shrink
        ((8, 4, 4), (8, 4, 4)),  # identity
    ],
)
def test_rearrange_and_d4dp_shapes(src, dst, time):
    x = torch.randn(2, *src, 12)
    assert rearrange_to_teacher_grid(x, dst, time).shape == (2, *dst, 12)
    for head in ("linear", "mlp"):
        d4dp = D4DP(12, (3, *dst, 5), hidden=20, head=head, time=time)
        assert d4dp(x).shape == (2, 3, *dst, 5)


def test_stride_keeps_even_frames_the_release_way():
    # frame n holds the value n everywhere: stride 2 keeps frames 0, 2, ..., 14 (x[:, ::2])
    x = frame_indexed(16, 3, 3, 2)
    y = rearrange_to_teacher_grid(x, (8, 5, 5), "stride")
    assert torch.equal(y[0, :, 2, 2, 0], torch.tensor([0.0, 2, 4, 6, 8, 10, 12, 14]))
    # a spatially constant frame stays exactly constant through the bilinear resize
    assert torch.allclose(y[0, 3], torch.full((5, 5, 2), 6.0))
    # 16 → 4: every 4th frame
    z = rearrange_to_teacher_grid(x, (4, 3, 3), "stride")
    assert torch.equal(z[0, :, 0, 0, 1], torch.tensor([0.0, 4, 8, 12]))


def test_mean_averages_consecutive_frames():
    x = frame_indexed(16, 3, 3, 2)
    y = rearrange_to_teacher_grid(x, (8, 5, 5), "mean")
    assert torch.allclose(y[0, :, 2, 2, 0], torch.arange(8) * 2 + 0.5)  # (0+1)/2, (2+3)/2, ...
    z = rearrange_to_teacher_grid(x, (4, 3, 3), "mean")
    assert torch.allclose(z[0, :, 0, 0, 1], torch.tensor([1.5, 5.5, 9.5, 13.5]))
    # N' not dividing N: only the mean reading handles it; stride refuses with the fix named
    assert rearrange_to_teacher_grid(frame_indexed(6, 2, 2, 1), (4, 2, 2), "mean").shape == (1, 4, 2, 2, 1)
    with pytest.raises(ConfigError, match="stride.*mean"):
        rearrange_to_teacher_grid(frame_indexed(6, 2, 2, 1), (4, 2, 2), "stride")


def test_bilinear_resize_of_a_2x2_grid_by_hand():
    # a 2x2 grid [[0, 1], [2, 3]] upsampled to 4x4 with align_corners=False: the output pixel centres
    # sit at input coordinates -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1]) -> weights by hand
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2, 1)
    y = rearrange_to_teacher_grid(x, (1, 4, 4))[0, 0, :, :, 0]
    pos = torch.tensor([0.0, 0.25, 0.75, 1.0])  # clamped source coordinates
    want = 2 * pos.view(4, 1) + pos.view(1, 4)  # the grid is bilinear in (row, col): 2·row + col
    assert torch.allclose(y, want, atol=1e-6)


def test_linear_head_maps_the_kept_frames_only():
    # with the release's head, F̂_4D at temporal token k depends only on frame 2k
    torch.manual_seed(0)
    d4dp = D4DP(4, (2, 8, 2, 2, 3))
    x = frame_indexed(16, 2, 2, 4)
    out = d4dp(x)  # (1, taps, 8, 2, 2, 3)
    for tap, layer in enumerate(d4dp.maps):
        for k in range(8):
            want = layer(torch.full((4,), 2.0 * k))
            assert torch.allclose(out[0, tap, k, 1, 0], want, atol=1e-6)
    odd = x.clone()
    odd[:, 1::2] = 99.0  # the dropped odd frames do not change the output
    assert torch.equal(d4dp(odd), out)


def test_linear_head_init_is_normal_0_01_with_zero_bias():
    torch.manual_seed(0)
    d4dp = D4DP(512, (4, 2, 2, 2, 1408))
    assert len(d4dp.maps) == 4
    for layer in d4dp.maps:
        assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (1408, 512)
        assert torch.equal(layer.bias, torch.zeros(1408))
        w = layer.weight.double()
        assert abs(float(w.detach().mean())) < 1e-3  # 720k draws: the sample mean's sd is 1.2e-4
        assert float(w.detach().std()) == pytest.approx(0.1, rel=0.01)


def test_mlp_head_is_xavier_with_gelu_and_zero_bias():
    torch.manual_seed(0)
    d4dp = D4DP(64, (4, 2, 2, 2, 16), hidden=2560, head="mlp")
    assert len(d4dp.maps) == 4  # one MLP per tap
    first, act, second = d4dp.maps[0]
    assert isinstance(act, torch.nn.GELU)
    assert first.weight.shape == (2560, 64) and second.weight.shape == (16, 2560)
    for layer in (first, second):
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Xavier-uniform bound
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_defaults_are_the_release_and_bad_choices_are_named():
    assert (TINY.d4dp, TINY.d4dp_time) == ("linear", "stride")
    with pytest.raises(ConfigError, match="d4dp"):
        TINY.replace(d4dp="conv")
    with pytest.raises(ConfigError, match="d4dp_time"):
        TINY.replace(d4dp_time="max")


# ---- the cosine ceiling of the rearrange ------------------------------------------------------

def test_ceiling_by_hand_one_token_up_to_two():
    """A 1×1 grid upsampled to 1×2 copies the token: the best reachable pair is (m, m), m the mean of
    the targets (least squares). Targets (1, 0), (0, 1): m = (0.5, 0.5), cos = 0.5 / (1 · √0.5) = 1/√2 each.
    Targets (1, 0), (1, 1): m = (1, 0.5), cos = 1/√1.25 and 1.5/(√2·√1.25)."""
    from p4d.train.model.d4dp import grid_cosine_ceiling

    ortho = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 1, 2, 2)  # (N'=1, h'=1, w'=2, c'=2)
    assert grid_cosine_ceiling(ortho, (1, 1, 1)) == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    mixed = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(1, 1, 2, 2)
    want = (1 / math.sqrt(1.25) + 1.5 / (math.sqrt(2) * math.sqrt(1.25))) / 2
    assert grid_cosine_ceiling(mixed, (1, 1, 1)) == pytest.approx(want, abs=1e-12)


def test_space_operator_is_bilinear_by_hand():
    """1×2 → 1×4, align_corners False: source x = (i + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25 (clamped)."""
    from p4d.train.model.d4dp import rearrange_operators

    t, s = rearrange_operators((2, 1, 2), (1, 1, 4), "stride")
    assert torch.equal(t, torch.tensor([[1.0, 0.0]], dtype=torch.float64))  # frame 0 kept
    want = torch.tensor([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]], dtype=torch.float64)
    assert torch.allclose(s, want, atol=1e-12)


@pytest.mark.parametrize("time", ["stride", "mean"])
def test_ceiling_is_one_when_the_student_grid_holds_the_teachers(time):
    from p4d.train.model.d4dp import grid_cosine_ceiling

    f4d = torch.randn(2, 3, 4, 5, 5, 6, generator=torch.Generator().manual_seed(0))  # (B, taps, N', h', w', c')
    assert grid_cosine_ceiling(f4d, (8, 5, 5), time) == pytest.approx(1.0, abs=1e-9)  # same space, N' | N
    assert grid_cosine_ceiling(f4d, (8, 11, 11), time) == pytest.approx(1.0, abs=1e-9)  # finer: shrinks exactly
    assert grid_cosine_ceiling(f4d, (8, 2, 2), time) < 0.5  # random targets, 4 of 25 directions per frame


def test_ceiling_equals_the_projection_onto_the_full_rearrange():
    """Independent route: the whole rearrange (time and space at once) read off on a basis of all
    N·h·w tokens, its range projected onto by least squares; the mean token cosine must match."""
    from p4d.train.model.d4dp import grid_cosine_ceiling

    n, h, w, grid = 4, 2, 3, (2, 5, 4)
    k = n * h * w
    full = rearrange_to_teacher_grid(torch.eye(k, dtype=torch.float64).reshape(1, n, h, w, k), grid, "mean")
    r = full.reshape(-1, k)  # (N'h'w', Nhw)
    f4d = torch.randn(3, *grid, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = f4d.reshape(3, -1, 7)
    fitted = r @ torch.linalg.lstsq(r.expand(3, -1, -1), target, driver="gelsd").solution  # best (T⊗S)·X (rank 12 of 24)
    want = torch.nn.functional.cosine_similarity(fitted, target, dim=-1).mean()
    assert grid_cosine_ceiling(f4d, (n, h, w), "mean") == pytest.approx(float(want), abs=1e-9)
