"""`p4d bench gpu-precompute`: its CPU dry run (tiny teacher) runs the very code a lent GPU runs."""

import subprocess
from pathlib import Path

import pytest

from p4d.bench.harness import format_table
from p4d.bench.registry import run_benchmarks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cpu_dry_run_fills_the_table_and_its_checks_pass():
    (res,) = run_benchmarks("gpu-precompute", "tiny", device="cpu")
    assert res.status == "ok" and res.shapes["teacher"] == "tiny (shipped weights)"
    rows = {r.entry.split(",")[0].split(" vs ")[0]: r for r in res.rows}
    assert len(res.rows) == 5
    for r in res.rows:
        assert r.candidate > 0 and r.baseline > 0, r
        assert all(r.checks.values()), (r.entry, r.checks)
    exact = next(r for r in res.rows if "bytes equal" in r.entry)
    assert exact.candidate == 1.0 and exact.verdict == "met"
    job = next(r for r in res.rows if r.entry.startswith("precompute 2 shards"))
    assert job.extra["clips_done"] == 4 and job.extra["placement"] == "2 shards on cpu fp32 (none)"
    table = format_table(res)
    assert "teacher forward tiny fp32" in table and "F_4D encode + self-check on cpu" in table, rows


def test_without_a_gpu_auto_skips_and_says_how_to_dry_run(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (res,) = run_benchmarks("gpu-precompute", "tiny")
    assert res.status.startswith("skipped: no CUDA device") and "--device cpu" in res.status


def test_the_gpu_machine_script_parses_and_calls_the_check():
    script = ROOT / "bench" / "gpu_precompute_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "bench gpu-precompute --device cuda" in script.read_text()
