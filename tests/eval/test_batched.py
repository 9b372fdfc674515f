"""``p4d eval --batch-size``: batched greedy answers equal one-at-a-time answers (independent truth:
the unbatched path, one item per generate call); ``--device``/``--dtype`` resolve or fail naming the flag."""

import pytest
import torch
import typer
from typer.testing import CliRunner

from p4d.errors import ConfigError
from p4d.eval.cli import eval_app
from p4d.eval.predictions import read_predictions
from p4d.eval.run import EvalConfig, run_eval


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("batched") / "export"
    export_student(build_student(TINY.replace(strategy="4d-sft")), path)
    return path


def _items(mcq):
    """Prompts of different lengths (left padding differs per row), and one item with a region, whose
    SoM image makes one more visual block (a group of its own)."""
    items = [mcq(f"q{i}", "VG", question=f"Question {i}?" + " Is the car left of the tree?" * i,
                 n_options=2 + i % 3) for i in range(5)]
    items[3]["regions"] = [{"label": "obj_1", "box": [10, 10, 40, 40]}]
    return items


def test_batched_answers_equal_one_at_a_time(exported, mcq, write_bench, tmp_path, monkeypatch):
    import p4d.train.export as export

    calls = []
    real = export.StudentAnswerer.answer_batch
    monkeypatch.setattr(export.StudentAnswerer, "answer_batch",
                        lambda self, requests: calls.append(len(requests)) or real(self, requests))
    bench = write_bench(tmp_path / "b.json", _items(mcq))
    raws = {}
    for size in (1, 3):
        calls.clear()
        run_eval(EvalConfig(bench=bench, out=tmp_path / f"p{size}.jsonl", model_dir=exported, frames=4,
                            batch_size=size, device="cpu", progress=False, seed=0))
        header, records = read_predictions(tmp_path / f"p{size}.jsonl")
        assert header["placement"] == {"device": "cpu", "dtype": "float32", "batch_size": size}
        raws[size] = {k: (r["raw"], r["parsed"], r["score"]) for k, r in records.items()}
        assert calls == ([1] * 5 if size == 1 else [3, 2])
    assert len(raws[1]) == 5 and raws[3] == raws[1]
    assert len({raw for raw, _, _ in raws[1].values()}) > 1  # the prompts differ, and so do the answers


def test_batch_of_different_prompt_lengths_in_any_order(exported):
    """The same questions asked alone and as one batch (reversed, so padding moves) get the same text."""
    import numpy as np

    from p4d.eval.run import load_student

    model = load_student(exported, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (4, 40, 50, 3), dtype=np.uint8)
    asks = [dict(frames=frames, timestamps=np.arange(4) * 0.5, question_text="Q" + "?" * (7 * i), options=["a", "b"])
            for i in range(4)]
    alone = [model.answer(**a) for a in asks]
    assert model.answer_batch(asks[::-1]) == alone[::-1]


def test_dtype_auto_is_bf16_on_cuda_and_reaches_the_weights(exported):
    from p4d.train.model import load_exported_student
    from p4d.train.model.placement import resolve_dtype

    assert resolve_dtype("auto", "cuda") == "bfloat16" and resolve_dtype(None, "cpu") == "float32"
    for dtype, want in (("auto", torch.float32), ("bfloat16", torch.bfloat16)):
        model = load_exported_student(exported, device="cpu", dtype=dtype)
        assert {p.dtype for p in model.parameters()} == {want} and model.cfg.dtype == str(want).split(".")[1]


def test_device_cuda_without_cuda_is_one_line_naming_the_flag(exported, mcq, write_bench, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bench = write_bench(tmp_path / "b.json", _items(mcq)[:1])
    app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    app.command("other")(lambda: None)
    out = tmp_path / "p.jsonl"
    result = CliRunner().invoke(app, ["eval", "run", str(bench), "--model", str(exported), "--device", "cuda",
                                      "--out", str(out), "--no-progress"])
    assert isinstance(result.exception, ConfigError)
    text = str(result.exception)
    assert text.startswith("--device cuda: no CUDA device") and "\n" not in text
    assert not out.exists()  # refused before the predictions file is written
    with pytest.raises(ConfigError, match=r"^--dtype 'fp8': expected one of auto, float32, bfloat16"):
        run_eval(EvalConfig(bench=bench, out=out, model_dir=exported, dtype="fp8", device="cpu", progress=False))
