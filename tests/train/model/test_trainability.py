import torch

from p4d.train.model import build_student, encode_chat, pad_batch
from p4d.train.model.config import TINY
from p4d.train.model.trainability import LoraSettings, apply_trainability, merge_lora

from .conftest import NUM_FRAMES


def _trainable(module):
    return any(p.requires_grad for p in module.parameters())


def test_presets_and_lora_merge(tiny_heads, clip):
    torch.manual_seed(0)
    model = build_student(TINY, heads=tiny_heads)
    counts = apply_trainability(model, "tune-p")
    assert counts["vision_tower"] == 0 and counts["llm"] == 0 and counts["heads"] == 0
    assert counts["mm_projector"] == sum(p.numel() for p in model.mm_projector.parameters())
    assert _trainable(model.d4dp)

    apply_trainability(model, "tune-p+llm-lora", lora=LoraSettings(r=2, alpha=4, dropout=0.0))
    trainable = {n for n, p in model.llm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2  # A and B for 7 projections × 2 layers
    assert _trainable(model.mm_projector) and not _trainable(model.vision_tower) and not _trainable(model.heads)

    with torch.no_grad():  # make the adapters non-trivial (B starts at zero)
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    model.eval()
    frames, timestamps = clip
    batch = pad_batch([encode_chat(model.tokenizer, model.cfg, [("Q?", "A")], num_frames=NUM_FRAMES)], pad_id=model.ids.pad)
    before = model(frames, timestamps, **batch, return_logits=True)["logits"]
    assert merge_lora(model) == 14
    assert not any("lora_" in n for n, _ in model.named_parameters())
    after = model(frames, timestamps, **batch, return_logits=True)["logits"]
    assert torch.allclose(before, after, atol=1e-4)
