"""A trained tiny student answers its own training items the same through the trainer's forward
(greedy, one full forward per new token, the trainer's tokenizer and ClipDataset) and through
``p4d eval`` on its export (run_eval: the export's tokenizer, KV-cached generate, batch 1 and batched
with left padding). The prompts carry digits after spaces (options, the ``prompt`` time cue), which
the export's tokenizer encoded differently before the tokenizer fix."""

import json

import numpy as np
import pytest
import torch

from p4d.eval.predictions import read_predictions
from p4d.eval.prompt import format_prompt
from p4d.eval.run import EvalConfig, run_eval
from tests.train.conftest import GOOD, small_config, write_jsonl

MAX_NEW_TOKENS = 32  # what p4d eval's loader generates at most


def _items(videos):
    """Per good video: a question (lengths differ, so a batch is left-padded) with numeric options."""
    items = []
    for i in range(GOOD):
        options = [f"{0.5 * (i + 1)} m", f"{3 + i} m", f"{10 * i} s"][: 2 + i % 2]
        items.append({"id": f"v{i}", "video": str(videos / f"v{i}.mp4"), "category": "DM",
                      "question": f"How far did it move in {i + 1} s?" + " Look at the car." * i,
                      "options": options, "answer": "AB"[i % 2]})
    return items


def _records(items):
    """The same items as training conversations: the human turn is p4d eval's own prompt, the answer
    the letter and the option ("B. 3 m": digits after a space in the answers too)."""
    return [{"id": it["id"], "video": f"videos/{it['id']}.mp4", "conversations": [
        {"from": "human", "value": "<video>\n" + format_prompt(it["question"], it["options"], style="p4d")},
        {"from": "gpt", "value": f"{it['answer']}. {it['options']['AB'.index(it['answer'])]}"}]} for it in items]


@torch.no_grad()
def _trainer_greedy(model, item) -> tuple[str, np.ndarray]:
    """Greedy answer from the trainer's forward on a ClipDataset item (prompt = ids before the answer)."""
    ids = item["ids"]
    start = next(k for k, label in enumerate(ids["labels"]) if label != -100)
    tokens = list(ids["input_ids"][:start])
    frames = torch.from_numpy(item["frames"])[None]
    timestamps = torch.from_numpy(item["timestamps"])[None]
    new = []
    for _ in range(MAX_NEW_TOKENS):
        out = model(frames, timestamps, torch.tensor([tokens]), return_logits=True)
        nxt = int(out["logits"][0, -1].argmax())
        tokens.append(nxt)
        new.append(nxt)
        if nxt == model.ids.eos:
            break
    return model.tokenizer.decode(new, skip_special_tokens=True).strip(), item["frames"]


@pytest.mark.slow
def test_trained_student_answers_alike_in_training_and_in_p4d_eval(train_cache, tmp_path):
    from p4d.cache_schema import open_store
    from p4d.train import checkpoint as ckpt
    from p4d.train.data import build_samples
    from p4d.train.loader import ClipDataset
    from p4d.train.trainer import main

    items = _items(train_cache.videos)
    conversations = write_jsonl(train_cache.root / "parity.jsonl", _records(items))
    cfg = small_config(train_cache, tmp_path / "run", conversations, optim={"max_steps": 6},
                       checkpoint={"export": True, "export_dtype": "fp32"}, recipe={"time_cue": "prompt"})
    result = main(cfg)
    model, _ = ckpt.load_checkpoint_model(result.checkpoint)
    model.eval()
    store = open_store(train_cache.store)
    samples, _ = build_samples(str(conversations), store)
    dataset = ClipDataset(samples, store, student=model.cfg, tokenizer=model.tokenizer)
    trained = {}
    for k, s in enumerate(samples):
        trained[s.record_id] = _trainer_greedy(model, dataset[(k, 0)])
    assert sorted(trained) == [it["id"] for it in items]

    from p4d.eval.run import item_visuals, load_student
    from p4d.eval.items import load_bench

    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(items))
    answerer = load_student(result.export, device="cpu")
    for item in load_bench(bench).items:  # the eval sees the trainer's frames (precondition of the comparison)
        frames, timestamps, _, _ = item_visuals(item, 16, "p4d")
        frames_t, ts, _, _ = answerer._request(frames, timestamps, item.question, item.options)
        assert np.array_equal(frames_t[0].numpy(), trained[item.id][1]), item.id
    for size in (1, 3):
        out = tmp_path / f"pred{size}.jsonl"
        run_eval(EvalConfig(bench=bench, out=out, model_dir=result.export, frames=16, batch_size=size, device="cpu",
                            protocol="p4d", progress=False))
        _, records = read_predictions(out)
        assert {k: r["raw"] for k, r in records.items()} == {k: text for k, (text, _) in trained.items()}, size
