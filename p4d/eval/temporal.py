"""The toy temporal benchmark (paper Sec. 6.3): "How many seconds have passed in the input video?"

One item per video, answered by the container's real duration (:func:`p4d.video.probe`), for
checking that a student reads time from its Timestamp Positional Encoding. MCQ by default: the true
duration plus distractors at fixed ratios (1/4, 1/3, 1/2, 2/3, 3/2, 2, 3, 4 times it), sorted
ascending; every option is at least 1.33x away from the next, so a model that reads time only roughly
still tells them apart. The answer's position is balanced over the letters: each feasible position
(every one for 2-5 options) is the answer equally often (±1), in a seeded order, and the distractors
below / above the truth are a seeded choice per video, so no letter beats chance (issue 29: unbalanced,
"always B" scored 56 % of a 4-option set). ``numeric=True``
writes open questions scored by MRA instead. Items use category ``TIME`` (dynamic).

Example::

    p4d eval make-temporal demo/videos temporal.jsonl
    p4d eval temporal.jsonl --model runs/student/export
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p4d.errors import ConfigError, P4DError
from p4d.eval.items import DYNAMIC, Item, ItemProblem, write_items
from p4d.video import probe

log = logging.getLogger(__name__)

QUESTION = "How many seconds have passed in the input video?"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts")
DISTRACTOR_RATIOS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 2, 2, 3, 4)


@dataclass(frozen=True)
class MadeItems:
    """What a make-* command wrote: the items, the file, and the inputs it skipped (with reasons)."""

    items: tuple[Item, ...]
    path: Path
    skipped: tuple[ItemProblem, ...]


def list_videos(videos: str | Path) -> list[Path]:
    """Video files under a folder (recursive, sorted) or listed in a text file (one path per line,
    relative to the list's folder)."""
    videos = Path(videos)
    if videos.is_dir():
        return sorted(p for p in videos.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if videos.is_file():
        lines = [line.strip() for line in videos.read_text(encoding="utf-8").splitlines()]
        return [p if p.is_absolute() else videos.parent / p for p in (Path(s) for s in lines if s and not s.startswith("#"))]
    raise ConfigError(f"VIDEOS {videos}: no such folder or file; expected a folder of videos or a text file of paths")


def answer_positions(num_items: int, num_options: int, rng: np.random.Generator) -> list[int]:
    """Where the true duration sits among the sorted options, per item: every feasible position equally
    often (counts differ by at most one), in a seeded random order. Feasible: at most four distractors
    below the truth and four above (:data:`DISTRACTOR_RATIOS`), so 2-5 options allow every position and
    9 options only the middle one."""
    _check_num_options(num_options)
    below = len([r for r in DISTRACTOR_RATIOS if r < 1])
    above = len(DISTRACTOR_RATIOS) - below
    feasible = list(range(max(0, num_options - 1 - above), min(below, num_options - 1) + 1))
    cycle = [feasible[k % len(feasible)] for k in range(num_items)]
    return [int(p) for p in rng.permutation(cycle)] if cycle else []


def duration_options(duration: float, num_options: int, rng: np.random.Generator, position: int) -> tuple[list[str], int]:
    """(option texts ascending, index of the true duration = ``position``) for ``duration`` seconds:
    ``position`` distractors drawn (seeded) from the ratios below 1, the rest from those above."""
    _check_num_options(num_options)
    low = [r for r in DISTRACTOR_RATIOS if r < 1]
    high = [r for r in DISTRACTOR_RATIOS if r > 1]
    n_high = num_options - 1 - position
    if not (0 <= position <= len(low) and 0 <= n_high <= len(high)):
        raise ConfigError(f"answer position {position} is impossible with {num_options} options")
    ratios = [low[i] for i in rng.choice(len(low), size=position, replace=False)]
    ratios += [high[i] for i in rng.choice(len(high), size=n_high, replace=False)]
    values = sorted([duration, *(duration * r for r in ratios)])
    for decimals in (1, 2, 3):
        texts = [f"{v:.{decimals}f} seconds" for v in values]
        if len(set(texts)) == len(texts):
            break
    return texts, values.index(duration)


def _check_num_options(num_options: int) -> None:
    if not 2 <= num_options <= len(DISTRACTOR_RATIOS) + 1:
        raise ConfigError(f"--num-options {num_options}: expected 2 to {len(DISTRACTOR_RATIOS) + 1}")


def make_temporal(videos: str | Path, out: str | Path, *, num_options: int = 4, numeric: bool = False,
                  seed: int = 0, progress: bool = True) -> MadeItems:
    """Write one elapsed-time item per readable video to ``out`` (JSONL); unreadable videos are skipped.
    MCQ answers are balanced over the letters (:func:`answer_positions`)."""
    from tqdm.auto import tqdm

    out = Path(out)
    paths = list_videos(videos)
    if not paths:
        raise ConfigError(f"VIDEOS {videos}: no video files found (looked for {', '.join(VIDEO_SUFFIXES)})")
    if not numeric:
        _check_num_options(num_options)
    readable, skipped = [], []
    for path in tqdm(paths, desc="make-temporal", unit="video", disable=not progress):
        try:
            duration = probe(path).duration
        except P4DError as exc:
            skipped.append(ItemProblem(str(path), str(exc)))
            log.warning("skipping %s: %s", path, exc)
            continue
        if not duration > 0:
            skipped.append(ItemProblem(str(path), "the container declares no duration"))
            continue
        readable.append((path, float(duration)))
    positions = [] if numeric else answer_positions(len(readable), num_options, np.random.default_rng([seed, len(readable)]))
    items = []
    for k, (path, duration) in enumerate(readable):
        if numeric:
            options, answer = (), round(duration, 3)
        else:
            rng = np.random.default_rng([seed, zlib.crc32(str(path.name).encode())])
            texts, index = duration_options(duration, num_options, rng, positions[k])
            options, answer = tuple(texts), "ABCDEFGHI"[index]
        items.append(Item(id=f"time-{k:05d}-{path.stem}", video=path.resolve(), question=QUESTION, options=options,
                          answer=answer, category="TIME", split=DYNAMIC))
    write_items(items, out)
    log.info("wrote %d temporal items to %s (%d videos skipped)", len(items), out, len(skipped))
    return MadeItems(items=tuple(items), path=out, skipped=tuple(skipped))
