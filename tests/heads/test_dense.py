"""DenseHeads: shapes of every DPT stage (notes/l4p.md §2a/§2b tables), parameter counts by hand,
output contract (channels-last, depth > 0), input validation, gradients to the input."""

import pytest
import torch

from p4d.errors import ConfigError
from p4d.heads import L4P_HEADS, TINY_HEADS, DenseHeads, count_parameters, dpt_stage_shapes

# notes/l4p.md §2a, written literally (channels, T, Y, X) for B = 1.
L4P_DENSE_STAGES = {
    "act_postprocess.0": (256, 16, 64, 64),
    "act_postprocess.1": (512, 16, 32, 32),
    "act_postprocess.2": (1024, 8, 16, 16),
    "act_postprocess.3": (1024, 4, 8, 8),
    "scratch.layer1_rn": (256, 16, 64, 64),
    "scratch.layer2_rn": (256, 16, 32, 32),
    "scratch.layer3_rn": (256, 8, 16, 16),
    "scratch.layer4_rn": (256, 4, 8, 8),
    "scratch.refinenet4": (256, 8, 16, 16),
    "scratch.refinenet3": (256, 16, 32, 32),
    "scratch.refinenet2": (256, 16, 64, 64),
    "scratch.refinenet1": (256, 16, 128, 128),
    "head1": (128, 16, 128, 128),
    "resize": (128, 16, 224, 224),
}
# notes/l4p.md §2b.
L4P_CAMRAY_STAGES = {
    "act_postprocess.0": (256, 16, 16, 16),
    "act_postprocess.1": (512, 16, 16, 16),
    "act_postprocess.2": (1024, 8, 16, 16),
    "act_postprocess.3": (1024, 4, 8, 8),
    "scratch.refinenet1": (256, 16, 16, 16),
    "head1": (128, 16, 16, 16),
    "head2": (6, 16, 16, 16),
}
# The tiny config (latent 8×8×8, 112 px, dims 16/8, layer dims 16/32/64/64), derived by hand
# from the same factors: ConvT (2,4,4) / (2,2,2) / Identity / stride-2 conv; fusion ×(1,2,2)
# for rn1, rn2 and ×2 for rn3, rn4.
TINY_DENSE_STAGES = {
    "act_postprocess.0": (16, 16, 32, 32),
    "act_postprocess.1": (32, 16, 16, 16),
    "act_postprocess.2": (64, 8, 8, 8),
    "act_postprocess.3": (64, 4, 4, 4),
    "scratch.refinenet4": (16, 8, 8, 8),
    "scratch.refinenet3": (16, 16, 16, 16),
    "scratch.refinenet2": (16, 16, 32, 32),
    "scratch.refinenet1": (16, 16, 64, 64),
    "head1": (8, 16, 64, 64),
    "resize": (8, 16, 112, 112),
    "head2": (1, 16, 112, 112),
}
TINY_CAMRAY_STAGES = {
    "act_postprocess.0": (16, 16, 8, 8),
    "act_postprocess.1": (32, 16, 8, 8),
    "scratch.refinenet4": (16, 8, 8, 8),
    "scratch.refinenet3": (16, 16, 8, 8),
    "scratch.refinenet1": (16, 16, 8, 8),
    "head2": (6, 16, 8, 8),
}


@pytest.mark.parametrize(
    "cfg, modality, table",
    [
        (L4P_HEADS, "depth", L4P_DENSE_STAGES),
        (L4P_HEADS, "flow", L4P_DENSE_STAGES),
        (L4P_HEADS, "motion", L4P_DENSE_STAGES),
        (L4P_HEADS, "camray", L4P_CAMRAY_STAGES),
        (TINY_HEADS, "depth", TINY_DENSE_STAGES),
        (TINY_HEADS, "camray", TINY_CAMRAY_STAGES),
    ],
)
def test_every_dpt_stage_shape(cfg, modality, table):
    stages = dpt_stage_shapes(cfg, modality, batch=1)
    for name, shape in table.items():
        assert stages[name] == (1, *shape), name


@pytest.mark.parametrize("cfg", [L4P_HEADS, TINY_HEADS])
def test_final_output_shapes_channels_last(cfg):
    n, (h, w) = cfg.num_frames, cfg.image_size
    hp, wp = h // cfg.patch_size, w // cfg.patch_size
    want = {"depth": (n, h, w, 1), "flow": (n, h, w, 2), "motion": (n, h, w, 1), "camray": (n, hp, wp, 6)}
    for m, shape in want.items():
        assert dpt_stage_shapes(cfg, m, batch=3)["output"] == (3, *shape)
        assert cfg.output_shape(m) == shape


def _conv(cin, cout, k, bias=True):
    return cin * cout * k + (cout if bias else 0)


def _hand_count(c_in, out_ch, camray, fd=256, layer_dims=(256, 512, 1024, 1024), last=128):
    """Parameter count from the published layer list (dpt_block.py / dpt_head.py)."""
    up0, up1 = ((2, 1, 1), (2, 1, 1)) if camray else ((2, 4, 4), (2, 2, 2))
    k0, k1 = up0[0] * up0[1] * up0[2], up1[0] * up1[1] * up1[2]
    d0, d1, d2, d3 = layer_dims
    act = (
        _conv(c_in, d0, 1) + _conv(d0, d0, k0)  # 1x1x1 + ConvTranspose3d k=s
        + _conv(c_in, d1, 1) + _conv(d1, d1, k1)
        + _conv(c_in, d2, 1)  # Identity
        + _conv(c_in, d3, 1) + _conv(d3, d3, 27)  # Conv3d k3 s2
    )
    layer_rn = sum(_conv(d, fd, 27, bias=False) for d in layer_dims)
    refinenet = 4 * (4 * _conv(fd, fd, 27) + _conv(fd, fd, 1))  # 2 RCUs x 2 convs + out_conv
    heads = _conv(fd, fd // 2, 27) + _conv(fd // 2, last, 27) + _conv(last, out_ch, 1)
    return act + layer_rn + refinenet + heads


def test_l4p_parameter_counts_match_hand_count():
    heads = DenseHeads(L4P_HEADS, device="meta")
    got = {m: count_parameters(h) for m, h in heads.heads.items()}
    assert got["depth"] == _hand_count(1408, 1, False) == 85_845_889
    assert got["motion"] == _hand_count(1408, 1, False)
    assert got["flow"] == _hand_count(1408, 2, False) == 85_846_018
    assert got["camray"] == _hand_count(1408, 6, True) == 82_307_590
    # notes/l4p.md §3: "85.8 M each" dense DPT, "82.3 M" camera DPT.
    assert round(got["depth"] / 1e6, 1) == 85.8 and round(got["camray"] / 1e6, 1) == 82.3


def test_tiny_parameter_counts_match_hand_count():
    heads = DenseHeads(TINY_HEADS, device="meta")
    kw = dict(fd=16, layer_dims=(16, 32, 64, 64), last=8)
    assert count_parameters(heads.heads["flow"]) == _hand_count(64, 2, False, **kw)
    assert count_parameters(heads.heads["camray"]) == _hand_count(64, 6, True, **kw)


def test_layer_rn_has_no_bias_and_other_convs_do():
    head = DenseHeads(TINY_HEADS, device="meta").heads["depth"]
    names = {n for n, _ in head.named_parameters()}
    for i in range(1, 5):
        assert f"dpt.scratch.layer{i}_rn.weight" in names
        assert f"dpt.scratch.layer{i}_rn.bias" not in names
        for rcu in (1, 2):
            for conv in (1, 2):
                assert f"dpt.scratch.refinenet{i}.resConfUnit{rcu}.conv{conv}.bias" in names
        assert f"dpt.scratch.refinenet{i}.out_conv.bias" in names
    for n in ("dpt.head1.0.bias", "dpt.head2.0.bias", "dpt.head2.2.bias", "dpt.act_postprocess.0.1.bias",
              "dpt.act_postprocess.3.1.bias"):
        assert n in names
    assert not any(n.startswith("dpt.act_postprocess.2.1") for n in names)  # Identity


@pytest.fixture(scope="module")
def tiny_heads():
    torch.manual_seed(0)
    return DenseHeads(TINY_HEADS).eval()


def test_tiny_forward_contract_and_input_layouts(tiny_heads):
    torch.manual_seed(1)
    f4d = torch.randn(2, 4, 8, 8, 8, 64)
    with torch.no_grad():
        out = tiny_heads(f4d)
        as_list = tiny_heads([f4d[:, i] for i in range(4)])
        flow_only = tiny_heads.forward_modality("flow", f4d)
    assert out["depth"].shape == (2, 16, 112, 112, 1)
    assert out["flow"].shape == (2, 16, 112, 112, 2)
    assert out["motion"].shape == (2, 16, 112, 112, 1)
    assert out["camray"].shape == (2, 16, 8, 8, 6)
    assert (out["depth"] > 0).all()
    for m in out:
        torch.testing.assert_close(as_list[m], out[m], rtol=0, atol=0)
    torch.testing.assert_close(flow_only, out["flow"], rtol=0, atol=0)
    # depth = exp(raw DPT output): undo the exp and compare with the raw adapter, channels-first.
    taps = [f4d[:, i].permute(0, 4, 1, 2, 3) for i in range(4)]
    with torch.no_grad():
        raw = tiny_heads.heads["depth"].dpt(taps)
    torch.testing.assert_close(torch.log(out["depth"]), raw.permute(0, 2, 3, 4, 1), rtol=1e-4, atol=1e-4)


def test_batch_items_are_independent(tiny_heads):
    torch.manual_seed(2)
    f4d = torch.randn(2, 4, 8, 8, 8, 64)
    with torch.no_grad():
        both = tiny_heads.forward_modality("camray", f4d)
        second = tiny_heads.forward_modality("camray", f4d[1:])
    torch.testing.assert_close(both[1:], second, rtol=1e-4, atol=1e-5)


def test_gradients_flow_through_frozen_heads_to_input(tiny_heads):
    tiny_heads.requires_grad_(False)
    f4d = torch.randn(2, 4, 8, 8, 8, 64, requires_grad=True)
    out = tiny_heads(f4d)
    loss = sum(o.float().square().mean() for o in out.values())
    loss.backward()
    assert f4d.grad is not None and f4d.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_heads.parameters())
    # every tap receives gradient
    assert all(f4d.grad[:, i].abs().sum() > 0 for i in range(4))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(1, 3, 8, 8, 8, 64), "f4d"),
        (torch.zeros(1, 4, 8, 8, 8, 32), "f4d tap 0"),
        ([torch.zeros(1, 8, 8, 8, 64)] * 3, "4 taps"),
    ],
)
def test_bad_input_is_one_clear_error(tiny_heads, bad, match):
    with pytest.raises(ConfigError, match=match):
        tiny_heads(bad)


def test_unknown_modality_is_an_error(tiny_heads):
    with pytest.raises(ConfigError, match="modality"):
        tiny_heads.forward_modality("normals", torch.zeros(1, 4, 8, 8, 8, 64))


def test_raw_outputs_are_the_pre_activation_maps():
    cfg = TINY_HEADS
    heads = DenseHeads(cfg)
    f4d = torch.randn(2, cfg.num_taps, *cfg.tap_shape())
    with torch.no_grad():
        maps, raw = heads(f4d), heads(f4d, raw=True)
        only = heads(f4d, modalities=["flow"], raw=True)
    torch.testing.assert_close(torch.exp(raw["depth"]), maps["depth"])  # depth = exp(log-depth)
    for m in ("flow", "motion", "camray"):
        torch.testing.assert_close(raw[m], maps[m])  # no activation on the others
    assert list(only) == ["flow"]
    with pytest.raises(ConfigError, match="normals"):
        heads(f4d, modalities=["normals"])
