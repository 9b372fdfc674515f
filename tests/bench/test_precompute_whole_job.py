"""`p4d bench precompute`'s whole-job table (tiny stand-in: seconds of jobs, not timings) and the GPU
decode check's dry run: the rows exist and the invariants hold (a job's CPU of every process >= the
stage CPU its workers counted in it), never wall-clock figures."""

from __future__ import annotations

import pytest

from p4d.bench.harness import format_table


@pytest.mark.slow
def test_whole_job_rows_exist_and_the_job_costs_at_least_its_stages():
    from p4d.bench.precompute_standin import run_stand_in

    res = run_stand_in("tiny", repeats=1, job_runs=1, policies=("stride",))
    entries = [r.entry for r in res.rows]
    whole = next(r for r in res.rows if "WHOLE JOB" in r.entry)
    stages = next(r for r in res.rows if r.entry.startswith("stride: stages the workers counted"))
    unaccounted = next(r for r in res.rows if r.entry.startswith("stride: unaccounted = whole job - stage sum"))
    assert any("projected host CPU with GPU decode" in e for e in entries)
    assert any("peak RSS" in e for e in entries)
    assert any(e.startswith("stride (") and e.endswith("alone: decode") for e in entries)
    # invariant: every process's CPU over the whole (big) job >= the stage CPU counted inside it
    assert whole.extra["job_cpu_s"] >= whole.extra["job_stage_cpu_s"] > 0
    assert whole.extra["decoders"] == "cpu"
    assert unaccounted.candidate == pytest.approx(whole.candidate - stages.candidate)
    assert whole.baseline == 0.30 and whole.goal is None  # the goal's figure; tiny marginals are noise: no verdict
    assert all(r.verdict == "" for r in res.rows)
    assert "load_1min" in whole.extra and whole.extra["user"] and whole.extra["sys"]
    assert "WHOLE JOB" in format_table(res)


def test_marginal_cancels_start_up_and_refuses_equal_counts():
    from p4d.bench.whole_job import STAGES, JobCost, marginal

    stages = {k: 0.0 for k in STAGES}
    small = JobCost(clips=4, user_s=10.0, sys_s=2.0, wall_s=1, stages={**stages, "decode_cpu_s": 1.0},
                    peak_rss_mib=1, worker_peak_rss_mib=1)
    big = JobCost(clips=16, user_s=13.0, sys_s=2.6, wall_s=1, stages={**stages, "decode_cpu_s": 2.2},
                  peak_rss_mib=1, worker_peak_rss_mib=1)
    m = marginal(small, big)  # (15.6 - 12) / 12 clips; start-up (the 12 s both pay) cancels
    assert m.cpu == pytest.approx(0.3) and m.user == pytest.approx(0.25) and m.sys == pytest.approx(0.05)
    assert m.stage_sum == pytest.approx(0.1) and m.unaccounted == pytest.approx(0.2)
    with pytest.raises(ValueError, match="more clips"):
        marginal(big, big)


@pytest.mark.slow
def test_gpu_decode_check_dry_run_rows_and_tolerances():
    from p4d.bench.gpu_decode_check import run

    res = run("cpu", jobs=False)
    assert res.status == "ok" and len(res.rows) == 3
    decode, pixels, teacher_input = res.rows
    assert decode.candidate > 0 and decode.baseline > 0
    assert pixels.candidate == 0.0 and pixels.verdict == "met"  # the dry run's source is PyAV itself
    assert teacher_input.verdict == "met", teacher_input.extra  # device resize vs Pillow within tolerance
