"""The trainer end to end on a tiny-teacher cache: losses, checkpoints, kill + resume, refusals,
export for p4d eval, and never importing the teacher."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from p4d.cache_schema import SCHEMA_VERSION, open_store
from p4d.errors import CacheSchemaError, CacheVersionError
from p4d.train import checkpoint as ckpt
from p4d.train.build import build_model
from p4d.train.data import build_samples
from p4d.train.loader import ClipDataset, Collate
from p4d.train.logs import read_log
from p4d.train.trainer import forward_batch, main
from tests.train.conftest import small_config, write_jsonl

TERMS = ("sft", "ld", "depth", "flow", "motion", "camray")


def _fixed_batch(model, cfg, store):
    samples, _ = build_samples(cfg.data.conversations, store)
    ds = ClipDataset(samples, store, student=model.cfg, tokenizer=model.tokenizer,
                     targets=("f4d", "depth", "flow", "motion", "camray"))
    return Collate(model.ids.pad)([ds[(i, 0)] for i in range(4)])


@torch.no_grad()
def _loss(model, batch):
    model.eval()
    return float(forward_batch(model, batch, torch.device("cpu"))["loss"])


def test_tiny_end_to_end_loss_goes_down(train_cache, conversations, tmp_path):
    cfg = small_config(train_cache, tmp_path / "run", optim={"max_steps": 20}, checkpoint={"every": 10})
    store = open_store(train_cache.store)
    start, _ = build_model(cfg, store)                 # the trainer's seeded initial student
    batch = _fixed_batch(start, cfg, store)
    before = _loss(start, batch)

    result = main(cfg)
    records = read_log(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 21))
    for r in records:
        for term in TERMS:                              # every term present and finite at every step
            assert np.isfinite(r[term]), (r["step"], term)
        assert (r["lr/llm"] > 0) == (r["step"] > 1)     # warmup 1 step: the first runs at lr 0 (HF's schedule)
        assert r["samples_per_s"] > 0 and r["peak_mem_mb"] > 0 and r["step_time"] >= r["data_wait"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step-000010", "step-000020"]
    trained, _ = ckpt.load_checkpoint_model(result.checkpoint)
    after = _loss(trained, batch)
    assert after < before, (before, after)
    # the checkpoint holds named parts, all readable without unrestricted unpickling
    parts = set(os.listdir(result.checkpoint))
    assert {"model.safetensors", "optimizer.pt", "scheduler.json", "rng-rank00000.safetensors", "data.json",
            "train_state.json", "meta.json"} <= parts
    torch.load(result.checkpoint / "optimizer.pt", weights_only=True)
    meta = ckpt.read_meta(result.checkpoint)
    assert meta["student"]["name"] == "tiny" and meta["config"]["recipe"]["loss"] == "ld+ed" and meta["step"] == 20
    position = json.loads((result.checkpoint / "data.json").read_text())
    assert (position["epoch"], position["batch"]) == (10, 0)   # 5 clips = 2 batches of 2 per epoch; 20 batches taken


def _run_cli(args, output):
    """``python -m p4d.train ARGS`` in the background, its output to the file ``output``."""
    proc = subprocess.Popen([sys.executable, "-m", "p4d.train", *args], stdout=output.open("w"),
                            stderr=subprocess.STDOUT, cwd=os.getcwd())
    proc.output = output
    return proc


def _tail(proc) -> str:
    return proc.output.read_text()[-3000:]


def test_kill_and_resume_matches_an_uninterrupted_run(train_cache, conversations, tmp_path):
    steps, every = 10, 3
    flags = ["--data", str(conversations), "--cache", train_cache.store, "--student", "tiny", "--steps", str(steps),
             "--batch-size", "1", "--checkpoint.every", str(every), "--checkpoint.export", "false",
             "--log.progress", "false", "--log.tensorboard", "false", "--recipe.loss", "ld+d",
             "--optim.lr-llm", "2e-3", "--optim.lr-projector", "2e-3", "--optim.lr-d4dp", "2e-3",
             "--optim.warmup-steps", "2", "--lora.dropout", "0"]
    killed = tmp_path / "killed"
    proc = _run_cli(["--out", str(killed), *flags], tmp_path / "killed.out")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = [r["step"] for r in read_log(killed)] if (killed / "log.jsonl").exists() else []
        if done and max(done) >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, _tail(proc)
    saved = [int(p.name.split("-")[1]) for p in ckpt.list_checkpoints(killed)]
    assert saved and max(saved) < steps                      # killed mid-run, after a checkpoint
    resume_step = max(saved)

    resumed = _run_cli(["--resume", str(killed), "--log.progress", "false"], tmp_path / "resumed.out")
    straight = _run_cli(["--out", str(tmp_path / "straight"), *flags], tmp_path / "straight.out")  # side by side
    assert resumed.wait(timeout=180) == 0, _tail(resumed)
    assert straight.wait(timeout=180) == 0, _tail(straight)
    assert f"resumed from {killed}" in resumed.output.read_text()

    reference = {r["step"]: r for r in read_log(tmp_path / "straight")}
    records = read_log(killed)
    assert [r["step"] for r in records] == list(range(1, steps + 1))   # each step once: the resume cut the log
    after = {r["step"]: r for r in records}
    for step in range(resume_step + 1, steps + 1):
        for term in ("loss", "sft", "ld", "depth"):
            assert after[step][term] == pytest.approx(reference[step][term], rel=1e-4, abs=1e-6), (step, term)
        assert after[step]["lr/llm"] == pytest.approx(reference[step]["lr/llm"], rel=1e-9)


def test_a_training_step_runs_with_the_teacher_unimportable(train_cache, conversations, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "p4d.teacher" or name.startswith(("p4d.teacher.", "p4d.precompute")) or name == "p4d.precompute":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "p4d.teacher", None)        # `import p4d.teacher` now raises ImportError
    monkeypatch.setitem(sys.modules, "p4d.precompute", None)
    with pytest.raises(ImportError):
        import p4d.teacher  # noqa: F401
    result = main(small_config(train_cache, tmp_path / "run", optim={"max_steps": 1}))
    assert result.steps == 1 and np.isfinite(result.last["loss"])
    assert not any(k.startswith("p4d.teacher.") for k in sys.modules)


def _copy_store(src, dst, **attrs):
    import shutil

    shutil.copytree(src, dst)
    meta = json.loads((dst / "zarr.json").read_text())
    meta["attributes"].update(attrs)
    (dst / "zarr.json").write_text(json.dumps(meta))
    return dst


def test_stores_of_another_schema_or_teacher_are_refused_before_training(train_cache, conversations, tmp_path):
    from pathlib import Path

    other = _copy_store(Path(train_cache.store), tmp_path / "v99.zarr", schema_version=99)
    cfg = small_config(train_cache, tmp_path / "a")
    cfg.data.cache = str(other)
    with pytest.raises(CacheVersionError, match="schema v99"):
        main(cfg)
    cfg = small_config(train_cache, tmp_path / "b", expect={"teacher_hash": "sha256:0000"})
    with pytest.raises(CacheSchemaError, match="--expect.teacher-hash"):
        main(cfg)
    cfg = small_config(train_cache, tmp_path / "c", expect={"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(CacheSchemaError, match="--expect.schema-version"):
        main(cfg)
    assert not any((tmp_path / n).exists() for n in "abc")        # nothing started, nothing written


def test_bad_records_are_counted_and_training_goes_on(train_cache, tmp_path):
    from PIL import Image

    from tests.train.conftest import good_records, record

    Image.new("RGB", (50, 40), (10, 200, 30)).save(tmp_path / "green.png")
    Image.new("RGB", (30, 60), (200, 200, 30)).save(tmp_path / "yellow.png")
    v = train_cache.videos
    data = write_jsonl(tmp_path / "mixed.jsonl", [
        *[{**r, "video": str(v / r["video"].split("/")[-1])} for r in good_records()[:2]],
        record(str(v / "bad.mp4"), rid="failed"), record(str(tmp_path / "gone.mp4"), rid="gone"), "{oops",
        *[{"id": f"im{k}", "image": [str(tmp_path / "green.png"), str(tmp_path / "yellow.png")],
           "conversations": [{"from": "human", "value": "<image>\nColours?"}, {"from": "gpt", "value": "A"}]}
          for k in range(2)],
    ])
    result = main(small_config(train_cache, tmp_path / "run", data, optim={"max_steps": 4},
                               data={"allow_missing_targets": False}))
    assert result.data["skipped"] == {"failed_clip": 1, "missing_video": 1, "malformed": 1}
    assert result.data["kinds"] == {"video": 2, "image": 2}
    records = read_log(tmp_path / "run")
    assert len(records) == 4 and all(np.isfinite(r["loss"]) for r in records)
    # image batches are SFT only: a step with no LD term happened, and one with it
    assert any("ld" not in r for r in records) and any("ld" in r for r in records)
    assert json.loads((tmp_path / "run" / "data_report.json").read_text())["skipped"]["failed_clip"] == 1


def test_export_loads_for_eval(train_cache, conversations, tmp_path):
    from p4d.eval.run import load_student, read_student_config, student_preset
    from p4d.video import sample_clip

    cfg = small_config(train_cache, tmp_path / "run", optim={"max_steps": 2}, checkpoint={"export": True},
                       recipe={"tune": "tune-p+llm-lora", "time_cue": "prompt"}, lora={"r": 4, "alpha": 8})
    result = main(cfg)
    preset = student_preset(read_student_config(result.export))
    assert preset == {"strategy": "p4d", "loss": "ld+ed", "time_cue": "prompt", "trainable": "tune-p+llm-lora"}
    # the LoRA checkpoint stores the adapters and the other trainable parts only
    with __import__("safetensors").safe_open(str(result.checkpoint / "adapter.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all("lora_" in k or k.startswith(("mm_projector.", "d4dp.")) for k in keys)
    assert any(k.startswith("mm_projector.") for k in keys) and any("lora_A" in k for k in keys)
    with __import__("safetensors").safe_open(str(result.export / "llm" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}   # --export-dtype bf16 by default
    model = load_student(result.export)                       # through p4d eval's own loader
    clip = sample_clip(str(train_cache.videos / "v0.mp4"), num_frames=16)
    text = model.answer(clip.frames, clip.timestamp, "Which way?", ["left", "right"])
    assert isinstance(text, str)
