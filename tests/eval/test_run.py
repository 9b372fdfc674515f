"""The eval loop on real H.264 files: frames + timestamps + SoM marks reach the model, scores and
predictions are written, a killed eval resumes, students needing a cache are refused without one."""

from __future__ import annotations

import json

import numpy as np
import pytest

import p4d.train
from p4d.errors import CacheNotFoundError, ConfigError
from p4d.eval.predictions import read_predictions
from p4d.eval.run import EvalConfig, run_eval
from p4d.video import read_frame_code, sample_clip

from .conftest import FPS

BOX = (20, 24, 70, 60)  # x0, y0, x1, y1: below the frame-code strip (top 16 rows)


class Recorder:
    """A model that answers from a script and records what it was given."""

    def __init__(self, answers: dict[str, str], stop_after: int | None = None):
        self.answers, self.stop_after, self.calls = answers, stop_after, []

    def answer(self, frames, timestamps, question_text, options):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt  # the eval is killed here
        self.calls.append((frames, timestamps, question_text, list(options)))
        return self.answers[question_text]


@pytest.fixture
def bench(tmp_path, video, write_bench):
    items = [
        {"id": "vg", "video": str(video), "question": "Which box holds <obj_1>?", "options": ["w", "x", "y", "z", "v"],
         "answer": "B", "category": "VG", "regions": [{"label": "obj_1", "box": list(BOX)}]},
        {"id": "c", "video": str(video), "question": "How many?", "options": ["1", "2", "3", "4"], "answer": "3",
         "category": "C"},
        {"id": "dp", "video": str(video), "question": "How far?", "answer": 10, "category": "DP"},
        {"id": "t", "video": str(video), "question": "Which way?", "options": ["l", "r", "u", "d"], "answer": "A",
         "category": "T"},
        {"id": "broken", "video": str(video), "question": "?", "options": ["1", "2"], "category": "T"},  # no answer
    ]
    return write_bench(tmp_path / "bench.json", items)


ANSWERS = {"Which box holds <obj_1>?": "The answer is (B).", "How many?": "3", "How far?": "about 12 m",
           "Which way?": "B"}  # scores 1, 1, MRA 0.6, 0


def test_model_gets_frames_timestamps_and_marks_and_is_scored(tmp_path, bench, video):
    model = Recorder(ANSWERS)
    result = run_eval(EvalConfig(bench=bench, out=tmp_path / "p.jsonl", model_dir=tmp_path, frames=4,
                                 attn="sdpa", dtype="bfloat16", progress=False, protocol="p4d"), model=model)
    assert [p.id for p in result.problems] == ["broken"]
    assert result.predicted == 4 and result.resumed == 0
    frames, timestamps, question, options = model.calls[0]
    assert frames.shape == (4, 64, 96, 3) and frames.dtype == np.uint8
    assert question == "Which box holds <obj_1>?" and options == ["w", "x", "y", "z", "v"]
    # truth from the pixels: uniform indices round(linspace(0, 23, 4)) = 0, 8, 15, 23, at i / 12 s
    index = [read_frame_code(f) for f in frames]
    assert index == [0, 8, 15, 23]
    np.testing.assert_allclose(timestamps, np.array(index) / FPS, atol=1e-6)
    # SoM marks: frame 0 changed inside the box only; later frames untouched
    plain = sample_clip(video, num_frames=4).frames
    changed = np.any(frames[0] != plain[0], axis=2)
    x0, y0, x1, y1 = BOX
    assert changed[y0:y1, x0:x1].any() and not _outside(changed, BOX).any()
    assert np.array_equal(frames[1:], plain[1:])
    assert np.array_equal(model.calls[1][0][0], plain[0])  # an item without regions gets no marks

    s = result.summary
    assert s.column("Avg").count == 4 and s.column("Avg").accuracy == pytest.approx(100 * 2.6 / 4)
    assert s.column("Sta").accuracy == pytest.approx(100.0) and s.column("Dyn").accuracy == pytest.approx(100 * 1.6 / 3)
    header, records = read_predictions(tmp_path / "p.jsonl")
    assert (header["attn"], header["dtype"], header["frames"]) == ("sdpa", "bfloat16", 4)
    assert records["dp"]["parsed"] == 12.0 and records["dp"]["score"] == pytest.approx(0.6)
    assert records["vg"]["frame_index"] == [0, 8, 15, 23]


def _outside(mask, box):
    x0, y0, x1, y1 = box
    out = mask.copy()
    out[y0:y1, x0:x1] = False
    return out


def test_killed_eval_resumes_from_the_predictions_file(tmp_path, bench):
    out = tmp_path / "p.jsonl"
    config = EvalConfig(bench=bench, out=out, model_dir=tmp_path, frames=2, progress=False, protocol="p4d")
    with pytest.raises(KeyboardInterrupt):
        run_eval(config, model=Recorder(ANSWERS, stop_after=2))
    assert len(read_predictions(out)[1]) == 2
    with out.open("ab") as f:
        f.write(b'{"id": "t", "type": "predic')  # a write torn by the kill
    second = Recorder(ANSWERS)
    result = run_eval(config, model=second)
    assert [c[2] for c in second.calls] == ["How far?", "Which way?"]  # only the items not yet predicted
    assert (result.predicted, result.resumed) == (2, 2)
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line) for line in lines)  # header + 4, torn line gone
    fresh = run_eval(EvalConfig(bench=bench, out=tmp_path / "fresh.jsonl", model_dir=tmp_path, frames=2,
                                progress=False, protocol="p4d"), model=Recorder(ANSWERS))
    assert {k: (c.count, c.total) for k, c in result.summary.columns.items()} == \
        {k: (c.count, c.total) for k, c in fresh.summary.columns.items()}
    # a finished run resumes to nothing, and does not need the model
    again = run_eval(config, model=None)
    assert (again.predicted, again.resumed) == (0, 4)


def test_resuming_with_other_settings_is_refused(tmp_path, bench):
    out = tmp_path / "p.jsonl"
    run_eval(EvalConfig(bench=bench, out=out, baseline="random", progress=False))
    with pytest.raises(ConfigError, match=r"--out .*p.jsonl: holds predictions of another run \(frames: 16 -> 8\)"):
        run_eval(EvalConfig(bench=bench, out=out, baseline="random", frames=8, progress=False))


def test_baselines_need_no_model(tmp_path, bench):
    random = run_eval(EvalConfig(bench=bench, out=tmp_path / "r.jsonl", baseline="random", progress=False)).summary
    # exact expectation: VG 1/5; C 1/4; DP numeric 0; T 1/4
    assert random.column("Sta").accuracy == pytest.approx(20.0)
    assert random.column("Dyn").accuracy == pytest.approx(100 * 0.5 / 3)
    assert random.column("Avg").accuracy == pytest.approx(100 * 0.7 / 4)
    first = run_eval(EvalConfig(bench=bench, out=tmp_path / "f.jsonl", baseline="first-option", progress=False)).summary
    assert first.column("Avg").accuracy == pytest.approx(25.0)  # only "t" has answer A
    with pytest.raises(ConfigError, match="--baseline 'oracle'"):
        EvalConfig(bench=bench, out=tmp_path / "x.jsonl", baseline="oracle")
    with pytest.raises(ConfigError, match="exactly one of --model DIR or --baseline"):
        EvalConfig(bench=bench, out=tmp_path / "x.jsonl")


def test_undecodable_video_is_reported_by_id_and_the_rest_run(tmp_path, video, write_bench):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    items = [{"id": "good", "video": str(video), "question": "How many?", "options": ["1", "2", "3", "4"],
              "answer": "C", "category": "C"},
             {"id": "bad", "video": str(broken), "question": "How many?", "options": ["1", "2", "3", "4"],
              "answer": "C", "category": "C"}]
    result = run_eval(EvalConfig(bench=write_bench(tmp_path / "b.json", items), out=tmp_path / "p.jsonl",
                                 model_dir=tmp_path, frames=2, progress=False, protocol="p4d"), model=Recorder(ANSWERS))
    assert [p.id for p in result.problems] == ["bad"] and "broken.mp4" in result.problems[0].reason
    assert result.summary.column("Avg").count == 1 and result.summary.column("Avg").accuracy == 100.0


def test_cache_strategies_are_refused_without_a_cache(tmp_path, bench, monkeypatch):
    model_dir = tmp_path / "student"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"strategy": "4d-concat", "loss": "ld+ed"}))
    with pytest.raises(ConfigError, match=r"--cache: the student in .*student was trained with strategy '4d-concat'"):
        run_eval(EvalConfig(bench=bench, out=tmp_path / "p.jsonl", model_dir=model_dir, progress=False))
    with pytest.raises(CacheNotFoundError, match="--cache .*nope.zarr"):
        run_eval(EvalConfig(bench=bench, out=tmp_path / "p.jsonl", model_dir=model_dir, cache=str(tmp_path / "nope.zarr"),
                            progress=False))
    store = tmp_path / "store.zarr"
    store.mkdir()
    seen = {}

    def fake_loader(path, *, cache=None, attn=None, dtype=None, device=None):
        seen.update(path=path, cache=cache, attn=attn, dtype=dtype, device=device)
        return Recorder(ANSWERS)

    monkeypatch.setattr(p4d.train, "load_exported_student", fake_loader, raising=False)
    result = run_eval(EvalConfig(bench=bench, out=tmp_path / "p.jsonl", model_dir=model_dir, cache=str(store),
                                 attn="sdpa", frames=2, device="cpu", progress=False))
    assert seen == {"path": model_dir, "cache": str(store), "attn": "sdpa", "dtype": "float32", "device": "cpu"}
    header, _ = read_predictions(result.predictions)
    assert header["preset"] == {"strategy": "4d-concat", "loss": "ld+ed", "time_cue": None, "trainable": None}
