"""E_4D against an independent implementation (transformers' VideoMAE), shapes and parameter counts."""

import pytest
import torch
from transformers import VideoMAEConfig, VideoMAEModel

from p4d.errors import ConfigError
from p4d.teacher.encoder import VideoMAEv2Encoder, sinusoid_table, take_indices
from p4d.teacher.presets import get_preset

TINY = get_preset("tiny")


def tiny_encoder(seed=0):
    enc = VideoMAEv2Encoder.from_preset(TINY, attn_backend="sdpa").eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every parameter random (q/v biases and LayerNorms too), so every mapping matters
        for name, p in enc.named_parameters():
            is_norm_scale = "norm" in name and name.endswith("weight")
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if is_norm_scale else 0.0))
    return enc


def hf_from_ours(enc):
    """transformers' VideoMAEModel with our weights, by a key mapping written here."""
    cfg = VideoMAEConfig(
        qkv_bias=True, tubelet_size=2, use_mean_pooling=False, layer_norm_eps=1e-6, num_frames=16, image_size=112,
        patch_size=14, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
        hidden_act="gelu", attn_implementation="eager",
    )
    hf = VideoMAEModel(cfg).eval()
    ours = enc.state_dict()
    d = 64
    mapped = {
        "embeddings.patch_embeddings.projection.weight": ours["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": ours["patch_embed.proj.bias"],
        "layernorm.weight": ours["norm.weight"],
        "layernorm.bias": ours["norm.bias"],
    }
    for i in range(4):
        o, h = f"blocks.{i}.", f"encoder.layer.{i}."
        qkv = ours[o + "attn.qkv.weight"]
        mapped |= {
            h + "attention.attention.query.weight": qkv[:d],
            h + "attention.attention.key.weight": qkv[d : 2 * d],
            h + "attention.attention.value.weight": qkv[2 * d :],
            h + "attention.attention.query.bias": ours[o + "attn.q_bias"],
            h + "attention.attention.value.bias": ours[o + "attn.v_bias"],
            h + "attention.output.dense.weight": ours[o + "attn.proj.weight"],
            h + "attention.output.dense.bias": ours[o + "attn.proj.bias"],
            h + "intermediate.dense.weight": ours[o + "mlp.fc1.weight"],
            h + "intermediate.dense.bias": ours[o + "mlp.fc1.bias"],
            h + "output.dense.weight": ours[o + "mlp.fc2.weight"],
            h + "output.dense.bias": ours[o + "mlp.fc2.bias"],
            h + "layernorm_before.weight": ours[o + "norm1.weight"],
            h + "layernorm_before.bias": ours[o + "norm1.bias"],
            h + "layernorm_after.weight": ours[o + "norm2.weight"],
            h + "layernorm_after.bias": ours[o + "norm2.bias"],
        }
    hf.load_state_dict(mapped, strict=True)
    return hf


def test_every_layer_matches_transformers_videomae():
    enc = tiny_encoder()
    hf = hf_from_ours(enc)
    x = torch.randn(2, 3, 16, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = enc.forward_intermediates(x, list(range(5)))
        ref = hf(x.permute(0, 2, 1, 3, 4), output_hidden_states=True)  # HF takes (B, N, 3, H, W)
    assert len(ref.hidden_states) == 5
    for i in range(4):  # embedding + blocks 1..3: raw outputs
        expected = ref.hidden_states[i].reshape(2, 8, 8, 8, 64)
        torch.testing.assert_close(ours[i], expected, atol=1e-5, rtol=1e-5, msg=f"layer {i}")
    # index depth = final LayerNorm of the last block
    torch.testing.assert_close(ours[4], ref.last_hidden_state.reshape(2, 8, 8, 8, 64), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours[4], ref.hidden_states[4].reshape(2, 8, 8, 8, 64), atol=1e-3)


def test_sinusoid_table_hand_values():
    t = sinusoid_table(3, 4)
    # position p, dim j: sin/cos(p / 10000^(2*(j//2)/4))
    expected = torch.tensor([
        [0.0, 1.0, 0.0, 1.0],
        [0.8414709848, 0.5403023059, 0.0099998333, 0.9999500004],
        [0.9092974268, -0.4161468365, 0.0199986667, 0.9998000067],
    ])
    torch.testing.assert_close(t, expected)
    enc = VideoMAEv2Encoder.from_preset(TINY)
    assert "pos_embed" not in enc.state_dict()
    assert enc.pos_embed.shape == (512, 64)


def test_token_order_is_t_h_w():
    """A perturbation of one tubelet moves exactly one token at layer 0: (t, h, w) = (frame//2, y//14, x//14)."""
    enc = tiny_encoder()
    x = torch.zeros(1, 3, 16, 112, 112)
    y = x.clone()
    y[0, :, 5, 30, 100] = 1.0  # frame 5 -> t=2; row 30 -> h=2; col 100 -> w=7
    with torch.no_grad():
        a, b = enc.forward_intermediates(x, [0])[0], enc.forward_intermediates(y, [0])[0]
    changed = (a - b).abs().sum(-1).nonzero().tolist()
    assert changed == [[0, 2, 2, 7]]


def test_take_indices_rules():
    assert take_indices(40, [14, 21, 28, 36]) == [14, 21, 28, 36]
    assert take_indices(40, 2) == [39, 40]
    assert take_indices(40, [-1, 0]) == [40, 0]
    with pytest.raises(ConfigError, match="out of range"):
        take_indices(40, [41])
    with pytest.raises(ConfigError):
        take_indices(4, 6)


def test_stops_after_last_needed_block():
    enc = tiny_encoder()
    ran = []
    for i, blk in enumerate(enc.blocks):
        blk.register_forward_hook(lambda m, inp, out, i=i: ran.append(i))
    with torch.no_grad():
        out = enc.forward_intermediates(torch.randn(1, 3, 16, 112, 112), [2, -4])
    assert ran == [0, 1]
    assert [o.shape for o in out] == [(1, 8, 8, 8, 64)] * 2


def test_tiny_tap_shapes_and_bad_input():
    enc = tiny_encoder()
    with torch.no_grad():
        taps = enc.forward_intermediates(torch.randn(1, 3, 16, 112, 112), TINY.taps)
    assert [t.shape for t in taps] == [(1, 8, 8, 8, 64)] * 4
    with pytest.raises(ConfigError, match=r"expected \(B, 3, N, H, W\) = \(B, 3, 16, 112, 112\).*\(1, 3, 8, 112, 112\)"):
        enc(torch.randn(1, 3, 8, 112, 112))


def test_l4p_on_meta_shapes_and_parameter_count():
    p = get_preset("l4p")
    enc = VideoMAEv2Encoder.from_preset(p, device="meta")
    taps = enc.forward_intermediates(torch.empty(2, 3, 16, 224, 224, device="meta"), p.taps)
    assert [tuple(t.shape) for t in taps] == [(2, 8, 16, 16, 1408)] * 4
    # Hand count from the published architecture (notes/l4p.md §1):
    D, M, depth = 1408, 6144, 40
    patch = 3 * 2 * 14 * 14 * D + D
    block = (2 * D) + (3 * D * D) + (2 * D) + (D * D + D) + (2 * D) + (D * M + M) + (M * D + D)
    final_norm = 2 * D
    expected = patch + depth * block + final_norm
    assert expected == 1_011_610_752  # ≈ 1,011.6 M
    assert sum(t.numel() for t in enc.parameters()) == expected
    assert len(enc.state_dict()) == 2 + depth * 13 + 2  # no pos_embed
