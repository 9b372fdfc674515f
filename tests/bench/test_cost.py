"""p4d bench cost: the break-even figures from the FLOP model and bytes per clip, by hand."""

from __future__ import annotations

import math

import pytest

from p4d.bench.cost import CostInputs, cost, memory_per_gpu, run, student_params
from p4d.bench.train import step_flops
from p4d.errors import ConfigError


def test_student_params_by_hand():
    """NVILA-Lite-8B: Qwen2-7B blocks 6,525,288,448 + 2 x 152,064 x 3,584 embeddings; SigLIP so400m
    27 x (2 x 1152^2 + 2 x 1152^2 + 2 x 1152 x 4304) = 411,070,464; projector 9 x 1152 x 3 x 1152 +
    3 x 1152 x 3584 + 3584^2 = 61,063,168; total 8,087,416,832."""
    from p4d.train.model import student_preset

    assert student_params(student_preset("nvila-lite-8b")) == 8_087_416_832


def test_gpu_hours_storage_and_break_even_by_hand():
    i = CostInputs(clips=1000, epochs=2, runs=3, student="nvila-lite-8b", gpus=4, gpu_mem_gb=10.0, gpu_tflops=100.0,
                   gpu_hour_usd=2.0, tb_month_usd=1e6)
    f = step_flops("nvila-lite-8b", "l4p")
    s, t = f["student TFLOP"], f["teacher TFLOP"]
    c = cost(i, bytes_per_clip=5e6)
    h = 1 / 100 / 3600
    assert c["GPU-hours online"] == pytest.approx(3 * 2 * 1000 * (s + t) * h)
    assert c["GPU-hours cached"] == pytest.approx(1000 * t * h + 3 * 2 * 1000 * s * h)
    assert c["TB stored"] == pytest.approx(0.005)
    saved = 2 * 1000 * t * h  # per run
    assert c["break-even runs (GPU-hours)"] == 1  # precompute = half of one run's saving at 2 epochs
    assert c["break-even runs (USD, storage 1 month)"] == math.ceil((1000 * t * h * 2 + 0.005 * 1e6) / (saved * 2))
    assert c["break-even runs (USD, storage 1 month)"] > 1
    mem = memory_per_gpu("nvila-lite-8b", 4, f["tokens"])
    assert mem["student states"] == pytest.approx(16 * 8_087_416_832 / 4 / 1e9)
    assert mem["teacher weights"] == pytest.approx(2 * 1_351_456_138 / 1e9)  # p4d teacher info: 1.35 G params
    assert c["online GB per GPU"] == pytest.approx(sum(mem.values()))
    assert not c["online fits"] and not c["cached fits"]  # 32 GB of states alone on a 10 GB GPU


@pytest.mark.parametrize("field, value, flag", [("runs", 0, "--runs"), ("student", "llava", "--student"),
                                                ("gpu_mem_gb", 0.0, "--gpu-mem")])
def test_bad_inputs_name_the_flag(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        CostInputs(**{field: value}).validate()


def test_run_measures_bytes_per_clip_on_a_store(tmp_path):
    from p4d.bench.synthetic_store import SHAPES, build_store, bytes_under, synthetic_clips

    url = str(tmp_path / "c.zarr")
    build_store(url, SHAPES["tiny"], "dpcm-channel", list(synthetic_clips(SHAPES["tiny"], count=2)))
    res = run("tiny", clips=2_000_000, epochs=10, runs=8, student="nvila-lite-2b", store=url)
    stored = next(r for r in res.rows if r.metric == "TB")
    assert stored.candidate == pytest.approx(2_000_000 * bytes_under(url) / 2 / 1e12)
    hours = next(r for r in res.rows if r.metric == "GPU-hours")
    assert hours.candidate < hours.baseline  # 80 passes of the teacher saved for one
