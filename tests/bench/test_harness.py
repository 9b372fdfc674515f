"""The bench harness, tested with an injected clock (no assertion on wall-clock time)."""

import json
import math
import time

import pytest

from p4d.bench.harness import BenchResult, Goal, Row, compare, format_table, results_from_json, results_to_json, time_fn
from p4d.bench.report import write_report


class FakeClock:
    """A clock that only moves when a workload says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def work(self, seconds):
        def fn():
            self.now += seconds
        return fn


def test_time_fn_counts_only_timed_repeats():
    clock = FakeClock()
    calls = []

    def fn():
        calls.append(1)
        clock.now += 0.5

    t = time_fn(fn, warmup=2, repeats=3, clock=clock)
    assert len(calls) == 5
    assert t.samples == (0.5, 0.5, 0.5)
    assert t.median == 0.5 and t.spread == 0.0


def test_ratio_of_a_function_against_itself_is_one():
    clock = FakeClock()
    fn = clock.work(0.25)
    cand, base = compare(fn, fn, repeats=4, clock=clock)
    row = Row("self", "s/call", cand.median, base.median)
    assert row.ratio == pytest.approx(1.0)


def test_deliberately_slowed_candidate_shows_a_ratio_above_one():
    clock = FakeClock()
    cand, base = compare(clock.work(0.3), clock.work(0.1), repeats=3, clock=clock)
    assert Row("slowed", "s", cand.median, base.median).ratio == pytest.approx(3.0)


def test_slowed_candidate_on_the_real_clock():
    # Not a timing assertion on p4d code: it checks that the real clock path orders a 20 ms sleep above no-op.
    cand, base = compare(lambda: time.sleep(0.02), lambda: None, warmup=0, repeats=3)
    assert cand.median / max(base.median, 1e-9) > 1


def test_spread_is_relative_range():
    clock = FakeClock()
    durations = iter([1.0, 2.0, 3.0])
    t = time_fn(lambda: setattr(clock, "now", clock.now + next(durations)), warmup=0, repeats=3, clock=clock)
    assert t.median == 2.0 and t.spread == pytest.approx(1.0)


@pytest.mark.parametrize("op,target,fallback,value,verdict", [
    ("<=", 0.15, 0.25, 0.10, "met"),
    ("<=", 0.15, 0.25, 0.20, "met (fallback)"),
    ("<=", 0.15, 0.25, 0.30, "not met"),
    (">=", 0.8, None, 0.79, "not met"),
    (">=", 0.8, None, 0.81, "met"),
    (">=", 0.8, None, math.nan, "not met"),
    ("within", 0.1, None, 0.91, "met"),       # |0.91 - 1| = 0.09
    ("within", 0.1, None, 1.09, "met"),
    ("within", 0.1, None, 0.85, "not met"),
    ("within", 0.1, None, 1.12, "not met"),
])
def test_goal_verdicts(op, target, fallback, value, verdict):
    assert Goal(op, target, fallback).check(value) == verdict


def test_goal_rejects_unknown_op():
    with pytest.raises(ValueError, match="goal op"):
        Goal("~", 1.0)


def _result():
    return BenchResult(
        name="cache", size="tiny", shapes={"f4d": [4, 8, 8, 8, 64]},
        rows=[Row("int8 vs raw", "bytes/clip", 25.0, 100.0, unit="B", goal=Goal("<=", 0.15, 0.25),
                  spread=0.1, extra={"cosine": 0.9995})],
        notes=["synthetic"], machine={}, plot={"x": "ratio", "y": "cosine"},
    )


def test_json_report_round_trips():
    res = _result()
    text = results_to_json([res], {"cpu": "x"})
    back, machine = results_from_json(text)
    assert machine == {"cpu": "x"}
    assert back[0].to_dict() == res.to_dict()
    assert back[0].rows[0].ratio == 0.25 and back[0].rows[0].verdict == "met (fallback)"


def test_table_shows_absolutes_ratio_goal_and_verdict():
    table = format_table(_result())
    line = [l for l in table.splitlines() if l.startswith("int8 vs raw")][0]
    for piece in ("25", "100", "0.25", "<= 0.15", "met (fallback)", "cosine=0.9995"):
        assert piece in line


def test_write_report_writes_json_markdown_and_plot(tmp_path):
    paths = write_report([_result()], tmp_path, machine={"cpu": "c", "cores": 2, "ram_gib": 1.0, "gpu": None, "packages": {"p4d": "0"}})
    data = json.loads(paths["json"].read_text())
    assert data["results"][0]["rows"][0]["ratio"] == 0.25
    md = paths["markdown"].read_text()
    assert "cache-tiny.png" in md and "met (fallback)" in md
    png = paths["plot:cache"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_side_condition_overrides_a_met_ratio():
    row = Row("int8-token", "bytes", 10.0, 100.0, goal=Goal("<=", 0.15), checks={"cosine>=0.999": False})
    assert row.ratio == 0.1
    assert row.verdict == "not met (cosine>=0.999)"
    assert Row.from_dict(row.to_dict()).verdict == "not met (cosine>=0.999)"
