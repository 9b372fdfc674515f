import pytest
import torch

from p4d.errors import ConfigError
from p4d.train.model import build_student, encode_chat, pad_batch
from p4d.train.model.config import NVILA_LITE_2B, NVILA_LITE_8B, TINY

from .conftest import F4D_SHAPE, NUM_FRAMES


def _batch(model, answer="12 meters"):
    ex = encode_chat(model.tokenizer, model.cfg, [("How far is the car?", answer)], num_frames=NUM_FRAMES)
    return pad_batch([ex], pad_id=model.ids.pad)


def _targets(heads, which):
    with torch.no_grad():
        maps = heads(torch.randn(1, *F4D_SHAPE))
    maps["depth"] = maps["depth"] * 3.0 + 0.5  # a different depth than the head gives at init
    maps["f4d"] = torch.randn(1, *F4D_SHAPE)
    return {k: maps[k] for k in which}


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("which, terms", [(("f4d",), {"ld"}), (("depth", "flow", "motion", "camray"), {"depth", "flow", "motion", "camray"})])
def test_gradients_reach_llm_through_ld_and_ed_heads_get_none(which, terms, tiny_heads, clip):
    torch.manual_seed(0)
    model = build_student(TINY, heads=tiny_heads)
    frames, timestamps = clip
    batch = _batch(model)
    out = model(frames, timestamps, batch["input_ids"], batch["attention_mask"], targets=_targets(tiny_heads, which))
    assert set(out["losses"]) == terms  # no labels → no SFT term; only these distillation terms
    out["loss"].backward()
    llm_grad = model.llm.model.layers[-1].mlp.down_proj.weight.grad
    assert llm_grad is not None and llm_grad.abs().sum() > 0
    assert model.mm_projector.layers[7].weight.grad.abs().sum() > 0
    assert model.vision_tower.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(model.d4dp.maps[0]))
    assert all(g is None for g in _grads(model.heads))
    assert not any(p.requires_grad for p in model.heads.parameters())
    assert model.llm.lm_head.weight.grad is None  # lm_head only sees the SFT term


def test_full_loss_is_sft_plus_weighted_terms_and_missing_modality_drops(tiny_heads, clip):
    torch.manual_seed(0)
    model = build_student(TINY, heads=tiny_heads)
    frames, timestamps = clip
    batch = _batch(model)
    targets = _targets(tiny_heads, ("f4d", "depth", "motion"))  # no flow, no camray in this "cache"
    out = model(frames, timestamps, **batch, targets=targets)
    t = out["losses"]
    assert set(t) == {"sft", "ld", "depth", "motion"}
    want = t["sft"] + 0.01 * t["ld"] + 0.1 * t["depth"] + 0.01 * t["motion"]
    assert torch.allclose(out["loss"], want)
    assert out["f4d_hat"].shape == (1, *F4D_SHAPE)
    assert out["hidden"].shape == (1, NUM_FRAMES, 2, 2, 64)


def test_weight_zero_ed_is_logged_without_gradient(tiny_heads, clip):
    # the release logs every modality's ED; a weight of 0 keeps it out of the loss and the graph
    torch.manual_seed(0)
    model = build_student(TINY.replace(loss=dict(camray_weight=0.0, flow_weight=0.0)), heads=tiny_heads)
    frames, timestamps = clip
    batch = _batch(model)
    out = model(frames, timestamps, **batch, targets=_targets(tiny_heads, ("f4d", "depth", "flow", "motion", "camray")))
    t = out["losses"]
    assert set(t) == {"sft", "ld", "depth", "flow", "motion", "camray"}
    assert float(t["camray"]) > 0 and float(t["flow"]) > 0
    assert not t["camray"].requires_grad and not t["flow"].requires_grad
    want = t["sft"] + 0.01 * t["ld"] + 0.1 * t["depth"] + 0.01 * t["motion"]
    assert torch.allclose(out["loss"], want)
    silent = build_student(TINY.replace(loss=dict(camray_weight=0.0, log_all=False)), heads=tiny_heads)
    out = silent(frames, timestamps, **batch, targets=_targets(tiny_heads, ("f4d", "camray")))
    assert "camray" not in out["losses"]


def test_heads_stay_in_eval_mode(tiny_heads):
    model = build_student(TINY, heads=tiny_heads).train()
    assert model.training and model.d4dp.training and not model.heads.training


def test_wrong_number_of_video_tokens_is_named(clip):
    model = build_student(TINY.replace(strategy="4d-sft"))
    frames, timestamps = clip
    ids = encode_chat(model.tokenizer, model.cfg, [("Q", "A")], num_frames=NUM_FRAMES - 1)
    batch = pad_batch([ids], pad_id=model.ids.pad)
    with pytest.raises(ConfigError, match="video tokens"):
        model(frames, timestamps, **batch)


def test_p4d_needs_f4d_shape_and_matching_heads(tiny_heads):
    with pytest.raises(ConfigError, match="F_4D"):
        build_student(TINY)
    with pytest.raises(ConfigError, match="heads"):
        build_student(TINY, heads=tiny_heads, f4d_shape=(4, 2, 2, 2, 8))


@pytest.mark.parametrize("strategy", ["4d-concat", "4d-pe"])
def test_f4d_input_strategies(strategy, clip):
    torch.manual_seed(0)
    model = build_student(TINY.replace(strategy=strategy), f4d_shape=F4D_SHAPE)
    assert model.d4dp is None
    frames, timestamps = clip
    batch = _batch(model)
    with pytest.raises(ConfigError, match="f4d"):
        model(frames, timestamps, **batch)
    f4d = torch.randn(1, *F4D_SHAPE)
    out = model(frames, timestamps, **batch, f4d=f4d)
    assert set(out["losses"]) == {"sft"}
    out["loss"].backward()
    if strategy == "4d-concat":
        assert model.mm_projector.layers[2].weight.shape[1] == 9 * (32 + 16)  # E_p input widened
    else:
        assert model.f4d_embed.proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cfg, llm_params", [(NVILA_LITE_8B, 7_615_616_512), (NVILA_LITE_2B, 1_543_714_304)])
def test_real_sizes_on_meta(cfg, llm_params):
    model = build_student(cfg, device="meta", f4d_shape=(4, 8, 16, 16, 1408))
    assert cfg.token_grid == (11, 11) and cfg.tokens_per_frame == 122
    proj = {k: tuple(v.shape) for k, v in model.mm_projector.state_dict().items()}
    c = cfg.llm["hidden_size"]
    assert proj == {
        "layers.1.weight": (10368,), "layers.1.bias": (10368,),
        "layers.2.weight": (3456, 10368), "layers.2.bias": (3456,),
        "layers.4.weight": (3456,), "layers.4.bias": (3456,),
        "layers.5.weight": (c, 3456), "layers.5.bias": (c,),
        "layers.7.weight": (c, c), "layers.7.bias": (c,),
    }
    # Qwen2-7B: 7.62e9 parameters; Qwen2-1.5B (tied embeddings): 1.54e9
    assert sum(p.numel() for p in model.llm.parameters()) == llm_params
    assert model.d4dp.maps[0].weight.shape == (1408, c)  # the release: one Linear(c, 1408) per tap
    # the NVILA presets: attn auto -> sdpa off CUDA / without flash_attn; activation checkpointing on
    assert cfg.attn == "auto" and cfg.gradient_checkpointing
    assert model.llm.model.layers[0].self_attn.config._attn_implementation == "sdpa"
    assert model.vision_tower.config._attn_implementation == "sdpa"
    assert all(getattr(m, "gradient_checkpointing", False) for m in (model.llm.model, model.vision_tower.encoder))


def test_auto_attention_is_flash_only_on_cuda_with_flash_attn(monkeypatch):
    import importlib.util

    from p4d.train.model import resolve_attn

    real = importlib.util.find_spec
    for installed in (False, True):
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: (object() if installed else None) if name == "flash_attn" else real(name, *a))
        assert resolve_attn("auto", "cpu") == "sdpa"
        assert resolve_attn("auto", "cuda") == ("flash_attention_2" if installed else "sdpa")
        assert resolve_attn("eager", "cuda") == "eager"  # asked for: kept
    with pytest.raises(ConfigError, match="flash_attention_2.*CUDA"):
        resolve_attn("flash_attention_2", "cpu")


def _layer_calls_and_grads(model, clip, tiny_heads):
    """(calls of the MLP forward inside LLM block 0 and E_v block 0 in one forward + backward, {name: grad}).
    The MLP's ``forward`` itself is counted: transformers checkpoints the block's ``forward`` and the
    recomputation does not run module hooks."""
    calls = [0, 0]
    for i, mlp in enumerate((model.llm.model.layers[0].mlp, model.vision_tower.encoder.layers[0].mlp)):
        def counted(*args, _forward=mlp.forward, _i=i, **kwargs):
            calls[_i] += 1
            return _forward(*args, **kwargs)
        mlp.forward = counted
    frames, timestamps = clip
    out = model(frames, timestamps, **_batch(model), targets=_targets(tiny_heads, ("f4d", "depth", "flow")))
    out["loss"].backward()
    return calls, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_recomputes_and_gives_the_same_gradients(tiny_heads, clip):
    """Independent truth: the same tiny student without checkpointing. Checkpointing is seen
    working by the recomputation (each block's forward runs twice: forward, then in backward)."""
    grads = {}
    for on in (False, True):
        torch.manual_seed(0)
        model = build_student(TINY.replace(gradient_checkpointing=on), heads=tiny_heads).train()
        torch.manual_seed(1)
        calls, grads[on] = _layer_calls_and_grads(model, clip, tiny_heads)
        assert calls == ([2, 2] if on else [1, 1])
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) > 20
    for name, g in grads[False].items():
        torch.testing.assert_close(grads[True][name], g, rtol=1e-6, atol=1e-8, msg=name)


def test_attention_and_dtype_are_selectable(tiny_heads, clip):
    torch.manual_seed(0)
    model = build_student(TINY.replace(attn="sdpa", dtype="bfloat16"), heads=tiny_heads)
    assert model.vision_tower.config._attn_implementation == "sdpa"
    assert model.llm.config._attn_implementation == "sdpa"
    assert {p.dtype for n, p in model.named_parameters() if not n.startswith("heads.")} == {torch.bfloat16}
    frames, timestamps = clip
    out = model(frames, timestamps, **_batch(model), targets=_targets(tiny_heads, ("f4d", "depth")))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out["losses"].values())
    out["loss"].backward()
    assert model.llm.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_weight_zero_ld_is_logged_like_ed_and_nothing_at_weight_zero_off_log_steps(tiny_heads, clip, monkeypatch):
    """LD at weight 0 is logged without gradient (as ED is); with log_untrained=False (the trainer's
    steps between --log.every) no weight-0 term is computed and the weight-0 heads do not run."""
    torch.manual_seed(0)
    model = build_student(TINY.replace(loss=dict(ld_weight=0.0, camray_weight=0.0)), heads=tiny_heads)
    frames, timestamps = clip
    batch = _batch(model)
    targets = _targets(tiny_heads, ("f4d", "depth", "camray"))
    out = model(frames, timestamps, **batch, targets=targets)
    t = out["losses"]
    assert set(t) == {"sft", "ld", "depth", "camray"}
    assert float(t["ld"]) > 0 and not t["ld"].requires_grad
    assert torch.allclose(out["loss"], t["sft"] + 0.1 * t["depth"])
    calls = []
    real = type(tiny_heads).forward
    monkeypatch.setattr(type(tiny_heads), "forward",
                        lambda self, f4d, **kw: calls.append(tuple(kw.get("modalities") or ())) or real(self, f4d, **kw))
    quiet = model(frames, timestamps, **batch, targets=targets, log_untrained=False)
    assert set(quiet["losses"]) == {"sft", "depth"} and calls == [("depth",)]
    assert torch.allclose(quiet["loss"], out["loss"])
