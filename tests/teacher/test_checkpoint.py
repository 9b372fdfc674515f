"""Loading the released L4P checkpoint layout (key names written literally from notes/l4p.md §3).

The test writes a state dict with the published names at tiny dims and saves it the way the
released Lightning .ckpt is laid out, then loads it through the real loader.
"""

import pathlib

import pytest
import torch
from safetensors.torch import load_file

from p4d.errors import CheckpointError
from p4d.teacher.checkpoint import export_safetensors, load_checkpoint_file, load_teacher_weights, weights_hash
from p4d.teacher.model import L4PTeacher, build_teacher
from p4d.teacher.presets import get_preset

E, DEPTH, MLP = 64, 4, 256  # tiny encoder
LAYER_DIMS, FEAT, LAST = (16, 32, 64, 64), 16, 8  # tiny DPT
TASKS = {"depth": 1, "flow_2d_backward": 2, "dyn_mask": 1, "camray": 6}


def published_encoder_shapes():
    enc = "l4p_model.video_encoder."
    shapes = {
        enc + "patch_embed.proj.weight": (E, 3, 2, 14, 14),
        enc + "patch_embed.proj.bias": (E,),
        enc + "norm.weight": (E,),
        enc + "norm.bias": (E,),
    }
    for i in range(DEPTH):
        b = f"{enc}blocks.{i}."
        shapes |= {
            b + "norm1.weight": (E,), b + "norm1.bias": (E,),
            b + "attn.q_bias": (E,), b + "attn.v_bias": (E,),
            b + "attn.qkv.weight": (3 * E, E),
            b + "attn.proj.weight": (E, E), b + "attn.proj.bias": (E,),
            b + "norm2.weight": (E,), b + "norm2.bias": (E,),
            b + "mlp.fc1.weight": (MLP, E), b + "mlp.fc1.bias": (MLP,),
            b + "mlp.fc2.weight": (E, MLP), b + "mlp.fc2.bias": (E,),
        }
    return shapes


def published_dpt_shapes(task, out_ch):
    d = f"l4p_model.task_heads.{task}.task_head.dpt."
    c0, c1, c2, c3 = LAYER_DIMS
    # act_postprocess: 1x1x1 conv, then ConvTranspose3d (in, out, k) / Identity / Conv3d k3 s2
    up0, up1 = ((2, 1, 1), (2, 1, 1)) if task == "camray" else ((2, 4, 4), (2, 2, 2))
    shapes = {
        d + "act_postprocess.0.0.weight": (c0, E, 1, 1, 1), d + "act_postprocess.0.0.bias": (c0,),
        d + "act_postprocess.0.1.weight": (c0, c0, *up0), d + "act_postprocess.0.1.bias": (c0,),
        d + "act_postprocess.1.0.weight": (c1, E, 1, 1, 1), d + "act_postprocess.1.0.bias": (c1,),
        d + "act_postprocess.1.1.weight": (c1, c1, *up1), d + "act_postprocess.1.1.bias": (c1,),
        d + "act_postprocess.2.0.weight": (c2, E, 1, 1, 1), d + "act_postprocess.2.0.bias": (c2,),
        d + "act_postprocess.3.0.weight": (c3, E, 1, 1, 1), d + "act_postprocess.3.0.bias": (c3,),
        d + "act_postprocess.3.1.weight": (c3, c3, 3, 3, 3), d + "act_postprocess.3.1.bias": (c3,),
        d + "scratch.layer1_rn.weight": (FEAT, c0, 3, 3, 3),
        d + "scratch.layer2_rn.weight": (FEAT, c1, 3, 3, 3),
        d + "scratch.layer3_rn.weight": (FEAT, c2, 3, 3, 3),
        d + "scratch.layer4_rn.weight": (FEAT, c3, 3, 3, 3),
        d + "head1.0.weight": (FEAT // 2, FEAT, 3, 3, 3), d + "head1.0.bias": (FEAT // 2,),
        d + "head2.0.weight": (LAST, FEAT // 2, 3, 3, 3), d + "head2.0.bias": (LAST,),
        d + "head2.2.weight": (out_ch, LAST, 1, 1, 1), d + "head2.2.bias": (out_ch,),
    }
    for r in (1, 2, 3, 4):
        f = f"{d}scratch.refinenet{r}."
        shapes |= {f + "out_conv.weight": (FEAT, FEAT, 1, 1, 1), f + "out_conv.bias": (FEAT,)}
        for u in (1, 2):
            for c in (1, 2):
                shapes |= {f"{f}resConfUnit{u}.conv{c}.weight": (FEAT, FEAT, 3, 3, 3),
                           f"{f}resConfUnit{u}.conv{c}.bias": (FEAT,)}
    return shapes


TRACK_KEYS = {
    "l4p_model.task_heads.track_2d.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (3, 32),
    "l4p_model.task_heads.track_2d.mask_decoder.iou_token.weight": (1, E),
    "l4p_model.task_heads.track_2d.mask_decoder.mask_tokens.weight": (3, E),
}


def published_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = published_encoder_shapes() | TRACK_KEYS
    for task, ch in TASKS.items():
        shapes |= published_dpt_shapes(task, ch)
    sd = {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}
    for task in TASKS:  # CroCo's make_scratch ModuleList alias: the same tensors again
        d = f"l4p_model.task_heads.{task}.task_head.dpt."
        for i in range(4):
            sd[f"{d}scratch.layer_rn.{i}.weight"] = sd[f"{d}scratch.layer{i + 1}_rn.weight"]
    return sd


def save_like_release(sd, path):
    """The released file: a Lightning checkpoint dict (plain types only) with the weights under 'state_dict'."""
    torch.save({"state_dict": sd, "epoch": 7, "global_step": 1234, "pytorch-lightning_version": "2.4.0",
                "hyper_parameters": {"lr": 1e-4}}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_like_release(published_state_dict(), tmp_path_factory.mktemp("ckpt") / "l4p_tiny.ckpt")


def test_released_layout_loads_strictly(ckpt):
    sd = published_state_dict()
    model = L4PTeacher(get_preset("tiny"))
    report = load_teacher_weights(model, ckpt)
    assert report.encoder_tensors == 4 + DEPTH * 13
    # per DPT: act_postprocess 14 + layer*_rn 4 + refinenets 4 x 10 + head1 2 + head2 4
    assert report.head_tensors == {"depth": 64, "flow": 64, "motion": 64, "camray": 64}
    assert set(TRACK_KEYS) <= set(report.ignored)
    assert "l4p_model.task_heads.depth.task_head.dpt.scratch.layer_rn.3.weight" in report.ignored  # alias
    assert all(k.startswith("l4p_model.task_heads.") for k in report.ignored)
    # values landed where the published names say
    torch.testing.assert_close(model.encoder.blocks[2].attn.q_bias, sd["l4p_model.video_encoder.blocks.2.attn.q_bias"])
    torch.testing.assert_close(model.encoder.blocks[3].attn.qkv.weight, sd["l4p_model.video_encoder.blocks.3.attn.qkv.weight"])
    torch.testing.assert_close(
        model.heads.heads["flow"].dpt.scratch.layer1_rn.weight,
        sd["l4p_model.task_heads.flow_2d_backward.task_head.dpt.scratch.layer1_rn.weight"],
    )
    torch.testing.assert_close(
        model.heads.heads["motion"].dpt.head2[2].bias, sd["l4p_model.task_heads.dyn_mask.task_head.dpt.head2.2.bias"]
    )


def test_build_teacher_from_ckpt_on_meta_then_assigned(ckpt):
    model = build_teacher("tiny", weights=ckpt)
    assert all(p.device.type == "cpu" and not p.requires_grad for p in model.parameters())
    assert model.encoder.pos_embed.device.type == "cpu" and model.mean.device.type == "cpu"
    sd = published_state_dict()
    torch.testing.assert_close(model.encoder.patch_embed.proj.weight, sd["l4p_model.video_encoder.patch_embed.proj.weight"])
    out = model(torch.randint(0, 256, (1, 16, 112, 112, 3), dtype=torch.uint8))
    assert torch.isfinite(out["depth"]).all()


def test_missing_key_is_listed(tmp_path):
    sd = published_state_dict()
    del sd["l4p_model.video_encoder.blocks.1.attn.v_bias"]
    del sd["l4p_model.task_heads.camray.task_head.dpt.head1.0.bias"]
    path = save_like_release(sd, tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match="missing keys") as e:
        build_teacher("tiny", weights=path)
    assert "l4p_model.video_encoder.blocks.1.attn.v_bias" in str(e.value)
    assert "heads.camray.dpt.head1.0.bias" in str(e.value)
    assert str(path) in str(e.value)


def test_extra_keys_are_listed(tmp_path):
    sd = published_state_dict()
    sd["l4p_model.video_encoder.blocks.4.norm1.weight"] = torch.ones(E)  # a 5th block: wrong depth
    sd["l4p_model.optimizer_thing"] = torch.zeros(1)
    path = save_like_release(sd, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="unexpected keys") as e:
        build_teacher("tiny", weights=path)
    assert "l4p_model.video_encoder.blocks.4.norm1.weight" in str(e.value)
    assert "l4p_model.optimizer_thing" in str(e.value)


def test_wrong_shape_is_listed(tmp_path):
    sd = published_state_dict()
    sd["l4p_model.video_encoder.blocks.0.mlp.fc1.weight"] = torch.zeros(MLP + 1, E)
    with pytest.raises(CheckpointError, match=r"wrong shapes.*blocks\.0\.mlp\.fc1\.weight \(257, 64\)"):
        build_teacher("tiny", weights=save_like_release(sd, tmp_path / "s.ckpt"))


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_needing_arbitrary_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": published_state_dict(), "hyper_parameters": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="arbitrary unpickling") as e:
        load_checkpoint_file(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


def test_unwrapping_and_bad_files(tmp_path):
    sd = {"a.weight": torch.ones(2)}
    torch.save({"model": {"module.a.weight": torch.ones(2)}}, tmp_path / "m.pt")
    assert load_checkpoint_file(tmp_path / "m.pt").keys() == sd.keys()
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint_file(tmp_path / "absent.ckpt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_checkpoint_file(tmp_path / "junk.safetensors")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="unknown file type"):
        load_checkpoint_file(tmp_path / "w.npz")


def test_safetensors_export_has_published_layout_and_reloads_identically(ckpt, tmp_path):
    model = build_teacher("tiny", weights=ckpt)
    out = export_safetensors(model, tmp_path / "teacher.safetensors")
    exported = load_file(str(out))
    expected_keys = set(published_state_dict()) - set(TRACK_KEYS)
    assert set(exported) == expected_keys
    again = build_teacher("tiny", weights=out)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert weights_hash(a) == weights_hash(b)


def test_export_bytes_are_canonical_whatever_order_safetensors_writes(tmp_path):
    """The header is re-written with sorted keys: the same tensors + metadata give the same bytes
    (safetensors' own header order comes from hash maps), and the file reads back the same."""
    import json
    import struct

    from safetensors import safe_open
    from safetensors.torch import save

    from p4d.teacher.checkpoint import canonical_safetensors

    tensors = {"b": torch.arange(5.0), "a": torch.ones(3, dtype=torch.float16), "c": torch.zeros(2, 2)}
    one = save(tensors, metadata={"z": "1", "a": "2"})
    size = struct.unpack("<Q", one[:8])[0]
    header = json.loads(one[8:8 + size])
    shuffled = json.dumps(dict(reversed(list(header.items())))).encode()  # another order, another layout
    shuffled += b" " * (-len(shuffled) % 8)
    two = struct.pack("<Q", len(shuffled)) + shuffled + one[8 + size:]
    assert one != two and canonical_safetensors(one) == canonical_safetensors(two)
    out = canonical_safetensors(two)
    (n,) = struct.unpack("<Q", out[:8])
    assert n % 8 == 0 and list(json.loads(out[8:8 + n])) == ["__metadata__", "a", "b", "c"]
    (tmp_path / "c.safetensors").write_bytes(out)
    with safe_open(str(tmp_path / "c.safetensors"), "pt") as f:
        assert f.metadata() == {"a": "2", "z": "1"}
        assert all(torch.equal(f.get_tensor(k), v) for k, v in tensors.items())


def test_weights_hash_identifies_the_weights(ckpt):
    sd = build_teacher("tiny", weights=ckpt).state_dict()
    h = weights_hash(sd)
    assert h.startswith("sha256:") and len(h) == 7 + 64
    assert weights_hash(dict(reversed(list(sd.items())))) == h  # order-independent
    changed = {k: v.clone() for k, v in sd.items()}
    changed["encoder.blocks.0.attn.v_bias"][3] += 1e-3
    assert weights_hash(changed) != h
    renamed = dict(sd)
    renamed["encoder.norm.bias2"] = renamed.pop("encoder.norm.bias")
    assert weights_hash(renamed) != h
    assert weights_hash({k: v.half() for k, v in sd.items()}) != h


def test_fp16_legacy_format_checkpoint_loads(tmp_path):
    """A half-precision checkpoint in the pre-zip torch.save format loads and converts to the asked dtype."""
    sd = {k: v.half() for k, v in published_state_dict().items()}
    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": sd}, path, _use_new_zipfile_serialization=False)
    model = build_teacher("tiny", weights=path, dtype=torch.float32)
    w = model.encoder.blocks[0].mlp.fc2.weight
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, sd["l4p_model.video_encoder.blocks.0.mlp.fc2.weight"].float())


def test_stored_position_table_must_be_the_fixed_sinusoid(tmp_path):
    from p4d.teacher.encoder import sinusoid_table

    sd = published_state_dict()
    sd["l4p_model.video_encoder.pos_embed"] = sinusoid_table(512, E)[None]  # (1, L, c') as VideoMAE stores it
    model = build_teacher("tiny", weights=save_like_release(sd, tmp_path / "pos.ckpt"))  # accepted and dropped
    assert "encoder.pos_embed" not in model.state_dict()
    sd["l4p_model.video_encoder.pos_embed"] = torch.randn(1, 512, E)
    with pytest.raises(CheckpointError, match="pos_embed.*differs from the fixed sinusoid table"):
        build_teacher("tiny", weights=save_like_release(sd, tmp_path / "pos2.ckpt"))


def test_truncated_ckpt_is_a_checkpoint_error(ckpt, tmp_path):
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.ckpt: cannot be read"):
        load_checkpoint_file(bad)
