"""R4D-Bench as shipped: a hand-written miniature of the released folder (real H.264 files, SoM PNGs,
a test.json with the mixed types) read as-is, evaluated with the random baseline, a scripted model
and the tiny exported student; tables computed by hand."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
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
    ("v6", "vlm4d", "f", "Rotational", ["left", "right"], "left", "A"),  # no question (question_raw), SoM file missing
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
        if stem != "f":
            _som_png(root / "images" / bench / f"{item_id}.png", k)
        records.append({"id": item_id, "video": f"clipped/{bench}/{stem}.mp4", "source": f"videos/{bench}/{stem}.mp4",
                        "som_image": f"images/{bench}/{item_id}.png",
                        "question": f"Question {item_id} about <obj_1>?" if stem != "f" else "",
                        "question_raw": f"Question {item_id} about the car?", "options": options, "answer": answer,
                        "task": task, "benchmark": bench})
    # an answer among none of the options: kept and scored 0, as the release scores it
    records.append({"id": "bad", "video": "clipped/vlm4d/c.mp4", "question": "Question bad now?", "options": [1, 2],
                    "answer": 3, "task": "Counting", "benchmark": "vlm4d"})
    (root / "test.json").write_text(json.dumps(records))
    return root


# The release's template written out by hand for every miniature item (not produced by p4d's code):
# preamble, question, "Options:" block, instruction, joined by blank lines; None shown as "(D) ".
PREAMBLE = ("The first image is a set-of-mark annotation of a key frame from the video, with bounding boxes labeled "
            "<obj_1>, <obj_2>, etc. References to <obj_N> in the question correspond to those labeled regions.")
INSTRUCTION = "Answer with only the letter of the correct option."
RELEASE_PROMPTS = {
    "1": PREAMBLE + "\n\nQuestion 1 about <obj_1>?\n\nOptions:\n(A) left\n(B) right\n(C) up\n(D) down\n\n" + INSTRUCTION,
    "s2": PREAMBLE + "\n\nQuestion s2 about <obj_1>?\n\nOptions:\n(A) 0\n(B) 1\n(C) 2\n(D) \n\n" + INSTRUCTION,
    "v3": PREAMBLE + "\n\nQuestion v3 about <obj_1>?\n\nOptions:\n(A) 1\n(B) 1.5\n(C) 2\n(D) 3\n\n" + INSTRUCTION,
    "v4": PREAMBLE + "\n\nQuestion v4 about <obj_1>?\n\nOptions:\n(A) yes\n(B) no\n\n" + INSTRUCTION,
    "s5": PREAMBLE + "\n\nQuestion s5 about <obj_1>?\n\nOptions:\n(A) \n(B) fast\n(C) slow\n\n" + INSTRUCTION,
    "v6": PREAMBLE + "\n\nQuestion v6 about the car?\n\nOptions:\n(A) left\n(B) right\n\n" + INSTRUCTION,
    "bad": "Question bad now?\n\nOptions:\n(A) 1\n(B) 2\n\n" + INSTRUCTION,
}
IDS = ["1", "s2", "v3", "v4", "s5", "v6", "bad"]


def test_folder_is_read_as_shipped(r4d):
    bench = load_r4d(r4d)
    assert [i.id for i in bench.items] == IDS and bench.problems == ()
    by_id = {i.id: i for i in bench.items}
    assert [by_id[str(i[0])].answer for i in ITEMS] == [i[6] for i in ITEMS]
    assert by_id["bad"].answer == ""  # 3 is none of [1, 2]: no target letter, scores 0
    assert by_id["s2"].options == ("0", "1", "2", "") and by_id["s2"].answer_value == 0
    assert by_id["v6"].question == "Question v6 about the car?"  # question empty: question_raw
    assert by_id["s2"].video == r4d / "videos/stibench/b.mp4"      # clipped missing: the source video
    assert by_id["1"].video == r4d / "clipped/stibench/a.mp4" and by_id["1"].fallback_video == r4d / "videos/stibench/a.mp4"
    assert by_id["1"].som_image == r4d / "images/stibench/1.png"
    # Sta/Dyn by category: s5 comes from stibench but SA is dynamic
    assert [(by_id[k].category, by_id[k].split) for k in ("1", "s2", "v3", "v4", "s5")] == [
        ("VG", "static"), ("DM", "static"), ("C", "dynamic"), ("FP", "dynamic"), ("SA", "dynamic")]


def test_release_prompt_equals_the_hand_written_template_for_every_item(r4d):
    from p4d.eval.run import item_prompt

    for item in load_r4d(r4d).items:
        assert item_prompt(item, "release", som=item.som_image is not None) == RELEASE_PROMPTS[item.id], item.id


def test_random_baseline_table_by_hand(r4d, tmp_path):
    s = run_eval(EvalConfig(bench=r4d, out=tmp_path / "r.jsonl", baseline="random", progress=False)).summary
    # expectations 1/4, 1/4 | 1/4, 1/2, 1/3, 1/2, 0 (bad: no target)
    assert s.column("Sta").accuracy == pytest.approx(25.0)
    assert s.column("Dyn").accuracy == pytest.approx(100 * (0.25 + 0.5 + 1 / 3 + 0.5 + 0) / 5)
    assert s.column("Avg").accuracy == pytest.approx(100 * (0.25 * 3 + 0.5 + 1 / 3 + 0.5) / 7)
    assert (s.column("FP").count, s.column("SA").accuracy, s.column("C").accuracy) == (1, pytest.approx(100 / 3), 12.5)


class Scripted:
    """Answers by question; records the prompt, the images and the frames it was given."""

    ANSWERS = {"1": "The best answer is (B).", "s2": "Answer: A", "v3": "I think 2", "s5": "C", "v6": "left",
               "bad": "A"}

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
    for item_id, (_, prompt, _) in model.calls.items():
        assert prompt == RELEASE_PROMPTS[item_id], item_id  # byte for byte
    assert model.calls["v6"][2] == []  # its SoM file is missing: no image, the preamble stays (as released)
    assert [read_frame_code(f) for f in model.calls["s2"][0]][-1] == 29  # the 30-frame source video
    assert "v4" not in model.calls  # unreadable: never reaches the model, still scored
    # strict: 1 B right; s2 A right (the int 0); v3 unparsed -> random letter vs C; v4 unreadable -> random
    # vs B; s5 C right; v6 "left" holds no letter -> random vs A; bad: no target, 0.
    # matched: v3 "I think 2" states option C's value -> C (right); v6 "left" is option A -> right.
    v3, v4, v6 = float(_letter(3, "v3", 4) == "C"), float(_letter(3, "v4", 2) == "B"), float(_letter(3, "v6", 2) == "A")
    s, m = result.summary, result.summary_matched
    assert s.column("Avg").count == 7  # nothing dropped from the denominator
    assert s.column("Sta").accuracy == pytest.approx(100.0)
    assert s.column("Dyn").accuracy == pytest.approx(100 * (v3 + v4 + 1 + v6 + 0) / 5)
    assert s.column("Avg").accuracy == pytest.approx(100 * (3 + v3 + v4 + v6) / 7)
    assert m.column("Avg").accuracy == pytest.approx(100 * (5 + v4) / 7)
    assert result.rules == {"parser": 4, "value": 2, "random": 1, "none": 0}
    assert result.unparsed == 3 and [p.id for p in result.unreadable] == ["v4"]
    assert "clipped/vlm4d/d.mp4" in result.unreadable[0].reason
    _, records = read_predictions(tmp_path / "p.jsonl")
    assert records["v3"]["parsed"] == _letter(3, "v3", 4) and records["v3"]["unparsed"]
    assert (records["v3"]["matched"], records["v3"]["score_matched"], records["v3"]["rule"]) == ("C", 1.0, "value")
    assert records["s2"]["parsed"] == "A" and not records["s2"]["unparsed"] and records["s2"]["rule"] == "parser"


def test_cli_runs_on_the_folder_as_is(r4d, tmp_path):
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    app.command("other")(lambda: None)
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(app, ["eval", "run", str(r4d), "--baseline", "random", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "| Method | # Frames | Decided | Avg | Sta | Dyn | VG | DM | SR | R | C | T | FP | SA | DP |" in lines
    assert "| Random (strict) | 16 | 7 expectation | 29.8 | 25.0 | 31.7 | 25.0 | 25.0 | – | 50.0 | 12.5 | – | 50.0 | 33.3 | – |" in lines
    # answers B, A, C, B, C, A, none: A, B, C twice each -> A (the earliest); right on s2 and v6
    assert "| Most frequent letter (A) | 16 |  | 28.6 | 50.0 | 20.0 | 0.0 | 100.0 | – | 100.0 | 0.0 | – | 0.0 | 0.0 | – |" in lines
    assert f"items file sha256: {hashlib.sha256((r4d / 'test.json').read_bytes()).hexdigest()}" in lines
    assert "no target, scored 0 (as the release scores it) bad: answer 3 is none of the options" in lines
    assert read_predictions(out)[0]["bench_sha256"] == hashlib.sha256((r4d / "test.json").read_bytes()).hexdigest()


def test_tiny_exported_student_end_to_end(r4d, tmp_path):
    import torch

    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    torch.manual_seed(0)
    export_student(build_student(TINY.replace(strategy="4d-sft")), tmp_path / "export")
    result = run_eval(EvalConfig(bench=r4d, out=tmp_path / "s.jsonl", model_dir=tmp_path / "export", frames=4,
                                 progress=False))
    _, records = read_predictions(tmp_path / "s.jsonl")
    assert set(records) == set(IDS) and result.summary.column("Avg").count == 7
    letters = {"1": "ABCD", "s2": "ABCD", "v3": "ABCD", "v4": "AB", "s5": "ABC", "v6": "AB", "bad": "AB"}
    for item_id, r in records.items():
        assert r["parsed"] in letters[item_id] and r["score"] in (0.0, 1.0)
        assert isinstance(r["raw"], str) or item_id == "v4"
    assert result.unparsed == sum(r["unparsed"] for r in records.values()) >= 1  # v4 at least
    total = sum(r["score"] for r in records.values())
    assert result.summary.column("Avg").accuracy == pytest.approx(100 * total / 7)


def test_lmms_eval_task_scores_like_p4d_eval(r4d, tmp_path, monkeypatch):
    """The shipped lmms-eval task: its YAML declares the release's 12 metrics, each aggregated by a
    function that exists; its hooks read R4D_BENCH_ROOT (relative) and test.json with no prepare
    step, give the hand-written prompts, and score like ``p4d eval`` (fractions in [0, 1])."""
    import importlib

    monkeypatch.chdir(r4d.parent)
    monkeypatch.setenv("R4D_BENCH_ROOT", r4d.name)  # relative, as the release reads it
    monkeypatch.setenv("R4D_BENCH_SEED", "3")
    from p4d.eval.lmms_eval_task import r4d_bench_utils

    task = importlib.reload(r4d_bench_utils)  # import-time normalisation of test.json
    spec_file = Path(task.__file__).with_name("r4d_bench.yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    spec = yaml.load(spec_file.read_text(), Loader=Loader)
    assert spec["task"] == "r4d_bench" and spec["output_type"] == "generate_until"
    metrics = [m["metric"] for m in spec["metric_list"]]
    assert metrics[:12] == ["r4d_accuracy", "r4d_static", "r4d_dynamic", "r4d_VG", "r4d_DM", "r4d_SR", "r4d_R", "r4d_C",
                            "r4d_T", "r4d_FP", "r4d_SA", "r4d_DP"]
    hooks = [v[1] for v in (spec["doc_to_visual"], spec["doc_to_text"], spec["doc_to_target"], spec["process_results"],
                            *(m["aggregation"] for m in spec["metric_list"]))]
    assert all(h.startswith("r4d_bench_utils.") and callable(getattr(task, h.split(".")[1])) for h in hooks)
    data_file = Path(spec["dataset_kwargs"]["data_files"]["test"])
    assert data_file == Path("R4D-Bench/.cache/test_normalized.jsonl") and data_file.is_file()

    docs = [json.loads(line) for line in data_file.read_text().splitlines()]
    assert [d["id"] for d in docs] == IDS
    for doc in docs:
        assert task.r4d_doc_to_text(doc) == RELEASE_PROMPTS[doc["id"]], doc["id"]
    assert task.r4d_doc_to_visual(docs[0]) == ["R4D-Bench/images/stibench/1.png", "R4D-Bench/clipped/stibench/a.mp4"]
    assert task.r4d_doc_to_visual(docs[1])[1] == "R4D-Bench/videos/stibench/b.mp4"  # clipped missing: source
    assert task.r4d_doc_to_visual(docs[5]) == ["R4D-Bench/clipped/vlm4d/f.mp4"]  # SoM file missing: video only
    assert [task.r4d_doc_to_target(d) for d in docs] == ["B", "A", "C", "B", "C", "A", ""]
    answers = {**Scripted.ANSWERS, "v4": ""}
    results = [task.r4d_process_results(d, [answers[d["id"]]]) for d in docs]
    records = [r["r4d_accuracy"] for r in results]
    assert all(len(set(map(id, r.values()))) == 1 and set(r) >= set(metrics) for r in results)
    v3, v4, v6 = float(_letter(3, "v3", 4) == "C"), float(_letter(3, "v4", 2) == "B"), float(_letter(3, "v6", 2) == "A")
    assert task.r4d_accuracy(records) == pytest.approx((3 + v3 + v4 + v6) / 7)  # as p4d eval scores them
    assert task.r4d_static(records) == 1.0 and task.r4d_SR(records) == 0.0  # no SR item: 0.0, as released
    assert task.r4d_dynamic(records) == pytest.approx((v3 + v4 + 1 + v6) / 5)
    assert task.r4d_R(records) == v6 and task.r4d_C(records) == pytest.approx(v3 / 2)
    assert task.r4d_accuracy_matched(records) == pytest.approx((5 + v4) / 7)
    assert all(0.0 <= getattr(task, name.split(".")[1])(records) <= 1.0 for name in hooks[4:])


@pytest.fixture
def fake_lmms_eval(monkeypatch):
    """A stand-in for lmms-eval's documented model API (lmms-eval 0.7 would replace torch 2.13 and PyAV
    here): ``lmms_eval.api.model.lmms``, ``lmms_eval.api.registry.register_model`` and
    ``lmms_eval.models.registry_v2.ModelManifest``; p4d.eval.lmms_model is re-imported against it."""
    import dataclasses
    import importlib
    import sys
    import types

    registry = {}

    class lmms:  # noqa: N801 (lmms-eval's name)
        def __init__(self):
            self.task_dict = {}

    def register_model(*names):
        def wrap(cls):
            registry.update(dict.fromkeys(names, cls))
            return cls
        return wrap

    @dataclasses.dataclass(frozen=True)
    class ModelManifest:
        model_id: str
        simple_class_path: str | None = None
        chat_class_path: str | None = None

    modules = {"lmms_eval": {}, "lmms_eval.api": {}, "lmms_eval.api.model": {"lmms": lmms},
               "lmms_eval.api.registry": {"register_model": register_model}, "lmms_eval.models": {},
               "lmms_eval.models.registry_v2": {"ModelManifest": ModelManifest}}
    for name, attrs in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs, __name__=name))
    import p4d.eval.lmms_model as adapter

    yield importlib.reload(adapter), registry, lmms
    monkeypatch.undo()
    importlib.reload(adapter)


@pytest.mark.slow
def test_student_as_lmms_eval_model_answers_as_p4d_eval(r4d, tmp_path, monkeypatch, fake_lmms_eval):
    """`--model p4d` on the r4d_bench task's own hooks: registered under "p4d" (decorator and entry-point
    manifest), and the tiny exported student's raw answers equal those of `p4d eval` on the same items."""
    import importlib
    import types

    import torch

    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    adapter, registry, base = fake_lmms_eval
    assert registry["p4d"] is adapter.P4DStudent and issubclass(adapter.P4DStudent, base)
    manifest = adapter.model_manifest()
    module, _, name = manifest.simple_class_path.rpartition(".")
    assert manifest.model_id == "p4d" and getattr(importlib.import_module(module), name) is adapter.P4DStudent

    torch.manual_seed(0)
    export_student(build_student(TINY.replace(strategy="4d-sft")), tmp_path / "export")
    run_eval(EvalConfig(bench=r4d, out=tmp_path / "s.jsonl", model_dir=tmp_path / "export", frames=4, seed=0,
                        progress=False, batch_size=3))
    _, records = read_predictions(tmp_path / "s.jsonl")

    monkeypatch.chdir(r4d.parent)
    monkeypatch.setenv("R4D_BENCH_ROOT", r4d.name)
    from p4d.eval.lmms_eval_task import r4d_bench_utils

    task = importlib.reload(r4d_bench_utils)
    docs = [json.loads(line) for line in (r4d / ".cache/test_normalized.jsonl").read_text().splitlines()]
    model = adapter.P4DStudent(pretrained=str(tmp_path / "export"), num_frames=4, device="cpu", batch_size="3")
    model.task_dict = {"r4d_bench": {"test": docs}}
    requests = [types.SimpleNamespace(args=(task.r4d_doc_to_text(d), {"max_new_tokens": 32, "until": []},
                                            task.r4d_doc_to_visual, k, "r4d_bench", "test")) for k, d in enumerate(docs)]
    answers = model.generate_until(requests)
    assert answers[IDS.index("v4")] == ""  # its clipped video is corrupt: the empty answer, scored as unparsed
    assert {d["id"]: a for d, a in zip(docs, answers) if d["id"] != "v4"} == {
        k: r["raw"] for k, r in records.items() if k != "v4"}
    with pytest.raises(NotImplementedError):
        model.loglikelihood(requests)


LMMS_METRICS = ("r4d_accuracy", "r4d_static", "r4d_dynamic", "r4d_VG", "r4d_DM", "r4d_SR", "r4d_R", "r4d_C", "r4d_T",
                "r4d_FP", "r4d_SA", "r4d_DP")


@pytest.mark.slow
@pytest.mark.lmms
def test_real_lmms_eval_runs_the_student_and_reports_p4d_evals_fractions(r4d, tmp_path):
    """The real lmms-eval (the python P4D_LMMS_PYTHON names; bench/lmms_env.sh builds it) runs
    ``python -m lmms_eval --model p4d --tasks r4d_bench`` on the miniature with the tiny exported student.
    Its 12 reported metrics equal the fractions computed here from the per-item scores of
    ``p4d eval --protocol release --seed 0`` on the same folder and export (random letters seeded 0 in both:
    R4D_BENCH_SEED=0), and its answers equal p4d eval's raw answers item for item (cut at lmms-eval's
    default stop "\\n\\n")."""
    import os
    import subprocess

    import torch

    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    python = os.environ.get("P4D_LMMS_PYTHON")
    if not python:
        pytest.skip("P4D_LMMS_PYTHON is unset: no lmms-eval environment (bash bench/lmms_env.sh builds .venv-lmms; "
                    "export P4D_LMMS_PYTHON=$PWD/.venv-lmms/bin/python)")
    torch.manual_seed(0)
    export = export_student(build_student(TINY.replace(strategy="4d-sft")), tmp_path / "export")
    run_eval(EvalConfig(bench=r4d, out=tmp_path / "p4d.jsonl", model_dir=export, frames=4, seed=0, protocol="release",
                        device="cpu", batch_size=1, progress=False))
    _, records = read_predictions(tmp_path / "p4d.jsonl")

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "R4D_BENCH_ROOT": r4d.name, "R4D_BENCH_SEED": "0", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(repo)}
    command = [python, "-m", "lmms_eval", "--model", "p4d", "--model_args", f"pretrained={export},num_frames=4,device=cpu",
               "--tasks", "r4d_bench", "--include_path", str(repo / "p4d/eval/lmms_eval_task"), "--batch_size", "1",
               "--output_path", str(tmp_path / "lmms"), "--log_samples"]
    run = subprocess.run(command, cwd=r4d.parent, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (results_file,) = (tmp_path / "lmms").rglob("*_results.json")
    (samples_file,) = (tmp_path / "lmms").rglob("*_samples_r4d_bench.jsonl")
    reported = json.loads(results_file.read_text())["results"]["r4d_bench"]

    def fraction(selected, key="score"):
        scores = [r[key] for r in records.values() if selected(r)]
        return sum(scores) / len(scores) if scores else 0.0  # an empty column is 0.0 in the release's task

    expected = {"r4d_accuracy": fraction(lambda r: True), "r4d_static": fraction(lambda r: r["split"] == "static"),
                "r4d_dynamic": fraction(lambda r: r["split"] == "dynamic"),
                **{f"r4d_{c}": fraction(lambda r, c=c: r["category"] == c)
                   for c in ("VG", "DM", "SR", "R", "C", "T", "FP", "SA", "DP")}}
    assert {m: reported[f"{m},none"] for m in LMMS_METRICS} == pytest.approx(expected, abs=1e-12)
    assert reported["r4d_accuracy_matched,none"] == pytest.approx(fraction(lambda r: True, "score_matched"))
    assert len(records) == 7 and sum(r["rule"] == "parser" for r in records.values()) >= 1  # not all random letters

    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    answers = {s["r4d_accuracy"]["id"]: s["filtered_resps"] for s in samples}
    answers = {k: a[0] if isinstance(a, list) else a for k, a in answers.items()}
    assert answers == {k: (r["raw"] or "").split("\n\n")[0] for k, r in records.items()}
    assert {k: s["r4d_accuracy"]["pred_letter"] for k, s in zip(answers, samples)} == {
        k: r["parsed"] for k, r in records.items()}
    printed = run.stdout + run.stderr
    assert "|r4d_bench|" in printed and "r4d_accuracy" in printed  # lmms-eval's own results table
