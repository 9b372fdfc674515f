import json

import pytest
import safetensors.torch
import torch

from p4d.errors import ConfigError
from p4d.train.model import STUDENT_FILE, build_student, encode_chat, export_student, load_exported_student, pad_batch
from p4d.train.model.config import TINY

from .conftest import F4D_SHAPE, NUM_FRAMES


def _file_keys(root):
    keys = {}
    for file in root.rglob("*.safetensors"):
        for k, v in safetensors.torch.load_file(str(file)).items():
            keys[f"{file.parent.name}/{k}"] = v
    return keys


def test_export_drops_training_only_parameters_and_generates(tmp_path, tiny_heads, clip):
    torch.manual_seed(0)
    model = build_student(TINY, heads=tiny_heads).eval()
    export_student(model, tmp_path)
    files = _file_keys(tmp_path)
    # exactly E_v, E_p and the LLM: same count as the model's parameters outside d4dp / heads
    kept = {n: p for n, p in model.named_parameters() if not n.startswith(("d4dp.", "heads."))}
    assert len(files) == len(kept)
    assert not any("d4dp" in k or "heads" in k or "mlps" in k or "dpt" in k for k in files)
    dropped = [p for n, p in model.named_parameters() if n.startswith(("d4dp.", "heads."))]
    assert dropped  # the model had training-only parameters
    shapes = sorted(tuple(v.shape) for v in files.values())
    assert (TINY.d4dp_hidden, TINY.llm["hidden_size"]) not in shapes  # no D_4DP first layer
    record = json.loads((tmp_path / STUDENT_FILE).read_text())
    assert record["config"]["strategy"] == "p4d" and record["config"]["tpe"] == "add"
    assert record["config"]["attn"] == "eager" and record["config"]["dtype"] == "float32"

    loaded = load_exported_student(tmp_path)
    assert loaded.d4dp is None and loaded.heads is None
    assert not any(n.startswith(("d4dp", "heads")) for n, _ in loaded.named_parameters())
    for n, p in loaded.named_parameters():
        assert torch.equal(p, kept[n]), n

    frames, timestamps = clip
    prompt = pad_batch([encode_chat(loaded.tokenizer, loaded.cfg, [("How far is it?", None)], num_frames=NUM_FRAMES)],
                       pad_id=loaded.ids.pad, side="left")
    ids = loaded.generate(frames, timestamps, prompt["input_ids"], prompt["attention_mask"], max_new_tokens=6)
    assert ids.shape[0] == 1 and 1 <= ids.shape[1] <= 6
    text = loaded.tokenizer.decode(ids[0], skip_special_tokens=True)
    assert isinstance(text, str)
    # the same greedy answer as the trained model before export
    assert torch.equal(ids, model.generate(frames, timestamps, prompt["input_ids"], prompt["attention_mask"], max_new_tokens=6))


def test_left_padded_batch_generates_like_single_prompts(tmp_path, clip):
    torch.manual_seed(0)
    model = build_student(TINY.replace(strategy="4d-sft")).eval()
    frames, timestamps = clip
    qs = ["How far is it?", "Which object moves faster between the first and the last frame?"]
    exs = [encode_chat(model.tokenizer, model.cfg, [(q, None)], num_frames=NUM_FRAMES) for q in qs]
    batch = pad_batch(exs, pad_id=model.ids.pad, side="left")
    both = model.generate(frames.expand(2, -1, -1, -1, -1), timestamps.expand(2, -1), batch["input_ids"],
                          batch["attention_mask"], max_new_tokens=4, min_new_tokens=4)
    for row, ex in enumerate(exs):
        one = model.generate(frames, timestamps, torch.tensor([ex["input_ids"]]), max_new_tokens=4, min_new_tokens=4)
        assert torch.equal(both[row], one[0])


def test_export_needs_f4d_for_f4d_input_strategies(tmp_path, clip):
    torch.manual_seed(0)
    model = build_student(TINY.replace(strategy="4d-pe"), f4d_shape=F4D_SHAPE).eval()
    with torch.no_grad():
        model.f4d_embed.proj.weight.normal_()
    export_student(model, tmp_path)
    loaded = load_exported_student(tmp_path)
    assert torch.equal(loaded.f4d_embed.proj.weight, model.f4d_embed.proj.weight)
    frames, timestamps = clip
    prompt = torch.tensor([encode_chat(loaded.tokenizer, loaded.cfg, [("Q?", None)], num_frames=NUM_FRAMES)["input_ids"]])
    with pytest.raises(ConfigError, match="f4d"):
        loaded.generate(frames, timestamps, prompt, max_new_tokens=2)
    assert loaded.generate(frames, timestamps, prompt, f4d=torch.randn(1, *F4D_SHAPE), max_new_tokens=2).shape[0] == 1


def test_export_refuses_unmerged_lora(tmp_path):
    peft = pytest.importorskip("peft")
    model = build_student(TINY.replace(strategy="4d-sft"))
    peft.inject_adapter_in_model(peft.LoraConfig(r=2, target_modules=["q_proj"]), model.llm)
    with pytest.raises(ConfigError, match="lora"):
        export_student(model, tmp_path)


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_export_dtype_stores_and_loads_either(tmp_path, dtype):
    """``--export-dtype``: bf16 stores every floating weight in bfloat16 (half the bytes of fp32);
    the loader reads both into the dtype it builds in (float32 on the CPU): bf16 gives the model's
    weights rounded to bfloat16, fp32 gives them exactly."""
    torch.manual_seed(0)
    model = build_student(TINY.replace(strategy="4d-pe"), f4d_shape=F4D_SHAPE).eval()
    export_student(model, tmp_path / dtype, dtype=dtype)
    want = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    files = _file_keys(tmp_path / dtype)
    assert files and {v.dtype for v in files.values() if v.is_floating_point()} == {want}
    record = json.loads((tmp_path / dtype / STUDENT_FILE).read_text())
    assert record["weights_dtype"] == str(want).removeprefix("torch.")
    loaded = load_exported_student(tmp_path / dtype, device="cpu")
    kept = dict(model.named_parameters())
    for n, p in loaded.named_parameters():
        assert p.dtype == torch.float32, n
        assert torch.equal(p, kept[n].detach().to(want).to(torch.float32)), n
    if dtype == "bf16":
        sizes = {d: sum(f.stat().st_size for f in (tmp_path / d).rglob("*.safetensors")) for d in ("bf16",)}
        export_student(model, tmp_path / "fp32-ref", dtype="fp32")
        full = sum(f.stat().st_size for f in (tmp_path / "fp32-ref").rglob("*.safetensors"))
        assert sizes["bf16"] < 0.55 * full


def test_export_dtype_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="--export-dtype 'fp8'"):
        export_student(build_student(TINY.replace(strategy="4d-sft")), tmp_path, dtype="fp8")
