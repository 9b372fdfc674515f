"""An NVILA-Lite directory written here from the published key names (tiny dims), loaded
through the real loading code."""

import json

import pytest
import safetensors.torch
import torch

from p4d.errors import CheckpointError
from p4d.train.model import build_tiny_tokenizer, load_nvila_lite
from p4d.train.model.config import TINY

# tiny dims: SigLIP D=32 (MLP 64, 2 layers, 56 px / patch 14 → 16 patches); Qwen2 c=64 (MLP 128,
# 2 layers, 4 heads of 16, 2 KV heads → k/v width 32, vocab 320); projector 9D = 288 → 3D = 96 → c.
D, C, V = 32, 64, 320


def llm_tensors(g):
    t = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,), "lm_head.weight": (V, C)}
    for i in range(2):
        p = f"model.layers.{i}."
        t.update({
            p + "self_attn.q_proj.weight": (C, C), p + "self_attn.q_proj.bias": (C,),
            p + "self_attn.k_proj.weight": (32, C), p + "self_attn.k_proj.bias": (32,),
            p + "self_attn.v_proj.weight": (32, C), p + "self_attn.v_proj.bias": (32,),
            p + "self_attn.o_proj.weight": (C, C),
            p + "mlp.gate_proj.weight": (128, C), p + "mlp.up_proj.weight": (128, C),
            p + "mlp.down_proj.weight": (C, 128),
            p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
        })
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in t.items()}


def vision_tensors(g):
    t = {
        "vision_model.embeddings.patch_embedding.weight": (D, 3, 14, 14),
        "vision_model.embeddings.patch_embedding.bias": (D,),
        "vision_model.embeddings.position_embedding.weight": (16, D),
        "vision_model.post_layernorm.weight": (D,), "vision_model.post_layernorm.bias": (D,),
    }
    for i in range(2):
        p = f"vision_model.encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[p + f"self_attn.{name}.weight"] = (D, D)
            t[p + f"self_attn.{name}.bias"] = (D,)
        t.update({
            p + "layer_norm1.weight": (D,), p + "layer_norm1.bias": (D,),
            p + "layer_norm2.weight": (D,), p + "layer_norm2.bias": (D,),
            p + "mlp.fc1.weight": (64, D), p + "mlp.fc1.bias": (64,),
            p + "mlp.fc2.weight": (D, 64), p + "mlp.fc2.bias": (D,),
        })
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in t.items()}


def projector_tensors(g):
    t = {
        "layers.1.weight": (9 * D,), "layers.1.bias": (9 * D,),
        "layers.2.weight": (3 * D, 9 * D), "layers.2.bias": (3 * D,),
        "layers.4.weight": (3 * D,), "layers.4.bias": (3 * D,),
        "layers.5.weight": (C, 3 * D), "layers.5.bias": (C,),
        "layers.7.weight": (C, C), "layers.7.bias": (C,),
    }
    return {k: torch.randn(s, generator=g) for k, s in t.items()}


def write_checkpoint(root, llm=None, vision=None, projector=None):
    g = torch.Generator().manual_seed(11)
    llm = llm if llm is not None else llm_tensors(g)
    vision = vision if vision is not None else vision_tensors(g)
    projector = projector if projector is not None else projector_tensors(g)
    for sub in ("llm", "vision_tower", "mm_projector"):
        (root / sub).mkdir(parents=True)
    # the LLM in two shards with an index, as the published 8B is
    keys = sorted(llm)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2], "model-00002-of-00002.safetensors": keys[len(keys) // 2 :]}
    for name, part in shards.items():
        safetensors.torch.save_file({k: llm[k] for k in part}, str(root / "llm" / name))
    index = {"metadata": {}, "weight_map": {k: n for n, part in shards.items() for k in part}}
    (root / "llm" / "model.safetensors.index.json").write_text(json.dumps(index))
    (root / "llm" / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": V, "hidden_size": C,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "eos_token_id": 3, "pad_token_id": 1,
        "torch_dtype": "float32",
    }))
    build_tiny_tokenizer().save_pretrained(str(root / "llm"))
    safetensors.torch.save_file(vision, str(root / "vision_tower" / "model.safetensors"))
    (root / "vision_tower" / "config.json").write_text(json.dumps({
        "model_type": "siglip_vision_model", "image_size": 56, "patch_size": 14, "hidden_size": D,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vision_use_head": False,
    }))
    safetensors.torch.save_file(projector, str(root / "mm_projector" / "model.safetensors"))
    (root / "mm_projector" / "config.json").write_text(json.dumps({
        "architectures": ["MultimodalProjector"], "mm_projector_type": "mlp_downsample_3x3_fix", "model_type": "v2l_projector",
    }))
    return llm, vision, projector


def test_loads_every_published_key(tmp_path):
    llm, vision, projector = write_checkpoint(tmp_path)
    model = load_nvila_lite(tmp_path, base=TINY, strategy="4d-sft")
    assert model.cfg.llm["hidden_size"] == C and model.cfg.vision["hidden_size"] == D
    got_llm = model.llm.state_dict()
    got_vision = model.vision_tower.state_dict()
    got_proj = model.mm_projector.state_dict()
    # zero missing / unexpected: the model's parts hold exactly the file's keys and values
    assert set(got_llm) == set(llm)
    assert set("vision_model." + k for k in got_vision) == set(vision)
    assert set(got_proj) == set(projector)
    for k, v in llm.items():
        assert torch.equal(got_llm[k], v), k
    for k, v in vision.items():
        assert torch.equal(got_vision[k.removeprefix("vision_model.")], v), k
    for k, v in projector.items():
        assert torch.equal(got_proj[k], v), k


def test_wrong_key_is_named(tmp_path):
    g = torch.Generator().manual_seed(1)
    llm = llm_tensors(g)
    llm["model.layers.1.mlp.upproj.weight"] = llm.pop("model.layers.1.mlp.up_proj.weight")
    write_checkpoint(tmp_path, llm=llm)
    with pytest.raises(CheckpointError) as err:
        load_nvila_lite(tmp_path, base=TINY, strategy="4d-sft")
    message = str(err.value)
    assert "model.layers.1.mlp.upproj.weight" in message and "model.layers.1.mlp.up_proj.weight" in message
    assert "llm" in message


def test_wrong_shape_and_missing_folder_are_named(tmp_path):
    g = torch.Generator().manual_seed(1)
    projector = projector_tensors(g)
    projector["layers.5.weight"] = torch.zeros(C, 2 * D)
    write_checkpoint(tmp_path / "a", projector=projector)
    with pytest.raises(CheckpointError, match=r"layers\.5\.weight.*\(64, 64\).*\(64, 96\)"):
        load_nvila_lite(tmp_path / "a", base=TINY, strategy="4d-sft")
    (tmp_path / "b").mkdir()
    with pytest.raises(FileNotFoundError, match="llm"):
        load_nvila_lite(tmp_path / "b", base=TINY, strategy="4d-sft")


def test_4d_concat_widens_the_projector_input(tmp_path):
    _, _, projector = write_checkpoint(tmp_path)
    model = load_nvila_lite(tmp_path, base=TINY, strategy="4d-concat", f4d_shape=(4, 2, 2, 2, 16))
    w = model.mm_projector.layers[2].weight.detach().view(3 * D, 9, D + 16)
    assert torch.equal(w[..., :D], projector["layers.2.weight"].view(3 * D, 9, D))  # E_v channels loaded
    assert torch.equal(w[..., D:], torch.zeros(3 * D, 9, 16))  # F_4D channels start at zero
    ln = model.mm_projector.layers[1].weight.detach().view(9, D + 16)
    assert torch.equal(ln[:, :D], projector["layers.1.weight"].view(9, D))
    assert torch.equal(model.mm_projector.layers[5].weight, projector["layers.5.weight"])
