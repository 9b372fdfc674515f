"""R4D-Bench as shipped: a hand-written miniature of the released folder (real H.264 files, SoM PNGs,
a test.json with the mixed types) read as-is, evaluated with the random baseline, a scripted model
and the tiny exported student; tables computed by hand."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from p4d.eval.cli import eval_app
from p4d.eval.predictions import read_predictions
from p4d.eval.r4d import load_r4d
from p4d.eval.run import EvalConfig, run_eval
from p4d.video import read_frame_code, write_synthetic_video

# Items: (id, benchmark, video stem, task, options, answer, expected letter)
ITEMS = [
    (1, "stibench", "a", "3D Video Grounding", ["left", "right", "up", "down"], "right", "B"),
    ("s2", "stibench", "b", "Dimensional Measurement", [0, 1, 2, None], 0, "A"),      # answer is the int 0
    ("v3", "vlm4d", "c", "Counting", [1, "1.5", 2, 3], 2, "C"),                      # 2, not "2" or index 2
    ("v4", "vlm4d", "d", "False Positives", ["yes", "no"], "no", "B"),               # its video is corrupt
    ("s5", "stibench", "e", "Speed & Acceleration", [None, "fast", "slow"], "slow", "C"),  # stibench, dynamic
]


def _som_png(path: Path, seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return rgb


@pytest.fixture(scope="module")
def r4d(tmp_path_factory) -> Path:
    """R4D-Bench/{test.json, videos/, clipped/, images/} as released, in miniature."""
    root = tmp_path_factory.mktemp("r4d") / "R4D-Bench"
    records = []
    for k, (item_id, bench, stem, task, options, answer, _) in enumerate(ITEMS):
        full = root / "videos" / bench / f"{stem}.mp4"
        clipped = root / "clipped" / bench / f"{stem}.mp4"
        full.parent.mkdir(parents=True, exist_ok=True)
        clipped.parent.mkdir(parents=True, exist_ok=True)
        if stem == "d":
            clipped.write_bytes(b"not a video" * 50)  # corrupt clipped video, no full video
        else:
            write_synthetic_video(full, num_frames=30, fps=10, size=(64, 48), seed=k)
            if stem != "b":  # b: no clipped file, the item falls back to its source
                write_synthetic_video(clipped, num_frames=20, fps=10, size=(64, 48), seed=k + 10)
        _som_png(root / "images" / bench / f"{item_id}.png", k)
        records.append({"id": item_id, "video": f"clipped/{bench}/{stem}.mp4", "source": f"videos/{bench}/{stem}.mp4",
                        "som_image": f"images/{bench}/{item_id}.png", "question": f"Question {item_id} about <obj_1>?",
                        "question_raw": f"Question {item_id} about the car?", "options": options, "answer": answer,
                        "task": task, "benchmark": bench})
    records.append({"id": "bad", "video": "clipped/vlm4d/c.mp4", "question": "Q?", "options": [1, 2], "answer": 3,
                    "task": "Counting", "benchmark": "vlm4d"})
    (root / "test.json").write_text(json.dumps(records))
    return root


def test_folder_is_read_as_shipped(r4d):
    bench = load_r4d(r4d)
    assert [i.id for i in bench.items] == ["1", "s2", "v3", "v4", "s5"]
    assert [(p.id, p.reason) for p in bench.problems] == [("bad", "answer 3 is not among the options [1, 2]")]
    by_id = {i.id: i for i in bench.items}
    assert [by_id[str(i[0])].answer for i in ITEMS] == [i[6] for i in ITEMS]
    assert by_id["s2"].options == ("0", "1", "2", "None") and by_id["s2"].answer_value == 0
    assert by_id["s2"].video == r4d / "videos/stibench/b.mp4"      # clipped missing: the source video
    assert by_id["1"].video == r4d / "clipped/stibench/a.mp4" and by_id["1"].fallback_video == r4d / "videos/stibench/a.mp4"
    assert by_id["1"].som_image == r4d / "images/stibench/1.png"
    # Sta/Dyn by category: s5 comes from stibench but SA is dynamic
    assert [(by_id[k].category, by_id[k].split) for k in ("1", "s2", "v3", "v4", "s5")] == [
        ("VG", "static"), ("DM", "static"), ("C", "dynamic"), ("FP", "dynamic"), ("SA", "dynamic")]


def test_random_baseline_table_by_hand(r4d, tmp_path):
    s = run_eval(EvalConfig(bench=r4d, out=tmp_path / "r.jsonl", baseline="random", progress=False)).summary
    # expectations 1/4, 1/4 | 1/4, 1/2, 1/3
    assert s.column("Sta").accuracy == pytest.approx(25.0)
    assert s.column("Dyn").accuracy == pytest.approx(100 * (0.25 + 0.5 + 1 / 3) / 3)
    assert s.column("Avg").accuracy == pytest.approx(100 * (0.25 + 0.25 + 0.25 + 0.5 + 1 / 3) / 5)
    assert (s.column("FP").count, s.column("SA").accuracy) == (1, pytest.approx(100 / 3))


class Scripted:
    """Answers by question; records the prompt, the images and the frames it was given."""

    ANSWERS = {"1": "The best answer is (B).", "s2": "Answer: A", "v3": "I think 2", "s5": "C"}

    def __init__(self):
        self.calls = {}

    def answer(self, frames, timestamps, question_text, options, prompt=None, images=()):
        item_id = question_text.split()[1]
        self.calls[item_id] = (frames, prompt, list(images))
        return self.ANSWERS[item_id]


def _letter(seed: int, item_id: str, n: int) -> str:
    """The documented draw for an unparsed answer: random.Random("r4d:SEED:ID").choice(letters)."""
    return random.Random(f"r4d:{seed}:{item_id}").choice("ABCD"[:n])


def test_scripted_model_release_protocol_table_by_hand(r4d, tmp_path):
    model = Scripted()
    result = run_eval(EvalConfig(bench=r4d, out=tmp_path / "p.jsonl", model_dir=tmp_path, frames=4, seed=3,
                                 progress=False), model=model)
    # visual input [SoM image, video]: the PNG as written, then 4 frames of the clipped video
    frames, prompt, images = model.calls["1"]
    assert len(images) == 1 and np.array_equal(images[0], np.asarray(Image.open(r4d / "images/stibench/1.png")))
    assert [read_frame_code(f) for f in frames] == [0, 6, 13, 19]  # the 20-frame clipped file
    assert prompt == ("The first image is a set-of-mark annotation of a key frame from the video, with bounding boxes "
                      "labeled <obj_1>, <obj_2>, etc.\nQuestion 1 about <obj_1>?\nOptions:\n(A) left\n(B) right\n"
                      "(C) up\n(D) down\nAnswer with only the letter of the correct option.")
    assert [read_frame_code(f) for f in model.calls["s2"][0]][-1] == 29  # the 30-frame source video
    assert "v4" not in model.calls  # unreadable: never reaches the model, still scored
    # scores: 1: B right; s2: A right (the int 0); v3 unparsed -> random letter vs C;
    # v4 unreadable -> random letter vs B; s5: C right
    v3 = float(_letter(3, "v3", 4) == "C")
    v4 = float(_letter(3, "v4", 2) == "B")
    s = result.summary
    assert s.column("Avg").count == 5  # nothing dropped from the denominator
    assert s.column("Sta").accuracy == pytest.approx(100.0)
    assert s.column("Dyn").accuracy == pytest.approx(100 * (v3 + v4 + 1) / 3)
    assert s.column("Avg").accuracy == pytest.approx(100 * (3 + v3 + v4) / 5)
    assert result.unparsed == 2 and [p.id for p in result.unreadable] == ["v4"]
    assert "clipped/vlm4d/d.mp4" in result.unreadable[0].reason
    _, records = read_predictions(tmp_path / "p.jsonl")
    assert records["v3"]["parsed"] == _letter(3, "v3", 4) and records["v3"]["unparsed"]
    assert records["s2"]["parsed"] == "A" and not records["s2"]["unparsed"]


def test_cli_runs_on_the_folder_as_is(r4d, tmp_path):
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    app.command("other")(lambda: None)
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(app, ["eval", "run", str(r4d), "--baseline", "random", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| Method | # Frames | Avg | Sta | Dyn | VG | DM | SR | R | C | T | FP | SA | DP |" in result.output.splitlines()
    assert "| Random | 16 | 31.7 | 25.0 | 36.1 | 25.0 | 25.0 | – | – | 25.0 | – | 50.0 | 33.3 | – |" in result.output
    assert "skipped bad: answer 3 is not among the options" in result.output


def test_tiny_exported_student_end_to_end(r4d, tmp_path):
    import torch

    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    torch.manual_seed(0)
    export_student(build_student(TINY.replace(strategy="4d-sft")), tmp_path / "export")
    result = run_eval(EvalConfig(bench=r4d, out=tmp_path / "s.jsonl", model_dir=tmp_path / "export", frames=4,
                                 progress=False))
    _, records = read_predictions(tmp_path / "s.jsonl")
    assert set(records) == {"1", "s2", "v3", "v4", "s5"} and result.summary.column("Avg").count == 5
    letters = {"1": "ABCD", "s2": "ABCD", "v3": "ABCD", "v4": "AB", "s5": "ABC"}
    for item_id, r in records.items():
        assert r["parsed"] in letters[item_id] and r["score"] in (0.0, 1.0)
        assert isinstance(r["raw"], str) or item_id == "v4"
    assert result.unparsed == sum(r["unparsed"] for r in records.values()) >= 1  # v4 at least
    total = sum(r["score"] for r in records.values())
    assert result.summary.column("Avg").accuracy == pytest.approx(100 * total / 5)
