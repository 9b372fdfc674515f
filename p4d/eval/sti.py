"""STI-Bench as shipped (MINT-SJTU/STI-Bench), read directly from its folder::

    STI-Bench/
      qa.parquet          one row per MCQ item
      video/<Video>       the videos

``qa.parquet`` columns: ``Video`` (file name under ``video/``), ``ID``, ``Question``, ``Candidates`` (a
JSON object letter → text, A-E), ``Answer`` (a letter), ``Task`` (e.g. "Dimensional Measurement",
"Ego-Centric Orientation"), ``time_start``, ``time_end`` (seconds), ``Scene``. Reading it needs
pandas and pyarrow (``pip install 'p4d[eval]'``).

The official prompt (its ``opensource_test.py``)::

    From {time_start} s to {time_end} s. {Question}
    (A) ...
    (E) ...
    Please output only the option letter!

the times written as Python prints the parquet's values. Frames are sampled uniformly over the
window [time_start, time_end] (the timestamps stay the video's own, so they agree with the prompt);
the official Qwen script feeds the whole video at ≤ 30 frames instead. The official parser
(:func:`p4d.eval.parse.parse_sti_letter`) decides the strict score; an unparsed answer scores 0.
The per-task and per-scene report is printed as the official script prints it (:func:`format_sti_report`); the
script drops items whose video is missing or fails, p4d scores them 0 and lists them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from p4d.errors import ConfigError
from p4d.eval.items import CATEGORIES, LETTERS, Bench, Item, parse_items
from p4d.eval.scoring import Column
from p4d.video import Clip, decode_frames, probe

log = logging.getLogger(__name__)

QA_FILE = "qa.parquet"
VIDEO_DIR = "video"
COLUMNS = ("Video", "ID", "Question", "Candidates", "Answer", "Task", "time_start", "time_end", "Scene")
INSTRUCTION = "Please output only the option letter!"


def is_sti_bench(path: str | Path) -> bool:
    """A ``qa.parquet`` file, or a folder holding one."""
    path = Path(path)
    return (path.is_dir() and (path / QA_FILE).is_file()) or (path.is_file() and path.suffix.lower() == ".parquet")


def qa_file(path: str | Path) -> Path:
    path = Path(path)
    return path / QA_FILE if path.is_dir() else path


def read_qa(path: str | Path) -> list[dict]:
    """The rows of ``qa.parquet`` as dicts of Python values; ConfigError naming the file when it cannot
    be read or lacks a column."""
    file = qa_file(path)
    try:
        import pandas as pd
    except ImportError as exc:
        raise ConfigError(f"benchmark {file}: reading STI-Bench needs pandas and pyarrow; "
                          f"pip install 'p4d[eval]'") from exc
    try:
        frame = pd.read_parquet(file)
    except ImportError as exc:
        raise ConfigError(f"benchmark {file}: reading parquet needs pyarrow; pip install 'p4d[eval]'") from exc
    except Exception as exc:  # pyarrow raises its own error types for a damaged file
        raise ConfigError(f"benchmark {file}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"benchmark {file}: missing column(s) {', '.join(missing)}; expected STI-Bench's "
                          f"{', '.join(COLUMNS)}")
    return frame.to_dict(orient="records")


def load_sti(path: str | Path) -> Bench:
    """Items of STI-Bench (folder or ``qa.parquet``); malformed rows become problems (by id)."""
    file = qa_file(path)
    rows = read_qa(file)
    ids = [str(r["ID"]) for r in rows]
    unique = len(set(ids)) == len(ids)
    for r in rows:  # ID is unique per video in the official results; keep it as the id when it is unique overall
        r["id"] = str(r["ID"]) if unique else f"{r['Video']}#{r['ID']}"
    items, problems = parse_items(enumerate(rows), lambda row, item_id: parse_sti_row(row, item_id, file.parent))
    if problems:
        log.warning("%s: %d malformed items skipped (%s)", file, len(problems), ", ".join(p.id for p in problems[:10]))
    return Bench(path=Path(path), items=tuple(items), problems=tuple(problems))


def candidates(value) -> dict[str, str]:
    """``Candidates`` as {letter: text}: a JSON object string (as shipped) or a dict."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Candidates: not valid JSON ({exc.msg})") from exc
    if not isinstance(value, dict) or not 2 <= len(value) <= len(LETTERS):
        raise ConfigError(f"Candidates: expected a JSON object letter -> text, got {value!r:.80}")
    keys = [str(k) for k in value]
    if keys != list(LETTERS[: len(keys)]):
        raise ConfigError(f"Candidates: expected keys A, B, C, ... in order, got {keys}")
    return {str(k): v for k, v in value.items()}


def sti_prompt(question: str, options: dict, time_start, time_end) -> str:
    """The official prompt, byte for byte (values printed with ``str``, as the script's f-string does)."""
    lines = "\n".join(f"({k}) {v}" for k, v in options.items())
    return f"From {time_start} s to {time_end} s. {question}\n{lines}\n{INSTRUCTION}"


def parse_sti_row(row: dict, item_id: str, root: Path) -> Item:
    question = row.get("Question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError("missing Question")
    options = candidates(row.get("Candidates"))
    answer = str(row.get("Answer") or "").strip()
    if answer not in options:
        raise ConfigError(f"Answer {row.get('Answer')!r} is not among the Candidates' letters {''.join(options)}")
    start, end = row.get("time_start"), row.get("time_end")
    try:
        window = (float(start), float(end))
    except (TypeError, ValueError):
        raise ConfigError(f"time_start/time_end: expected numbers, got {start!r}, {end!r}") from None
    if not (math.isfinite(window[0]) and math.isfinite(window[1]) and 0 <= window[0] <= window[1]):
        raise ConfigError(f"time window [{start}, {end}] s: expected 0 <= time_start <= time_end")
    video = row.get("Video")
    if not isinstance(video, str) or not video.strip():
        raise ConfigError("missing Video")
    return Item(id=item_id, video=root / VIDEO_DIR / video, question=question,
                options=tuple(str(v) for v in options.values()), answer=answer, category="STI",
                split=CATEGORIES["STI"].split, benchmark=str(row.get("Scene") or ""), official="sti",
                task=str(row.get("Task") or ""), prompt=sti_prompt(question, options, start, end), window=window)


def window_indices(num_frames: int, fps: float, window: tuple[float, float], n: int) -> np.ndarray:
    """(n,) frame indices spread uniformly over the frames whose time i / fps lies in [start, end]
    (the frame nearest the window when none does); a window longer than the video is cut at its end."""
    if fps <= 0:
        raise ConfigError("the video declares no frame rate; cannot place the time window")
    start, end = window
    last = num_frames - 1
    lo = min(max(math.ceil(start * fps - 1e-6), 0), last)
    hi = min(max(math.floor(end * fps + 1e-6), lo), last)
    return np.rint(np.linspace(lo, hi, n)).astype(np.int64)


def sample_window(path: str | Path, num_frames: int, window: tuple[float, float]) -> Clip:
    """N frames (N, H, W, 3) of ``path`` sampled uniformly over ``window`` seconds, with their timestamps."""
    info = probe(path)
    return decode_frames(path, window_indices(info.num_frames, info.fps, window, num_frames))


def summarize_tasks(scored: Iterable[tuple[str, float]]) -> dict[str, Column]:
    """{"Overall": Column, task: Column, ...} from (task, score) pairs."""
    columns: dict[str, Column] = {"Overall": Column()}
    for task, score in scored:
        for name in ("Overall", task):
            col = columns.setdefault(name, Column())
            col.count += 1
            col.total += float(score)
    return columns


def format_sti_report(columns: dict[str, Column], title: str = "Performance Report",
                      scenes: dict[str, Column] | None = None) -> str:
    """The official script's text report: total, overall accuracy, each task's accuracy best first,
    then each scene's (ties by name; percent, two decimals)."""
    overall = columns["Overall"]
    lines = [f"=== {title} ===", f"Total samples: {overall.count}", f"Overall accuracy: {_pct(overall)}", "",
             "Accuracy by task:", *_ranked(columns)]
    if scenes:
        lines += ["", "Accuracy by scene:", *_ranked(scenes)]
    return "\n".join(lines)


def _ranked(columns: dict[str, Column]) -> list[str]:
    ranked = sorted(((n, c) for n, c in columns.items() if n != "Overall" and c.count),
                    key=lambda nc: (-nc[1].total / nc[1].count, nc[0]))
    return [f"  {n}: {_pct(c)}" for n, c in ranked]


def _pct(col: Column) -> str:
    return f"{col.total / col.count:.2%}" if col.count else "–"


def format_sti_table(rows: Sequence[tuple[str, dict[str, Column]]], extra: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """Markdown: one row per (name, task columns): Overall then every task (sorted by name), in
    percent with one decimal, and an item-count row."""
    tasks = sorted({t for _, cols in rows for t in cols if t != "Overall"})
    names = ["Overall", *tasks]
    header = ["Method", *(h for h, _ in extra), *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r, (name, cols) in enumerate(rows):
        cells = [name, *(v[r] for _, v in extra),
                 *(f"{cols[t].accuracy:.1f}" if t in cols and cols[t].count else "–" for t in names)]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        lines.append("| " + " | ".join(["# items", *("" for _ in extra),
                                        *(str(rows[0][1][t].count if t in rows[0][1] else 0) for t in names)]) + " |")
    return "\n".join(lines)
