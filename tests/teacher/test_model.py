"""L4PTeacher: preprocessing against hand-computed values, output shapes, input contract, seeding."""

import pytest
import torch

from p4d.errors import ConfigError
from p4d.teacher.checkpoint import weights_hash
from p4d.teacher.model import build_teacher
from p4d.teacher.presets import get_preset


@pytest.fixture(scope="module")
def tiny():
    return build_teacher("tiny")


def test_preprocess_is_imagenet_normalisation(tiny):
    frames = torch.zeros(1, 16, 112, 112, 3, dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 128, 0
    frames[0, 3, 5, 7] = torch.tensor([10, 20, 30], dtype=torch.uint8)
    x = tiny.preprocess(frames)
    assert x.shape == (1, 3, 16, 112, 112) and x.dtype == torch.float32
    # (v / 255 - mean) / std, by hand
    assert x[0, 0, 0, 0, 0].item() == pytest.approx((1.0 - 0.485) / 0.229, abs=1e-5)
    assert x[0, 1, 9, 50, 60].item() == pytest.approx((128 / 255 - 0.456) / 0.224, abs=1e-5)
    assert x[0, 2, 15, 111, 111].item() == pytest.approx((0.0 - 0.406) / 0.225, abs=1e-5)
    # pixel (frame 3, row 5, col 7) lands at (c, N, H, W) = (:, 3, 5, 7)
    assert x[0, :, 3, 5, 7].tolist() == pytest.approx(
        [(10 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225], abs=1e-5)


def test_forward_shapes_and_float_path(tiny):
    frames = torch.randint(0, 256, (1, 16, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = tiny(frames)
        again = tiny(tiny.preprocess(frames))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "f4d": (1, 4, 8, 8, 8, 64),
        "depth": (1, 16, 112, 112, 1),
        "flow": (1, 16, 112, 112, 2),
        "motion": (1, 16, 112, 112, 1),
        "camray": (1, 16, 8, 8, 6),
    }
    assert (out["depth"] > 0).all()
    for k in out:
        torch.testing.assert_close(out[k], again[k])
    # f4d is the encoder's tapped layers, stacked on axis 1
    with torch.no_grad():
        taps = tiny.encoder.forward_intermediates(tiny.preprocess(frames), [1, 2, 3, 4])
    torch.testing.assert_close(out["f4d"][:, 2], taps[2])


def test_forward_backward_to_input():
    tiny = build_teacher("tiny", modalities=("motion", "camray"))  # one full-resolution head keeps it quick
    x = tiny.preprocess(torch.randint(0, 256, (1, 16, 112, 112, 3), dtype=torch.uint8)).requires_grad_(True)
    out = tiny(x)
    loss = sum(v.float().mean() for v in out.values())
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())  # frozen teacher


@pytest.mark.parametrize(
    "shape, dtype, match",
    [((1, 8, 112, 112, 3), torch.uint8, r"N=16 frames at H×W=112×112, got N=8, H×W=112×112"),
     ((1, 16, 224, 224, 3), torch.uint8, r"got N=16, H×W=224×224"),
     ((1, 16, 112, 112, 4), torch.uint8, r"expected uint8 \(B, N, H, W, 3\)"),
     ((1, 16, 3, 112, 112), torch.float32, r"expected normalised float \(B, 3, N, H, W\)"),
     ((1, 16, 112, 112, 3), torch.int64, "expected uint8")],
)
def test_rejects_other_inputs(tiny, shape, dtype, match):
    with pytest.raises(ConfigError, match=match):
        tiny(torch.zeros(shape, dtype=dtype))


def test_l4p_rejects_other_frame_counts_and_has_published_shapes_on_meta():
    model = build_teacher("l4p", device="meta")
    with pytest.raises(ConfigError, match="no windowing"):
        model(torch.zeros(1, 32, 224, 224, 3, dtype=torch.uint8, device="meta"))
    out = model(torch.zeros(1, 16, 224, 224, 3, dtype=torch.uint8, device="meta"))
    assert tuple(out["f4d"].shape) == (1, 4, 8, 16, 16, 1408)
    assert tuple(out["depth"].shape) == (1, 16, 224, 224, 1)
    assert tuple(out["flow"].shape) == (1, 16, 224, 224, 2)
    assert tuple(out["motion"].shape) == (1, 16, 224, 224, 1)
    assert tuple(out["camray"].shape) == (1, 16, 16, 16, 6)


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_teacher("tiny-random", seed=3), build_teacher("tiny-random", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert weights_hash(a.state_dict()) == weights_hash(b.state_dict())
    assert weights_hash(build_teacher("tiny-random", seed=4).state_dict()) != weights_hash(a.state_dict())


def test_modalities_subset_and_dtype():
    model = build_teacher("tiny", modalities=("depth",), dtype=torch.bfloat16)
    out = model(torch.zeros(1, 16, 112, 112, 3, dtype=torch.uint8))
    assert set(out) == {"f4d", "depth"} and out["f4d"].dtype == torch.bfloat16
    assert get_preset("tiny").heads_config(("depth",)).modalities == ("depth",)


def test_heads_handed_to_the_trainer_equal_the_teachers_heads(tmp_path):
    """precompute saves the teacher's heads; train rebuilds them with load_heads: same maps on the same F_4D."""
    from p4d.heads import load_heads, save_heads

    teacher = build_teacher("tiny", modalities=("motion", "camray"), seed=5)
    frames = torch.randint(0, 256, (1, 16, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    heads = load_heads(save_heads(teacher.heads, tmp_path))
    with torch.no_grad():
        out = teacher(frames)
        again = heads(out["f4d"])
    assert set(again) == {"motion", "camray"}
    for k in again:
        assert torch.equal(again[k], out[k])
