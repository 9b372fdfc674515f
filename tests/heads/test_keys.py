"""Published L4P head keys (notes/l4p.md §3, written literally, tiny dims) → DenseHeads.

The state dict is saved as ``torch.save({"state_dict": sd})`` like the released Lightning file,
read back with ``weights_only=True``, mapped by heads_checkpoint_filter and loaded strictly. An
independent functional forward written here from the layer list (F.conv3d & co. on the raw
published tensors) must give the same maps as DenseHeads.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from p4d.errors import CheckpointError
from p4d.heads import TINY_HEADS, DenseHeads, heads_checkpoint_filter, load_published_heads

C_IN, D, FD, LAST = 64, (16, 32, 64, 64), 16, 8  # tiny: embed, layer dims, feature, last


def published_dpt(prefix, out_ch, camray, gen):
    """One task's `...task_head.dpt.*` tensors, key names as published."""

    def r(*shape):
        return 0.1 * torch.randn(*shape, generator=gen)

    k0, k1 = ((2, 1, 1), (2, 1, 1)) if camray else ((2, 4, 4), (2, 2, 2))
    sd = {
        "act_postprocess.0.0.weight": r(D[0], C_IN, 1, 1, 1), "act_postprocess.0.0.bias": r(D[0]),
        "act_postprocess.0.1.weight": r(D[0], D[0], *k0), "act_postprocess.0.1.bias": r(D[0]),
        "act_postprocess.1.0.weight": r(D[1], C_IN, 1, 1, 1), "act_postprocess.1.0.bias": r(D[1]),
        "act_postprocess.1.1.weight": r(D[1], D[1], *k1), "act_postprocess.1.1.bias": r(D[1]),
        "act_postprocess.2.0.weight": r(D[2], C_IN, 1, 1, 1), "act_postprocess.2.0.bias": r(D[2]),
        "act_postprocess.3.0.weight": r(D[3], C_IN, 1, 1, 1), "act_postprocess.3.0.bias": r(D[3]),
        "act_postprocess.3.1.weight": r(D[3], D[3], 3, 3, 3), "act_postprocess.3.1.bias": r(D[3]),
        "scratch.layer1_rn.weight": r(FD, D[0], 3, 3, 3),
        "scratch.layer2_rn.weight": r(FD, D[1], 3, 3, 3),
        "scratch.layer3_rn.weight": r(FD, D[2], 3, 3, 3),
        "scratch.layer4_rn.weight": r(FD, D[3], 3, 3, 3),
        "head1.0.weight": r(FD // 2, FD, 3, 3, 3), "head1.0.bias": r(FD // 2),
        "head2.0.weight": r(LAST, FD // 2, 3, 3, 3), "head2.0.bias": r(LAST),
        "head2.2.weight": r(out_ch, LAST, 1, 1, 1), "head2.2.bias": r(out_ch),
    }
    for i in range(4):  # the ModuleList alias holds the very same tensors
        sd[f"scratch.layer_rn.{i}.weight"] = sd[f"scratch.layer{i + 1}_rn.weight"]
    for n in range(1, 5):
        sd[f"scratch.refinenet{n}.out_conv.weight"] = r(FD, FD, 1, 1, 1)
        sd[f"scratch.refinenet{n}.out_conv.bias"] = r(FD)
        for u in (1, 2):
            for c in (1, 2):
                sd[f"scratch.refinenet{n}.resConfUnit{u}.conv{c}.weight"] = r(FD, FD, 3, 3, 3)
                sd[f"scratch.refinenet{n}.resConfUnit{u}.conv{c}.bias"] = r(FD)
    return {prefix + k: v for k, v in sd.items()}


def published_checkpoint(seed=0):
    gen = torch.Generator().manual_seed(seed)
    sd = {
        "l4p_model.video_encoder.patch_embed.proj.weight": torch.zeros(C_IN, 3, 2, 14, 14),
        "l4p_model.video_encoder.blocks.0.attn.q_bias": torch.zeros(C_IN),
        "l4p_model.task_heads.track_2d.mask_decoder.mask_tokens.weight": torch.zeros(3, C_IN),
        "l4p_model.task_heads.track_2d.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": torch.zeros(3, 32),
        "l4p_model.task_heads.track_2d.processed_video_mask_token.weight": torch.zeros(1, C_IN),
    }
    sd |= published_dpt("l4p_model.task_heads.depth.task_head.dpt.", 1, False, gen)
    sd |= published_dpt("l4p_model.task_heads.flow_2d_backward.task_head.dpt.", 2, False, gen)
    sd |= published_dpt("l4p_model.task_heads.dyn_mask.task_head.dpt.", 1, False, gen)
    sd |= published_dpt("l4p_model.task_heads.camray.task_head.dpt.", 6, True, gen)
    return sd


def reference_dpt(sd, p, taps, camray, out_size):
    """Independent forward from the published layer list, on raw tensors."""
    w = lambda k: sd[p + k]  # noqa: E731
    conv = lambda x, k, **kw: F.conv3d(x, w(k + ".weight"), sd.get(p + k + ".bias"), **kw)  # noqa: E731
    k0, k1 = ((2, 1, 1), (2, 1, 1)) if camray else ((2, 4, 4), (2, 2, 2))
    x = [conv(t, f"act_postprocess.{i}.0") for i, t in enumerate(taps)]
    x[0] = F.conv_transpose3d(x[0], w("act_postprocess.0.1.weight"), w("act_postprocess.0.1.bias"), stride=k0)
    x[1] = F.conv_transpose3d(x[1], w("act_postprocess.1.1.weight"), w("act_postprocess.1.1.bias"), stride=k1)
    x[3] = conv(x[3], "act_postprocess.3.1", stride=2, padding=1)
    x = [conv(t, f"scratch.layer{i + 1}_rn", padding=1) for i, t in enumerate(x)]

    def rcu(t, name):
        return t + conv(F.relu(conv(F.relu(t), name + ".conv1", padding=1)), name + ".conv2", padding=1)

    def fuse(n, path, skip, scale):
        out = path if skip is None else path + rcu(skip, f"scratch.refinenet{n}.resConfUnit1")
        out = rcu(out, f"scratch.refinenet{n}.resConfUnit2")
        out = F.interpolate(out, scale_factor=scale, mode="trilinear", align_corners=True)
        return conv(out, f"scratch.refinenet{n}.out_conv")

    scales = ((1, 1, 1), (1, 1, 1), (2, 1, 1), (2, 2, 2)) if camray else ((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))
    path = fuse(4, x[3], None, scales[3])
    path = fuse(3, path, x[2], scales[2])
    path = fuse(2, path, x[1], scales[1])
    path = fuse(1, path, x[0], scales[0])
    out = conv(path, "head1.0", padding=1)
    if tuple(out.shape[-3:]) != out_size:
        out = F.interpolate(out, size=out_size, mode="trilinear", align_corners=True)
    return conv(F.relu(conv(out, "head2.0", padding=1)), "head2.2")


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "l4p_depth_flow_2d3dtrack_camray_dynseg_v1.ckpt"
    torch.save({"state_dict": published_checkpoint()}, path)
    return path


def test_published_keys_load_with_nothing_missing_or_unexpected(checkpoint_file):
    sd = torch.load(checkpoint_file, weights_only=True)["state_dict"]
    mapped, ignored = heads_checkpoint_filter(sd, TINY_HEADS)
    heads = DenseHeads(TINY_HEADS)
    assert set(mapped) == set(heads.state_dict())
    assert sorted(k for k in ignored if ".track_2d." in k) == sorted(k for k in sd if ".track_2d." in k)
    assert sorted(k for k in ignored if "layer_rn." in k) == sorted(k for k in sd if ".scratch.layer_rn." in k)
    assert len(ignored) == 3 + 4 * 4
    assert not any("video_encoder" in k for k in list(mapped) + ignored)
    assert load_published_heads(heads, sd) == ignored
    assert torch.equal(
        heads.heads["flow"].dpt.scratch.refinenet3.resConfUnit2.conv1.weight,
        sd["l4p_model.task_heads.flow_2d_backward.task_head.dpt.scratch.refinenet3.resConfUnit2.conv1.weight"],
    )


def test_loaded_heads_equal_an_independent_functional_forward(checkpoint_file):
    sd = torch.load(checkpoint_file, weights_only=True)["state_dict"]
    heads = DenseHeads(TINY_HEADS).eval()
    load_published_heads(heads, sd)
    torch.manual_seed(0)
    f4d = torch.randn(2, 4, 8, 8, 8, C_IN)
    taps = [f4d[:, i].permute(0, 4, 1, 2, 3) for i in range(4)]
    with torch.no_grad():
        ours = heads(f4d)
        for mod, task, camray in [("depth", "depth", False), ("flow", "flow_2d_backward", False),
                                  ("motion", "dyn_mask", False), ("camray", "camray", True)]:
            size = (16, 8, 8) if camray else (16, 112, 112)
            ref = reference_dpt(sd, f"l4p_model.task_heads.{task}.task_head.dpt.", taps, camray, size)
            if mod == "depth":
                ref = torch.exp(ref)
            torch.testing.assert_close(ours[mod], ref.permute(0, 2, 3, 4, 1), rtol=1e-4, atol=1e-5)


def test_prefix_is_optional_and_unbuilt_modalities_are_ignored():
    sd = {k.removeprefix("l4p_model."): v for k, v in published_checkpoint().items()}
    cfg = dataclasses.replace(TINY_HEADS, modalities=("depth", "camray"))
    heads = DenseHeads(cfg)
    ignored = load_published_heads(heads, sd)
    assert any(k.startswith("task_heads.flow_2d_backward.") for k in ignored)
    assert any(k.startswith("task_heads.dyn_mask.") for k in ignored)


def test_alias_only_is_used_and_disagreeing_alias_is_an_error():
    sd = published_checkpoint()
    key = "l4p_model.task_heads.depth.task_head.dpt.scratch.layer2_rn.weight"
    alias = "l4p_model.task_heads.depth.task_head.dpt.scratch.layer_rn.1.weight"
    only_alias = {k: v for k, v in sd.items() if k != key}
    mapped, _ = heads_checkpoint_filter(only_alias, TINY_HEADS)
    assert torch.equal(mapped["heads.depth.dpt.scratch.layer2_rn.weight"], sd[alias])
    bad = dict(sd)
    bad[alias] = sd[alias] + 1
    with pytest.raises(CheckpointError, match="layer_rn.1.weight"):
        heads_checkpoint_filter(bad, TINY_HEADS)


def test_missing_and_extra_keys_are_listed():
    sd = published_checkpoint()
    del sd["l4p_model.task_heads.camray.task_head.dpt.head2.2.bias"]
    sd["l4p_model.task_heads.dyn_mask.task_head.dpt.head3.0.weight"] = torch.zeros(1)
    sd["l4p_model.task_heads.depth.task_head.dpt.head1.0.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as err:
        load_published_heads(DenseHeads(TINY_HEADS), sd)
    msg = str(err.value)
    assert "missing keys (1): heads.camray.dpt.head2.2.bias" in msg
    assert "unexpected keys (1): heads.motion.dpt.head3.0.weight" in msg
    assert "heads.depth.dpt.head1.0.bias: expected (8,), found (5,)" in msg
