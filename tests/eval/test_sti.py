"""STI-Bench as shipped: a miniature qa.parquet (the released columns, Candidates as JSON text) and real
H.264 files, read as-is; the official prompt written out by hand; the official parser's table; frames
from the time window; strict and matched scores per task computed by hand."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from p4d.eval.cli import eval_app
from p4d.eval.parse import parse_sti_letter
from p4d.eval.predictions import read_predictions
from p4d.eval.run import EvalConfig, item_prompt, run_eval
from p4d.eval.sti import load_sti, sample_window, window_indices
from p4d.video import read_frame_code, write_synthetic_video

FIVE = {"A": "1 m", "B": "2 m", "C": "3 m", "D": "4 m", "E": "5 m"}
ROWS = [  # Video, ID, Question, Candidates, Answer, Task, time_start, time_end, Scene
    ("scene0001.mp4", 1, "Q1: how far did the chair move?", FIVE, "B", "Displacement & Path Length", 0.5, 2.0, "indoor"),
    ("scene0001.mp4", 2, "Q2: how tall is the lamp?", {"A": "0.5 m", "B": "1.5 m", "C": "2.5 m"}, "C",
     "Dimensional Measurement", 0, 3, "indoor"),
    ("camera_7.mp4", 3, "Q3: which way does the car turn?", {"A": "left", "B": "right", "C": "straight"}, "A",
     "Trajectory Description", 1.0, 1.5, "outdoor"),
    ("camera_7.mp4", 4, "Q4: how fast is the car?", FIVE, "E", "Speed & Acceleration", 0.0, 2.9, "outdoor"),
    ("camera_7.mp4", 5, "Q5: broken row", FIVE, "F", "Speed & Acceleration", 0.0, 1.0, "outdoor"),  # F: no candidate
]
PROMPT_Q1 = ("From 0.5 s to 2.0 s. Q1: how far did the chair move?\n(A) 1 m\n(B) 2 m\n(C) 3 m\n(D) 4 m\n(E) 5 m\n"
             "Please output only the option letter!")
# the time columns are doubles in the parquet (0 and 3 written as 0.0 and 3.0), printed as Python prints them
PROMPT_Q2 = "From 0.0 s to 3.0 s. Q2: how tall is the lamp?\n(A) 0.5 m\n(B) 1.5 m\n(C) 2.5 m\nPlease output only the option letter!"


@pytest.fixture(scope="module")
def sti(tmp_path_factory):
    """STI-Bench/{qa.parquet, video/}: 30-frame 10 fps videos (frame i at i / 10 s)."""
    root = tmp_path_factory.mktemp("sti") / "STI-Bench"
    (root / "video").mkdir(parents=True)
    for k, name in enumerate(("scene0001.mp4", "camera_7.mp4")):
        write_synthetic_video(root / "video" / name, num_frames=30, fps=10, size=(64, 48), seed=k)
    frame = pd.DataFrame([dict(zip(("Video", "ID", "Question", "Candidates", "Answer", "Task", "time_start", "time_end",
                                    "Scene"), (v, i, q, json.dumps(c), a, t, ts, te, s)))
                          for v, i, q, c, a, t, ts, te, s in ROWS])
    frame.to_parquet(root / "qa.parquet")
    return root


def test_qa_parquet_is_read_as_shipped(sti):
    bench = load_sti(sti)
    assert [i.id for i in bench.items] == ["1", "2", "3", "4"]
    assert [(p.id, p.reason) for p in bench.problems] == [("5", "Answer 'F' is not among the Candidates' letters ABCDE")]
    one, two = bench.items[:2]
    assert one.options == ("1 m", "2 m", "3 m", "4 m", "5 m") and one.answer == "B" and one.window == (0.5, 2.0)
    assert (one.task, one.benchmark, one.video) == ("Displacement & Path Length", "indoor", sti / "video/scene0001.mp4")
    assert item_prompt(one, "release", som=False) == PROMPT_Q1  # the official prompt, byte for byte
    assert item_prompt(two, "release", som=False) == PROMPT_Q2


# STI-Bench's official cascade (case-insensitive): (X), Ans=, Answer:/=, Option X, "X is/was correct",
# a letter with "." or ")" ending a line; else the answer's last character when it is one of ABCDE.
STI = [
    ("B", "B"),                          # no pattern; last character
    ("(b)", "B"),                        # case-insensitive, upper-cased
    ("Ans='C'", "C"),
    ("answer: d", "D"),
    ("Answer = b", "B"),
    ("option e", "E"),
    ("B is correct", "B"),
    ("I think a was correct", "A"),
    ("The answer is C.", "C"),
    ("the answer is a.", "A"),
    ("Definitely E)", "E"),
    ("I think it is A", "A"),            # last character
    ("c", None),                         # last character must be a capital
    ("2 m", None),
    ("(F)", None),
    ("a) is wrong, so", None),
    ("", None),
    (None, None),
    ("(A) 1 m", "A"),
    ("Option_B", "B"),                   # no pattern ("_" is no space); the last character reads it
]


@pytest.mark.parametrize("text, expected", STI)
def test_sti_official_parser(text, expected):
    assert parse_sti_letter(text) == expected


def test_frames_come_from_the_time_window(sti):
    clip = sample_window(sti / "video/scene0001.mp4", 4, (0.5, 2.0))
    assert [read_frame_code(f) for f in clip.frames] == [5, 10, 15, 20]
    np.testing.assert_allclose(clip.timestamp, [0.5, 1.0, 1.5, 2.0], atol=1e-3)
    assert list(window_indices(30, 10.0, (1.0, 1.5), 3)) == [10, 12, 15]  # linspace(10, 15, 3) rounded
    assert list(window_indices(30, 10.0, (2.5, 9.0), 2)) == [25, 29]  # cut at the video's end


class Scripted:
    ANSWERS = {"Q1:": "(B)", "Q2:": "2.5 m", "Q3:": "I would say left", "Q4:": "D"}

    def __init__(self):
        self.calls = {}

    def answer(self, frames, timestamps, question_text, options, prompt=None):
        key = question_text.split()[0]
        self.calls[key] = (timestamps, prompt)
        return self.ANSWERS[key]


def test_strict_and_matched_per_task_by_hand(sti, tmp_path):
    model = Scripted()
    out = tmp_path / "p.jsonl"
    result = run_eval(EvalConfig(bench=sti, out=out, model_dir=tmp_path, frames=4, progress=False), model=model)
    assert model.calls["Q1:"][1] == PROMPT_Q1
    assert np.all((model.calls["Q3:"][0] >= 1.0 - 1e-3) & (model.calls["Q3:"][0] <= 1.5 + 1e-3))
    # Q1 (B) right; Q2 "2.5 m": no letter -> strict 0, matched C right; Q3 "left": strict 0 (last character
    # "t"), matched A right; Q4 "D": wrong (E)
    _, records = read_predictions(out)
    assert [(records[k]["score"], records[k]["score_matched"], records[k]["rule"]) for k in "1234"] == [
        (1.0, 1.0, "parser"), (0.0, 1.0, "value"), (0.0, 1.0, "value"), (0.0, 0.0, "parser")]
    assert records["2"]["parsed"] is None and records["2"]["matched"] == "C"
    assert result.rules == {"parser": 2, "value": 2, "random": 0, "none": 0}
    header = read_predictions(out)[0]
    assert header["bench_sha256"] == hashlib.sha256((sti / "qa.parquet").read_bytes()).hexdigest()


def test_cli_prints_strict_and_matched_tables_and_the_official_report(sti, tmp_path):
    res = CliRunner().invoke(eval_app, ["run", str(sti), "--baseline", "first-option", "--out", str(tmp_path / "f.jsonl"),
                                        "--no-progress"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    # first option "A": right on Q3 only (Trajectory Description); most frequent letter: B, C, A, E once each -> A
    assert ("| Method | # Frames | Decided | Overall | Dimensional Measurement | Displacement & Path Length | "
            "Speed & Acceleration | Trajectory Description |") in lines
    assert "| First option (strict) | 16 | 4 parser | 25.0 | 0.0 | 0.0 | 0.0 | 100.0 |" in lines
    assert "| First option (matched) | 16 | 4 parser | 25.0 | 0.0 | 0.0 | 0.0 | 100.0 |" in lines
    assert "| Most frequent letter (A) | 16 |  | 25.0 | 0.0 | 0.0 | 0.0 | 100.0 |" in lines
    report = res.output[res.output.index("=== First option, strict (official parser) ==="):]
    assert report.splitlines()[1:8] == ["Total samples: 4", "Overall accuracy: 25.00%", "", "Accuracy by task:",
                                        "  Trajectory Description: 100.00%", "  Dimensional Measurement: 0.00%",
                                        "  Displacement & Path Length: 0.00%"]
    assert report.splitlines()[9:13] == ["", "Accuracy by scene:", "  outdoor: 50.00%", "  indoor: 0.00%"]
    assert f"items file sha256: {hashlib.sha256((sti / 'qa.parquet').read_bytes()).hexdigest()}" in lines
