"""`p4d bench gpu-train`: its CPU dry run (tiny student) runs the very code a lent GPU runs."""

import subprocess
from pathlib import Path

import torch

from p4d.bench.harness import format_table
from p4d.bench.registry import run_benchmarks

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_dry_run_trains_the_sharded_student_and_fills_the_table():
    (res,) = run_benchmarks("gpu-train", "tiny", device="cpu")
    assert res.status == "ok" and res.shapes["parallel"] == "fsdp2 (world 1)" and res.shapes["student"].startswith("tiny")
    assert len(res.rows) == 4
    for r in res.rows:
        assert r.candidate > 0 and r.baseline > 0, r
        assert all(r.checks.values()), (r.entry, r.checks)
    step = res.rows[0]
    assert step.checks == {"trainable parameters are DTensors": True, "losses finite": True}
    tokens = res.rows[3]
    assert tokens.candidate == res.shapes["tokens/step"] / step.candidate     # tokens/s is tokens over the step time
    table = format_table(res)
    assert "step time, gradient checkpointing on vs off" in table and "tokens/s" in table
    assert not torch.distributed.is_initialized()                 # its process group of one is closed again


def test_the_gpu_machine_script_parses_and_calls_the_check():
    script = ROOT / "bench" / "gpu_train_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "--nproc-per-node 1" in text and "bench gpu-train --device cuda" in text
