"""The toy temporal benchmark (paper Sec. 6.3): "How many seconds have passed in the input video?"

One item per video, answered by the container's real duration (:func:`p4d.video.probe`), for
checking that a student reads time from its Timestamp Positional Encoding. MCQ by default: the true
duration plus distractors at fixed ratios (1/4, 1/3, 1/2, 2/3, 3/2, 2, 3, 4 times it), a seeded
choice per video, sorted ascending (so the right letter varies); every option is at least 1.33x
away from the next, so a model that reads time only roughly still tells them apart. ``numeric=True``
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


def duration_options(duration: float, num_options: int, rng: np.random.Generator) -> tuple[list[str], int]:
    """(option texts ascending, index of the true duration) for ``duration`` seconds."""
    if not 2 <= num_options <= len(DISTRACTOR_RATIOS) + 1:
        raise ConfigError(f"--num-options {num_options}: expected 2 to {len(DISTRACTOR_RATIOS) + 1}")
    ratios = rng.choice(len(DISTRACTOR_RATIOS), size=num_options - 1, replace=False)
    values = sorted([duration, *(duration * DISTRACTOR_RATIOS[r] for r in ratios)])
    for decimals in (1, 2, 3):
        texts = [f"{v:.{decimals}f} seconds" for v in values]
        if len(set(texts)) == len(texts):
            break
    return texts, values.index(duration)


def make_temporal(videos: str | Path, out: str | Path, *, num_options: int = 4, numeric: bool = False,
                  seed: int = 0, progress: bool = True) -> MadeItems:
    """Write one elapsed-time item per readable video to ``out`` (JSONL); unreadable videos are skipped."""
    from tqdm.auto import tqdm

    out = Path(out)
    paths = list_videos(videos)
    if not paths:
        raise ConfigError(f"VIDEOS {videos}: no video files found (looked for {', '.join(VIDEO_SUFFIXES)})")
    items, skipped = [], []
    for path in tqdm(paths, desc="make-temporal", unit="video", disable=not progress):
        item_id = f"time-{len(items):05d}-{path.stem}"
        try:
            duration = probe(path).duration
        except P4DError as exc:
            skipped.append(ItemProblem(str(path), str(exc)))
            log.warning("skipping %s: %s", path, exc)
            continue
        if not duration > 0:
            skipped.append(ItemProblem(str(path), "the container declares no duration"))
            continue
        rng = np.random.default_rng([seed, zlib.crc32(str(path.name).encode())])
        if numeric:
            options, answer = (), round(float(duration), 3)
        else:
            texts, k = duration_options(float(duration), num_options, rng)
            options, answer = tuple(texts), "ABCDEFGHI"[k]
        items.append(Item(id=item_id, video=path.resolve(), question=QUESTION, options=options, answer=answer,
                          category="TIME", split=DYNAMIC))
    write_items(items, out)
    log.info("wrote %d temporal items to %s (%d videos skipped)", len(items), out, len(skipped))
    return MadeItems(items=tuple(items), path=out, skipped=tuple(skipped))
