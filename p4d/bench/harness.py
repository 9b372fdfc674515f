"""The bench harness: time a candidate and its baseline side by side, report ratios.

Every figure p4d prints is a ratio to a baseline measured in the same run, with the absolute
numbers beside it and the machine it ran on. A benchmark builds a :class:`BenchResult` of
:class:`Row` s; :func:`format_table` prints it and :func:`write_report` writes JSON + markdown.

Timing: :func:`time_fn` runs ``warmup`` untimed calls then ``repeats`` timed ones and keeps
every sample; :func:`compare` interleaves candidate and baseline repeats so that drift on a
shared machine hits both alike. The clock is injectable, which is how the harness is tested
without asserting on wall-clock time.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

Clock = Callable[[], float]

#: ``within``: the ratio is 1 within ± target (e.g. a measurement against a model's prediction).
OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b,
       "within": lambda a, b: abs(a - 1) <= b}


@dataclass(frozen=True)
class Timing:
    """Seconds per call over the timed repeats."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median: the relative spread of the repeats."""
        med = self.median
        return (max(self.samples) - min(self.samples)) / med if med > 0 else 0.0


def time_fn(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 3, clock: Clock = time.perf_counter) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return Timing(tuple(samples))


def compare(candidate: Callable[[], Any], baseline: Callable[[], Any], *, warmup: int = 1, repeats: int = 3,
            clock: Clock = time.perf_counter) -> tuple[Timing, Timing]:
    """Time candidate and baseline with interleaved repeats; returns (candidate, baseline)."""
    for _ in range(warmup):
        candidate()
        baseline()
    cand, base = [], []
    for _ in range(repeats):
        for fn, out in ((candidate, cand), (baseline, base)):
            t0 = clock()
            fn()
            out.append(clock() - t0)
    return Timing(tuple(cand)), Timing(tuple(base))


def ratio(candidate: float, baseline: float) -> float:
    """candidate / baseline, nan when the baseline is zero."""
    return candidate / baseline if baseline else math.nan


@dataclass(frozen=True)
class Goal:
    """A target the ratio is held to, e.g. ``Goal("<=", 0.15)``; ``fallback`` is the must-meet bound."""

    op: str
    target: float
    fallback: float | None = None

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"goal op must be one of {sorted(OPS)}, got {self.op!r}")

    def check(self, value: float) -> str:
        """'met', 'met (fallback)', 'not met'."""
        if math.isnan(value):
            return "not met"
        if OPS[self.op](value, self.target):
            return "met"
        if self.fallback is not None and OPS[self.op](value, self.fallback):
            return "met (fallback)"
        return "not met"

    def __str__(self) -> str:
        fb = f" (at least {self.op} {self.fallback:g})" if self.fallback is not None else ""
        if self.op == "within":
            return f"1 ± {self.target:g}{fb}"
        return f"{self.op} {self.target:g}{fb}"


@dataclass
class Row:
    """One line of a result table: candidate vs baseline on one metric."""

    entry: str                 # what is measured, e.g. "int8-channel vs raw float32"
    metric: str                # e.g. "bytes/clip", "clips/s"
    candidate: float
    baseline: float
    unit: str = ""
    goal: Goal | None = None
    spread: float | None = None  # relative spread of the candidate's repeats
    extra: dict[str, Any] = field(default_factory=dict)  # more absolute numbers (cosine, MB/s, ...)
    checks: dict[str, bool] = field(default_factory=dict)  # side conditions of the goal, e.g. {"cosine>=0.999": True}

    @property
    def ratio(self) -> float:
        return ratio(self.candidate, self.baseline)

    @property
    def verdict(self) -> str:
        """The goal's verdict on the ratio; 'not met (...)' when a side condition fails."""
        if self.goal is None:
            return ""
        failed = [name for name, ok in self.checks.items() if not ok]
        return f"not met ({', '.join(failed)})" if failed else self.goal.check(self.ratio)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["goal"] = None if self.goal is None else asdict(self.goal)
        d["ratio"] = self.ratio
        d["verdict"] = self.verdict
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Row:
        d = {k: v for k, v in d.items() if k not in ("ratio", "verdict")}
        goal = d.pop("goal")
        return cls(goal=None if goal is None else Goal(**goal), **d)


@dataclass
class BenchResult:
    """One benchmark's table, with the shapes it used and the machine it ran on."""

    name: str
    size: str
    shapes: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # or "not built: issue #N ..."
    # How to plot the rows: {"x": key, "y": key, "xlabel", "ylabel", "group": key or None, "logx": bool};
    # a key is "candidate", "baseline", "ratio" or a name in Row.extra.
    plot: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows"] = [r.to_dict() for r in self.rows]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BenchResult:
        d = dict(d)
        d["rows"] = [Row.from_dict(r) for r in d["rows"]]
        return cls(**d)


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1e5 or ax < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def format_table(result: BenchResult) -> str:
    """A fixed-width table: entry, metric, candidate, baseline, ratio, goal, verdict, extras."""
    head = f"== p4d bench {result.name} --size {result.size} =="
    lines = [head]
    if result.status != "ok":
        lines.append(result.status)
        return "\n".join(lines)
    if result.shapes:
        lines.append("shapes: " + ", ".join(f"{k}={v}" for k, v in result.shapes.items()))
    cols = ["entry", "metric", "candidate", "baseline", "ratio", "spread", "goal", "verdict", "also"]
    table = [cols]
    for r in result.rows:
        also = ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in r.extra.items())
        table.append([
            r.entry, r.metric + (f" [{r.unit}]" if r.unit else ""), _fmt(r.candidate), _fmt(r.baseline),
            _fmt(r.ratio), "" if r.spread is None else f"±{r.spread * 100:.0f}%", "" if r.goal is None else str(r.goal),
            r.verdict, also,
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def results_to_json(results: list[BenchResult], machine: dict) -> str:
    return json.dumps({"machine": machine, "results": [r.to_dict() for r in results]}, indent=2, default=str)


def results_from_json(text: str) -> tuple[list[BenchResult], dict]:
    d = json.loads(text)
    return [BenchResult.from_dict(r) for r in d["results"]], d["machine"]
