"""R4D-Bench as shipped (notes/release.md §6), read directly from its folder::

    R4D-Bench/
      test.json                      1,419 MCQ items (stibench 388, vlm4d 1,031)
      videos/<benchmark>/<name>.mp4  full videos
      clipped/<benchmark>/<name>.mp4 trimmed to the question's start time
      images/<benchmark>/<id>.png    the SoM image: the key frame with labelled boxes

One ``test.json`` item::

    {"id": ..., "video": "clipped/vlm4d/x.mp4", "source": "videos/vlm4d/x.mp4",
     "som_image": "images/vlm4d/17.png", "question": "... <obj_1> ...", "question_raw": "...",
     "options": [0, 1, "2", null], "answer": 0, "task": "Counting", "benchmark": "vlm4d"}

``id`` may be an int or a string; ``options`` mix ints, strings and None (shown as the release
normalises them: ``str(value)``, None as ""); ``answer`` is the option's **value** (possibly the integer
0), matched to the first option with the same normalised text (an answer among none of them scores 0,
as in the release); ``question`` falls back to ``question_raw``; ``task`` is the category's full name; Sta/Dyn follows the category,
not ``benchmark``. Paths are relative to the folder. ``video`` is used when the file exists, else
``source``; when decoding ``video`` fails at run time, ``source`` is tried. A missing video does not
drop an item: it is scored at run time like an unparsable answer (a random letter) and listed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from p4d.errors import ConfigError
from p4d.eval.items import CATEGORIES, LETTERS, R4D_CATEGORIES, Bench, Item, parse_category, parse_items
from p4d.eval.prompt import option_text

log = logging.getLogger(__name__)

BENCH_FILE = "test.json"


def is_r4d_folder(path: str | Path) -> bool:
    """A folder holding ``test.json`` (R4D-Bench as shipped)."""
    return Path(path).is_dir() and (Path(path) / BENCH_FILE).is_file()


def bench_file(path: str | Path) -> Path:
    """The file whose hash identifies the benchmark: ``test.json`` of a folder, else the file."""
    path = Path(path)
    return path / BENCH_FILE if path.is_dir() else path


def load_r4d(root: str | Path) -> Bench:
    """Items of an R4D-Bench folder; malformed items become :class:`ItemProblem` (by id)."""
    root = Path(root)
    file = root / BENCH_FILE
    if not file.is_file():
        raise ConfigError(f"benchmark {root}: no {BENCH_FILE}; expected the R4D-Bench folder "
                          f"(test.json, videos/, clipped/, images/)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"benchmark {file}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise ConfigError(f"benchmark {file}: expected a JSON list of items, got {type(data).__name__}")
    items, problems = parse_items(enumerate(data), lambda record, item_id: parse_r4d_item(record, item_id, root))
    if problems:
        log.warning("%s: %d malformed items skipped (%s)", file, len(problems), ", ".join(p.id for p in problems[:10]))
    return Bench(path=root, items=tuple(items), problems=tuple(problems))


def answer_index(options: list, answer) -> int | None:
    """Index of the answer as the release finds it: both sides normalised like ``test.json`` is
    (:func:`~p4d.eval.prompt.option_text`: ``str(value)``, None → ""), the first option whose text
    equals the answer's (0 matches "0"; 2 and "2" are the same); None when none does or the answer
    is None or empty (the release then has no target and scores the item 0)."""
    text = option_text(answer)
    texts = [option_text(o) for o in options]
    return texts.index(text) if text and text in texts else None


def parse_r4d_item(record: dict, item_id: str, root: Path) -> Item:
    """One ``test.json`` record as the release reads it: ``question``, else ``question_raw``;
    options shown as normalised text; an answer that is not among the options is kept, with no
    answer letter, and scores 0 (logged), as in the release."""
    question = record.get("question") or record.get("question_raw") or ""
    if not isinstance(question, str):
        raise ConfigError(f"question: expected a string, got {question!r:.80}")
    options = record.get("options")
    if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS):
        raise ConfigError(f"options: expected a list of 2 to 26 values, got {options!r:.80}")
    if any(isinstance(o, (dict, list)) for o in options):
        raise ConfigError(f"options: expected ints, floats, strings or null, got {options!r:.80}")
    if "answer" not in record:
        raise ConfigError("missing answer")
    index = answer_index(options, record["answer"])
    if index is None:
        log.warning("item %s: answer %r is not among the options %r; scored 0, as the release scores it",
                    item_id, record["answer"], options)
    task = record.get("task", record.get("category"))
    category = parse_category(task)
    if category not in R4D_CATEGORIES:
        raise ConfigError(f"task {task!r} is not one of R4D-Bench's nine categories")
    video, source = (_path(root, record.get(k)) for k in ("video", "source"))
    if video is None and source is None:
        raise ConfigError("missing video and source")
    chosen = video if video is not None and video.is_file() else (source or video)
    som = _path(root, record.get("som_image"))
    return Item(id=item_id, video=chosen, question=question, options=tuple(option_text(o) for o in options),
                answer=LETTERS[index] if index is not None else "", category=category,
                split=CATEGORIES[category].split, som_image=som,
                fallback_video=source if source is not None and source != chosen else None,
                benchmark=str(record.get("benchmark")) if record.get("benchmark") is not None else None,
                answer_value=record["answer"])


def _path(root: Path, value) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path
