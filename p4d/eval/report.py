"""``p4d eval report RUN...``: several runs' results as markdown tables shaped like the paper's Tabs. 4-7.

A RUN is a predictions file written by ``p4d eval`` (or a folder holding ``*.jsonl`` predictions
files). Each run's header carries the preset saved with its student (see :mod:`p4d.eval.run`):
``strategy`` (Tab. 4), ``loss`` (Tab. 5), ``time_cue`` (Tab. 6), ``trainable`` (Tab. 7).

A table varies one key: a run enters it when that key is set and every other key is either unset or
at the default recipe (p4d, ld+ed, tpe, tune-p+llm), as in the paper's one-factor ablations. Rows
follow the paper's order (unknown values after it); several runs with the same value are told apart
by their file name. Baseline runs (``--baseline``) head every table; runs that fit no table are
listed under "Other runs". Under each table, the sha256 of the items file its runs were scored on
(each run's header), or every run's when they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p4d.errors import ConfigError
from p4d.eval.items import CATEGORIES, DYNAMIC, STATIC
from p4d.eval.predictions import read_predictions
from p4d.eval.scoring import Summary, summarize
from p4d.eval.table import format_table

STRATEGIES = ("zero-shot", "4d-sft", "4d-concat", "4d-pe", "p4d")
LOSSES = ("ld-only", "ld+d", "ld+d+f", "ld+d+f+m", "ed-only", "ld+ed")
TIME_CUES = ("none", "mark", "prompt", "tpe")
TRAINABLE = ("tune-all", "tune-v", "tune-p", "tune-llm", "tune-llm-lora", "tune-p+llm-lora", "tune-p+llm")
DEFAULTS = {"strategy": "p4d", "loss": "ld+ed", "time_cue": "tpe", "trainable": "tune-p+llm"}
TABLES = (
    ("Tab. 4: training strategy", "strategy", STRATEGIES),
    ("Tab. 5: distillation losses", "loss", LOSSES),
    ("Tab. 6: time cues", "time_cue", TIME_CUES),
    ("Tab. 7: trainable parts", "trainable", TRAINABLE),
)
BASELINE_NAMES = {"random": "Random", "first-option": "First option"}


@dataclass(frozen=True)
class Run:
    name: str
    header: dict
    summary: Summary

    @property
    def preset(self) -> dict:
        return {k: v for k, v in (self.header.get("preset") or {}).items() if v is not None}


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Read every predictions file named (folders: their ``*.jsonl`` files, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.jsonl"))
            if not found:
                raise ConfigError(f"RUN {p}: folder holds no *.jsonl predictions file")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError(f"RUN {p}: no such predictions file or folder")
    runs = []
    for f in files:
        header, records = read_predictions(f)
        summary = summarize(_triples(records.values(), f))
        runs.append(Run(name=f.stem, header=header, summary=summary))
    return runs


def _triples(records, path: Path):
    for r in records:
        category, split = r.get("category"), r.get("split")
        if category not in CATEGORIES or split not in (STATIC, DYNAMIC):
            raise ConfigError(f"RUN {path}: prediction {r.get('id')!r} has category {category!r} / split {split!r}")
        yield category, split, float(r["score"])


def format_report(runs: Sequence[Run]) -> str:
    """Markdown: one section per table with at least one model run, then "Other runs"."""
    baselines = [r for r in runs if r.header.get("baseline")]
    models = [r for r in runs if not r.header.get("baseline")]
    base_rows = [(BASELINE_NAMES.get(r.header["baseline"], r.header["baseline"]), r) for r in baselines]
    sections, placed = [], set()
    for title, key, order in TABLES:
        members = [r for r in models if _varies_only(r.preset, key)]
        if not members:
            continue
        placed.update(id(r) for r in members)
        members.sort(key=lambda r: (order.index(r.preset[key]) if r.preset[key] in order else len(order), r.preset[key], r.name))
        counts: dict[str, int] = {}
        for r in members:
            counts[r.preset[key]] = counts.get(r.preset[key], 0) + 1
        rows = base_rows + [(r.preset[key] if counts[r.preset[key]] == 1 else f"{r.preset[key]} ({r.name})", r) for r in members]
        sections.append(_section(title, key, rows))
    others = [r for r in models if id(r) not in placed]
    if others:
        rows = base_rows + [(f"{r.name} ({_describe(r.preset)})", r) for r in others]
        sections.append(_section("Other runs", "run", rows))
    if not sections and base_rows:
        sections.append(_section("Baselines", "baseline", base_rows))
    return "\n\n".join(sections) + "\n"


def _varies_only(preset: dict, key: str) -> bool:
    return key in preset and all(preset.get(k, DEFAULTS[k]) == DEFAULTS[k] for k in DEFAULTS if k != key)


def _describe(preset: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in preset.items()) or "no preset"


def _section(title: str, first_header: str, rows: list[tuple[str, Run]]) -> str:
    frames = [str(r.header.get("frames", "")) for _, r in rows]
    table = format_table([(name, r.summary) for name, r in rows], first_header=first_header, extra=[("# Frames", frames)])
    return f"### {title}\n\n{table}\n\n{_items_files(rows)}"


def _items_files(rows: list[tuple[str, Run]]) -> str:
    """The items file's sha256 the rows were scored on: one line when they agree, else one per row
    (rows scored on different files are not comparable)."""
    shas = {r.header.get("bench_sha256") or "unknown" for _, r in rows}
    if len(shas) == 1:
        return f"items file sha256: {shas.pop()}"
    return "items files differ (not comparable): " + "; ".join(
        f"{name}: {r.header.get('bench_sha256') or 'unknown'}" for name, r in rows)
