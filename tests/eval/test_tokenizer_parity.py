"""One tokenizer from training to export to ``p4d eval``: the prompt ids the exported student reads
through ``p4d eval`` (``p4d.eval.run.load_student`` -> ``StudentAnswerer``) equal the ids the trainer
builds (``encode_chat`` with the model's training tokenizer, as ``p4d.train.loader`` does), on a fixed
set of prompts: digits after spaces, options, ``<obj_N>``, media tokens, left padding in a batch.

Before the fix ``load_tokenizer`` went through ``AutoTokenizer``, which picked ``Qwen2Tokenizer`` from
``llm/config.json`` and replaced the saved pre-tokenizer: " 1" (one token in training) became " ", "1".
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from p4d.eval.prompt import format_prompt
from p4d.train.model import encode_chat, pad_batch

PROMPTS = (
    "How long is the video?\nA. 1.5 seconds\nB. 12 seconds\nC. 0.5 s\nD. 100 s",
    "The car moved 3 m in 2 s, then 10 m. How fast is it? Answer with a single number.",
    "Is <obj_1> left of <obj_12>? A. yes B. no",
    "Compare <image> with <vila/video> and <vila/sentinel>: [1] or [2]?",
    format_prompt("How far did <obj_1> move between 0.5 s and 2 s?", [0.5, 1, "2 m", None], som=True),
    format_prompt("Which way does the camera turn?", ["left 90 degrees", "right 45 degrees"], style="p4d"),
)
ANSWERS = ("A. 1.5 seconds", " 1", "12.3", "B")
FRAMES = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
TIMES = np.array([0.0, 1.5, 3.0])
SOM = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)


def _trainer_ids(tokenizer, cfg, prompt: str, images: int) -> list[int]:
    """The trainer's encoding (p4d.train.loader: encode_chat with the training tokenizer) of one
    prompt over len(FRAMES) frames after ``images`` images at the first frame's time."""
    times = [float(TIMES[0])] * images + TIMES.tolist()
    return encode_chat(tokenizer, cfg, [(prompt, None)], num_frames=len(times), timestamps=times)["input_ids"]


def _requests():
    return [dict(frames=FRAMES, timestamps=TIMES, question_text="", prompt=p, images=[SOM] if "set-of-mark" in p else [])
            for p in PROMPTS]


@pytest.fixture(scope="module")
def trained_and_exported(tmp_path_factory):
    """The trainer's tiny student (tpe='prompt': the duration/fps sentence adds digits after spaces)
    and the same student loaded back through p4d eval's loader."""
    from p4d.eval.run import load_student
    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    torch.manual_seed(0)
    model = build_student(TINY.replace(strategy="4d-sft", tpe="prompt"), training_modules=False)
    path = export_student(model, tmp_path_factory.mktemp("tok") / "export")
    return model, load_student(path, device="cpu")


def test_exported_student_reads_the_training_ids(trained_and_exported):
    model, answerer = trained_and_exported
    loaded = answerer.model
    assert loaded.ids == model.ids
    for request in _requests():
        eval_ids = answerer._request(**request)[2]["input_ids"]
        assert eval_ids == _trainer_ids(model.tokenizer, model.cfg, request["prompt"], len(request["images"])), \
            request["prompt"]
    for text in (*PROMPTS, *ANSWERS):
        assert loaded.tokenizer.encode(text, add_special_tokens=False) == model.tokenizer.encode(
            text, add_special_tokens=False), text
    assert model.tokenizer.encode(" 1", add_special_tokens=False) == [model.tokenizer.convert_tokens_to_ids("Ġ1")]


def test_left_padded_batch_is_the_trainer_padding(trained_and_exported, monkeypatch):
    """answer_batch's generate call gets the trainer's ids, left-padded with the trainer's pad id."""
    model, answerer = trained_and_exported
    seen = []

    def record(frames, timestamps, input_ids, attention_mask, **kwargs):
        seen.append((frames.shape[1], input_ids.clone(), attention_mask.clone()))
        return torch.full((input_ids.shape[0], 1), model.ids.eos)

    monkeypatch.setattr(answerer.model, "generate", record)
    requests = _requests()
    answerer.answer_batch(requests)
    by_blocks: dict[int, list] = {}
    for r in requests:
        by_blocks.setdefault(len(FRAMES) + len(r["images"]), []).append(
            {"input_ids": _trainer_ids(model.tokenizer, model.cfg, r["prompt"], len(r["images"]))})
    assert sorted(v for v, _, _ in seen) == sorted(by_blocks)
    for blocks, input_ids, mask in seen:
        want = pad_batch(by_blocks[blocks], pad_id=model.ids.pad, side="left")
        assert torch.equal(input_ids, want["input_ids"]) and torch.equal(mask, want["attention_mask"])
    assert any(ids.shape[0] > 1 and (mask[:, 0] == 0).any() for _, ids, mask in seen)  # padding was exercised


@pytest.mark.parametrize("preset", ["tiny", "nvila-lite-2b", "nvila-lite-8b"])
def test_each_preset_tokenizer_survives_the_export(preset, tmp_path):
    """Every preset whose tokenizer builds offline (all of them without --model.init-from: the trainer's
    build_student gives the in-code tokenizer): the tokenizer written as export_student writes it and
    read as load_exported_student reads it encodes each prompt to the trainer's ids (the NVILA presets'
    11×11 video blocks included). Built on the meta device: no weights, only config and tokenizer."""
    from p4d.train.export import StudentAnswerer
    from p4d.train.model import build_student, load_tokenizer, save_tokenizer

    model = build_student(preset, device="meta", training_modules=False, init_weights=False)
    llm = tmp_path / "llm"
    model.llm.config.save_pretrained(str(llm))  # as export_student: config.json (model_type qwen2) beside it
    fingerprint = save_tokenizer(model.tokenizer, llm)
    loaded = load_tokenizer(llm, fingerprint=fingerprint)
    answerer = StudentAnswerer(SimpleNamespace(cfg=model.cfg, tokenizer=loaded))
    for request in _requests()[:4]:  # no SoM image: 448-px frames are built per visual block
        assert answerer._request(**request)[2]["input_ids"] == _trainer_ids(model.tokenizer, model.cfg,
                                                                           request["prompt"], 0), request["prompt"]


def test_a_different_tokenizer_in_the_export_is_refused(tmp_path):
    from p4d.errors import CheckpointError
    from p4d.train.model import build_tiny_tokenizer, load_tokenizer, save_tokenizer

    fingerprint = save_tokenizer(build_tiny_tokenizer(), tmp_path)
    assert load_tokenizer(tmp_path, fingerprint=fingerprint).encode(" 1") == build_tiny_tokenizer().encode(" 1")
    save_tokenizer(build_tiny_tokenizer(vocab_size=280), tmp_path)  # another tokenizer under the same name
    with pytest.raises(CheckpointError, match="tokenizer.json: the loaded tokenizer"):
        load_tokenizer(tmp_path, fingerprint=fingerprint)
