"""Every recipe preset of the paper's Tabs. 4-7: which parts train, which modules carry LoRA, which
loss terms are non-zero, checked against a table written here by hand."""

import pytest
import torch

from p4d.cache_schema import open_store
from p4d.train.build import build_model, student_config
from p4d.train.data import build_samples
from p4d.train.loader import ClipDataset, Collate
from p4d.train.trainer import forward_batch, needed_targets
from tests.train.conftest import small_config

ALL = {"sft", "ld", "depth", "flow", "motion", "camray"}
P_LLM = {"mm_projector", "llm", "d4dp"}
#: The tiny LLM has 2 layers × 7 projections (q, k, v, o, gate, up, down).
LORA = {f"llm.model.layers.{i}.{m}" for i in range(2) for m in
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}

# (table, setting, value) -> (trainable parts, LoRA-wrapped modules, non-zero loss terms, StudentConfig.tpe)
TABLE = {
    ("strategy", "4d-sft"): ({"mm_projector", "llm"}, set(), {"sft"}, "add"),
    ("strategy", "4d-concat"): ({"mm_projector", "llm"}, set(), {"sft"}, "add"),
    ("strategy", "4d-pe"): ({"mm_projector", "llm", "f4d_embed"}, set(), {"sft"}, "add"),
    ("strategy", "p4d"): (P_LLM, set(), ALL, "add"),
    ("loss", "ld-only"): (P_LLM, set(), {"sft", "ld"}, "add"),
    ("loss", "ld+d"): (P_LLM, set(), {"sft", "ld", "depth"}, "add"),
    ("loss", "ld+d+f"): (P_LLM, set(), {"sft", "ld", "depth", "flow"}, "add"),
    ("loss", "ld+d+f+m"): (P_LLM, set(), {"sft", "ld", "depth", "flow", "motion"}, "add"),
    ("loss", "ed-only"): (P_LLM, set(), {"sft", "depth", "flow", "motion", "camray"}, "add"),
    ("loss", "ld+ed"): (P_LLM, set(), ALL, "add"),
    ("time_cue", "none"): (P_LLM, set(), ALL, "off"),
    ("time_cue", "mark"): (P_LLM, set(), ALL, "mark"),
    ("time_cue", "prompt"): (P_LLM, set(), ALL, "prompt"),
    ("time_cue", "tpe"): (P_LLM, set(), ALL, "add"),
    ("tune", "tune-all"): ({"vision_tower", "mm_projector", "llm", "d4dp"}, set(), ALL, "add"),
    ("tune", "tune-v"): ({"vision_tower", "d4dp"}, set(), ALL, "add"),
    ("tune", "tune-p"): ({"mm_projector", "d4dp"}, set(), ALL, "add"),
    ("tune", "tune-llm"): ({"llm", "d4dp"}, set(), ALL, "add"),
    ("tune", "tune-llm-lora"): ({"llm", "d4dp"}, LORA, ALL, "add"),
    ("tune", "tune-p+llm-lora"): (P_LLM, LORA, ALL, "add"),
    ("tune", "tune-p+llm"): (P_LLM, set(), ALL, "add"),
}


@pytest.mark.parametrize(("setting", "value"), sorted(TABLE))
def test_recipe_preset(setting, value, train_cache, conversations, tmp_path):
    parts, lora, terms, tpe = TABLE[(setting, value)]
    cfg = small_config(train_cache, tmp_path, recipe={setting: value}, data={"batch_size": 1}, lora={"r": 2})
    store = open_store(train_cache.store)
    model, counts = build_model(cfg, store)

    trainable = {name.split(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == parts
    assert {k for k, v in counts.items() if v} == parts
    wrapped = {name for name, m in model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == lora
    if lora:   # only the adapters of the LLM train, its base weights stay frozen
        assert all("lora_" in n for n, p in model.llm.named_parameters() if p.requires_grad)
    assert student_config(cfg).tpe == tpe == model.cfg.tpe

    samples, _ = build_samples(cfg.data.conversations, store)
    ds = ClipDataset(samples, store, student=model.cfg, tokenizer=model.tokenizer, targets=needed_targets(cfg),
                     f4d_input=model.cfg.needs_f4d_input)
    batch = Collate(model.ids.pad)([ds[(0, 0)]])
    with torch.no_grad():
        out = forward_batch(model, batch, torch.device("cpu"))
    assert {k for k, v in out["losses"].items() if float(v) > 0} == terms
    if value == "prompt":   # the time cue is a sentence in the question
        text = model.tokenizer.decode(batch["input_ids"][0])
        assert "frames were sampled" in text
