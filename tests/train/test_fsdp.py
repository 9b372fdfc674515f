"""FSDP2 (``--runtime.parallel fsdp``) on CPU with gloo, 2 processes: equal to one process with the
doubled batch, kill -9 + resume, 1/world of the trainable bytes per rank, the consolidated export,
and loading without world-size copies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from p4d.train import checkpoint as ckpt
from p4d.train.logs import read_log
from p4d.train.trainer import main
from tests.train.conftest import small_config

#: Float32 sums in another order (per-rank means averaged by reduce-scatter vs one batch mean),
#: carried through 3 AdamW steps at lr 2e-3: losses agree to ~2e-7 relative. Weights: AdamW divides
#: each gradient by its own RMS, so entries whose gradient is at float32 noise level (lm_head rows of
#: tokens no answer holds) turn reduction-order noise into updates; measured up to 1e-5, bounded at
#: 2.5 % of one step's lr.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 5e-5

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(nproc: int, args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "p4d.train", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def common_flags(train_cache, conversations, steps: int) -> list[str]:
    return ["--student", "tiny", "--data", str(conversations), "--cache", train_cache.store, "--steps", str(steps),
            "--log.progress", "false", "--log.tensorboard", "false", "--recipe.loss", "ld+d",
            "--optim.lr-llm", "2e-3", "--optim.lr-projector", "2e-3", "--optim.lr-d4dp", "2e-3",
            "--optim.warmup-steps", "1"]


def test_fsdp_two_processes_match_one_process_with_the_doubled_batch(train_cache, conversations, tmp_path):
    steps = 3
    torchrun(2, ["--out", str(tmp_path / "fsdp"), "--batch-size", "1", "--runtime.parallel", "fsdp",
                 *common_flags(train_cache, conversations, steps)])
    single = small_config(train_cache, tmp_path / "one", optim={"max_steps": steps, "warmup_steps": 1},
                          data={"batch_size": 2}, recipe={"loss": "ld+d"})
    main(single)

    import yaml
    assert yaml.safe_load((tmp_path / "fsdp" / "config.yaml").read_text())["runtime"]["parallel"] == "fsdp"
    assert yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())["runtime"]["parallel"] == "none"
    fsdp_log, one_log = read_log(tmp_path / "fsdp"), read_log(tmp_path / "one")
    assert [r["step"] for r in fsdp_log] == [r["step"] for r in one_log] == [1, 2, 3]
    for a, b in zip(fsdp_log, one_log):
        for term in ("loss", "sft", "ld", "depth", "grad_norm"):
            assert a[term] == pytest.approx(b[term], rel=LOSS_RTOL), (a["step"], term, a[term], b[term])
    assert fsdp_log[0]["loss"] != pytest.approx(fsdp_log[-1]["loss"], rel=1e-3)   # it trained

    final = ckpt.step_dir(tmp_path / "fsdp", steps)
    assert ckpt.is_sharded_checkpoint(final) and not (final / ckpt.MODEL).exists()
    sharded_model, _ = ckpt.load_checkpoint_model(final)          # DCP read into one unsharded student
    one_model, _ = ckpt.load_checkpoint_model(ckpt.step_dir(tmp_path / "one", steps))
    a, b = dict(sharded_model.named_parameters()), dict(one_model.named_parameters())
    assert set(a) == set(b)
    worst = max(float((a[k] - b[k]).detach().abs().max()) for k in a)
    assert worst <= WEIGHT_ATOL, worst
    print(f"fsdp vs one process: max |Δw| {worst:.2e}, loss rel diffs "
          f"{[abs(x['loss'] - y['loss']) / y['loss'] for x, y in zip(fsdp_log, one_log)]}")

    # a torn shard file is one clear error naming the folder, not a crash or silent garbage
    import shutil

    torn = tmp_path / "torn" / "checkpoints" / final.name
    shutil.copytree(final, torn)
    for shard in (torn / ckpt.SHARDED).glob("*.distcp"):     # every rank's file cut short
        shard.write_bytes(shard.read_bytes()[:64])
    from p4d.errors import CheckpointError

    with pytest.raises(CheckpointError, match=f"{torn / ckpt.SHARDED}: not a readable sharded checkpoint"):
        ckpt.load_checkpoint_model(torn)

    # (d) the consolidated export (gathered to rank 0) loads as `p4d eval` loads it and holds exactly
    # the weights of the sharded checkpoint of the same step (read back by DCP, another path)
    from p4d.train import load_exported_student

    answerer = load_exported_student(tmp_path / "fsdp" / "export")
    exported = dict(answerer.model.named_parameters())
    kept = {k: v for k, v in a.items() if not k.startswith(("d4dp.", "heads."))}
    assert set(exported) == set(kept) and len(kept) > 10
    for k in kept:   # stored in bf16 (--export-dtype default), read back in float32
        assert torch.equal(exported[k], kept[k].to(torch.bfloat16).to(exported[k].dtype)), k
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 255, (4, 56, 56, 3), dtype=np.uint8)
    assert isinstance(answerer.answer(frames, np.arange(4, dtype=np.float32), "Which way?", ["left", "right"]), str)


def test_auto_picks_fsdp_only_for_full_llm_tunes_on_several_processes():
    from p4d.errors import ConfigError
    from p4d.train.sharding import resolve_parallel

    assert resolve_parallel("auto", "tune-p+llm", 2) == "fsdp"
    assert resolve_parallel("auto", "tune-llm", 8) == "fsdp" and resolve_parallel("auto", "tune-all", 2) == "fsdp"
    assert resolve_parallel("auto", "tune-p+llm-lora", 2) == "ddp" and resolve_parallel("auto", "tune-p", 2) == "ddp"
    assert resolve_parallel("auto", "tune-p+llm", 1) == "none"
    assert resolve_parallel("fsdp", "tune-p+llm", 1) == "fsdp"     # a process group of one
    with pytest.raises(ConfigError, match="--runtime.parallel none: 2 processes"):
        resolve_parallel("none", "tune-p+llm", 2)


def test_parallel_settings_are_validated(train_cache, tmp_path):
    from p4d.errors import ConfigError

    with pytest.raises(ConfigError, match="--runtime.parallel 'zero3': expected one of auto, none, ddp, fsdp"):
        small_config(train_cache, tmp_path / "r", runtime={"parallel": "zero3"})
    with pytest.raises(ConfigError, match="--runtime.parallel fsdp: --recipe.tune tune-llm-lora trains LoRA"):
        small_config(train_cache, tmp_path / "r", runtime={"parallel": "fsdp"}, recipe={"tune": "tune-llm-lora"})


# ---- memory: 1/world of the trainable bytes per rank, no world-size copies when loading ------------

def _big_student_folder(train_cache, folder: Path) -> int:
    """An NVILA-Lite folder (``--model.init-from``) of a student with a 12-layer, 512-wide LLM
    (≈ 180 MB in float32); returns its weight bytes."""
    from p4d.train.model import build_student, export_student
    from p4d.train.model.config import TINY

    llm = {**TINY.llm, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
           "num_attention_heads": 8, "num_key_value_heads": 2}
    torch.manual_seed(0)
    export_student(build_student(TINY.replace(llm=llm), training_modules=False), folder)
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors"))


def _probe(nproc: int, overrides: dict, out: Path) -> list[dict]:
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           str(Path(__file__).with_name("fsdp_probe.py")), json.dumps(overrides), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**ENV, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(nproc)]


@pytest.mark.slow
def test_each_rank_holds_half_the_trainable_bytes_and_loads_no_full_copy(train_cache, conversations, tmp_path):
    weights = _big_student_folder(train_cache, tmp_path / "init")
    overrides = {"out": str(tmp_path / "unused"), "data": {"conversations": str(conversations),
                                                            "cache": train_cache.store},
                 "recipe": {"loss": "ld+d"}, "model": {"init_from": str(tmp_path / "init")}}
    two = _probe(2, {**overrides, "runtime": {"parallel": "fsdp"}}, tmp_path / "two")
    one = _probe(1, {**overrides, "runtime": {"parallel": "none"}}, tmp_path / "one")
    total = one[0]["total"]
    assert total > 150e6 and weights > 150e6                  # far above the RSS noise
    # (c) each rank holds its half of the trainable bytes (DTensor local shards), within 10 %
    assert [r["total"] for r in two] == [total, total]
    assert sum(r["here"] for r in two) == total
    for r in two:
        assert abs(r["here"] - total / 2) <= 0.1 * total / 2, r
    # loading: the one process (and rank 0, which reads the weights) peaks at two whole copies (the
    # file's tensors and the student's); rank 1 never holds one: its peak growth during the build
    # (its half, the replicated D_m and frozen E_v, one broadcast tensor at a time, allocator slack)
    # stays under 80 % of the student's bytes
    grow = lambda r: (r["peak_kb"] - r["rss_before_kb"]) * 1024  # noqa: E731
    assert one[0]["peak_reset"] and two[1]["peak_reset"]
    assert grow(one[0]) >= 1.5 * total, (grow(one[0]), total)
    assert grow(two[1]) <= 0.8 * total, (grow(two[1]), total)
    print(f"trainable {total / 2**20:.1f} MB; per rank {[r['here'] / 2**20 for r in two]} MB; build peak growth: "
          f"1 process {grow(one[0]) / 2**20:.1f} MB, 2 processes rank 0 {grow(two[0]) / 2**20:.1f} MB, "
          f"rank 1 {grow(two[1]) / 2**20:.1f} MB")


# ---- kill -9 + resume ---------------------------------------------------------------------------

def _launch(nproc: int, args: list[str], output: Path) -> subprocess.Popen:
    """The trainer in the background (torchrun for nproc > 1), in its own process group, output to a file."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else []
    proc = subprocess.Popen([sys.executable, *launcher, "-m", "p4d.train", *args], stdout=output.open("w"),
                            stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    proc.output = output
    return proc


def _kill_9_all(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every rank at once (torchrun starts each rank in a session of its
    own, so killing the launcher's process group alone would leave the ranks training), and wait
    until all are gone."""
    import psutil

    ranks = psutil.Process(proc.pid).children(recursive=True)
    assert len(ranks) >= 2, ranks
    for p in [psutil.Process(proc.pid), *ranks]:
        p.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)                              # the launcher is our child: Popen reaps it
    gone, alive = psutil.wait_procs(ranks, timeout=30)
    assert not alive, alive


def _finish(proc: subprocess.Popen) -> None:
    assert proc.wait(timeout=300) == 0, proc.output.read_text()[-3000:]


@pytest.mark.slow
def test_kill_9_and_resume_matches_an_uninterrupted_run_also_at_another_world_size(train_cache, conversations,
                                                                                    tmp_path):
    import shutil
    import time

    import yaml

    steps, every = 16, 2
    flags = [*common_flags(train_cache, conversations, steps), "--batch-size", "1", "--checkpoint.every", str(every),
             "--checkpoint.export", "false"]                   # --runtime.parallel auto: fsdp (tune-p+llm, 2 ranks)
    killed = tmp_path / "killed"
    proc = _launch(2, ["--out", str(killed), *flags], tmp_path / "killed.out")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [r["step"] for r in read_log(killed)] if (killed / "log.jsonl").exists() else []
        if done and max(done) >= 3 and ckpt.list_checkpoints(killed):
            _kill_9_all(proc)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.output.read_text()[-3000:]
    assert yaml.safe_load((killed / "config.yaml").read_text())["runtime"]["parallel"] == "fsdp"
    saved = [int(p.name.split("-")[1]) for p in ckpt.list_checkpoints(killed)]
    assert saved and max(saved) < steps
    resume_step = max(saved)
    assert ckpt.is_sharded_checkpoint(ckpt.step_dir(killed, resume_step))
    other_world = tmp_path / "killed-one"
    shutil.copytree(killed, other_world)

    resumed = _launch(2, ["--resume", str(killed)], tmp_path / "resumed.out")
    straight = _launch(2, ["--out", str(tmp_path / "straight"), *flags], tmp_path / "straight.out")
    _finish(resumed)
    _finish(straight)
    one = _launch(1, ["--resume", str(other_world), "--batch-size", "2"], tmp_path / "one.out")  # 2 × 1 → 1 × 2
    _finish(one)
    assert f"resumed from {killed}" in resumed.output.read_text()

    reference = {r["step"]: r for r in read_log(tmp_path / "straight")}
    for run, rtol in ((killed, 1e-6), (other_world, LOSS_RTOL)):
        records = read_log(run)
        assert [r["step"] for r in records] == list(range(1, steps + 1))   # each step once
        for r in records[resume_step:]:
            for term in ("loss", "sft", "ld", "depth", "grad_norm"):
                assert r[term] == pytest.approx(reference[r["step"]][term], rel=rtol), (run.name, r["step"], term)
    final = {name: dict(ckpt.load_checkpoint_model(ckpt.step_dir(run, steps))[0].named_parameters())
             for name, run in (("straight", tmp_path / "straight"), ("resumed", killed), ("one", other_world))}
    for name in ("resumed", "one"):
        worst = max(float((final[name][k] - final["straight"][k]).detach().abs().max()) for k in final["straight"])
        assert worst <= (0.0 if name == "resumed" else WEIGHT_ATOL), (name, worst)


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_sharded_on_two_processes(train_cache, conversations, tmp_path):
    """Whole safetensors + optimizer.pt (one process, batch 2) → FSDP on 2 ranks (batch 1 each):
    rank 0 reads and broadcasts, and the run continues as the uninterrupted one process."""
    import shutil

    steps = 4
    one = tmp_path / "one"
    main(small_config(train_cache, one, optim={"max_steps": steps, "warmup_steps": 1}, data={"batch_size": 2},
                      recipe={"loss": "ld+d"}, checkpoint={"every": 2}))
    run = tmp_path / "run"
    shutil.copytree(one, run)
    shutil.rmtree(ckpt.step_dir(run, steps))                  # as if stopped after step 2's checkpoint
    assert not ckpt.is_sharded_checkpoint(ckpt.step_dir(run, 2))
    torchrun(2, ["--resume", str(run), "--batch-size", "1", "--runtime.parallel", "fsdp"])

    reference, records = read_log(one), read_log(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for a, b in zip(records[2:], reference[2:]):
        for term in ("loss", "sft", "ld", "depth", "grad_norm"):
            assert a[term] == pytest.approx(b[term], rel=LOSS_RTOL), (a["step"], term)
    assert ckpt.is_sharded_checkpoint(ckpt.step_dir(run, steps))   # it goes on sharded
    a = dict(ckpt.load_checkpoint_model(ckpt.step_dir(run, steps))[0].named_parameters())
    b = dict(ckpt.load_checkpoint_model(ckpt.step_dir(one, steps))[0].named_parameters())
    assert max(float((a[k] - b[k]).detach().abs().max()) for k in b) <= WEIGHT_ATOL


def test_fsdp_gradient_accumulation_gives_the_one_process_gradient(train_cache, conversations, tmp_path):
    """2 ranks × batch 1 × 2 micro-batches (a reduce-scatter per micro-batch) = 1 process × batch 2 ×
    2 micro-batches: the same 4 clips, the same step-1 gradient (gathered from the shards)."""
    import safetensors.torch

    flags = [*common_flags(train_cache, conversations, 1), "--optim.grad-accum", "2", "--runtime.dump-grads-at", "1",
             "--checkpoint.export", "false"]
    torchrun(2, ["--out", str(tmp_path / "fsdp"), "--batch-size", "1", "--runtime.parallel", "fsdp", *flags])
    main(small_config(train_cache, tmp_path / "one", optim={"max_steps": 1, "grad_accum": 2, "warmup_steps": 1},
                      data={"batch_size": 2}, recipe={"loss": "ld+d"}, runtime={"dump_grads_at": 1}))
    sharded = safetensors.torch.load_file(str(tmp_path / "fsdp" / "grads-step-1.safetensors"))
    one = safetensors.torch.load_file(str(tmp_path / "one" / "grads-step-1.safetensors"))
    assert set(sharded) == set(one) and any(k.startswith("llm.model.layers.") for k in one)
    for name in one:
        torch.testing.assert_close(sharded[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
    assert sum(float(g.abs().sum()) for g in one.values()) > 0
