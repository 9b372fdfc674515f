"""Benchmark items in the R4D-Bench form: loading, normalising and validating them.

A benchmark is a JSON file (a list of items, or ``{"items": [...]}``) or a JSONL file (one item per
line). One item::

    {"id": "r4d-0001",
     "video": "videos/0001.mp4",                 # relative to the benchmark file's folder, or absolute
     "question": "How far did <obj_1> move?",
     "options": ["0.5 m", "1 m", "2 m", "4 m"],  # or ["A. 0.5 m", ...] or {"A": "0.5 m", ...}
     "answer": "C",                              # a letter, "(C)", or the option text itself
     "category": "DP",                           # a code or the full name ("Displacement & Path Length")
     "split": "dynamic",                         # optional; must agree with the category
     "regions": [{"label": "obj_1", "box": [x0, y0, x1, y1]}]}

Items without options and with a number as answer are numeric (scored by MRA). Regions live on the
first frame, in its pixels: ``box`` [x0, y0, x1, y1] (x1/y1 exclusive), ``bbox`` [x, y, w, h] (COCO),
``mask`` (COCO RLE ``{"size": [h, w], "counts": ...}``) or ``polygon`` (COCO polygon list). The
question refers to them as ``<obj_1>``, ``<obj_2>``, ...

Categories (paper Tab. 3 / the published 12-column table): static VG, DM, SR; dynamic R, C, T, FP,
SA, DP; plus ``TIME`` (elapsed-time items of the toy temporal benchmark, :mod:`p4d.eval.temporal`),
a dynamic category outside R4D-Bench's nine, and ``STI`` (STI-Bench items, :mod:`p4d.eval.sti`, whose
own task names are kept in ``task``).

:func:`load_bench` never raises on a bad item: it returns the good items and one
:class:`ItemProblem` (id + reason) per malformed one, so the rest can run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p4d.errors import ConfigError
from p4d.video.marks import Region, decode_rle, polygon_mask

log = logging.getLogger(__name__)

STATIC, DYNAMIC = "static", "dynamic"
SPLITS = (STATIC, DYNAMIC)


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    split: str


#: R4D-Bench's nine categories in the published column order (full names as the released
#: ``test.json`` writes them in ``task``), then p4d's extra TIME category. Sta/Dyn is by category.
CATEGORIES: dict[str, Category] = {c.code: c for c in (
    Category("VG", "3D Video Grounding", STATIC),
    Category("DM", "Dimensional Measurement", STATIC),
    Category("SR", "Spatial Relation", STATIC),
    Category("R", "Rotational", DYNAMIC),
    Category("C", "Counting", DYNAMIC),
    Category("T", "Translational", DYNAMIC),
    Category("FP", "False Positives", DYNAMIC),
    Category("SA", "Speed & Acceleration", DYNAMIC),
    Category("DP", "Displacement & Path Length", DYNAMIC),
    Category("TIME", "Elapsed Time", DYNAMIC),
    Category("STI", "STI-Bench", DYNAMIC),
)}
R4D_CATEGORIES = ("VG", "DM", "SR", "R", "C", "T", "FP", "SA", "DP")

_ALIASES = {
    "3d video grounding": "VG", "video grounding": "VG",
    "dimension measurement": "DM", "dimensional measurement": "DM",
    "spatial relationship": "SR", "spatial relation": "SR", "spatial relations": "SR",
    "rotational": "R", "rotation": "R", "counting": "C", "count": "C",
    "translational": "T", "translation": "T", "false positive": "FP", "false positives": "FP",
    "speed & acceleration": "SA", "speed and acceleration": "SA",
    "displacement & path length": "DP", "displacement and path length": "DP",
    "elapsed time": "TIME", "temporal": "TIME", "time": "TIME",
}
LETTERS = string.ascii_uppercase
_OBJ_REF = re.compile(r"<\s*(obj_\d+)\s*>", re.IGNORECASE)
_LETTER_PREFIX = re.compile(r"^\s*[\(\[]?([A-Za-z])\s*[\)\]\.:]\s*(.*)$", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class RegionSpec:
    """One region prompt as written in the item; turned into a :class:`Region` for a frame size."""

    label: str
    box: tuple[float, float, float, float] | None = None
    rle: dict | None = None
    polygon: list | None = None

    def to_region(self, shape: tuple[int, int]) -> Region:
        """The :class:`p4d.video.marks.Region` on a frame of ``shape = (H, W)``."""
        if self.box is not None:
            return Region(label=self.label, box=self.box)
        if self.rle is not None:
            mask = decode_rle(self.rle)
            if mask.shape != tuple(shape):
                raise ConfigError(f"region {self.label!r}: RLE mask size {list(mask.shape)} does not match the first frame {list(shape)} (h, w)")
            return Region(label=self.label, mask=mask)
        return Region(label=self.label, mask=polygon_mask(self.polygon, shape))

    def to_json(self) -> dict:
        out: dict = {"label": self.label}
        if self.box is not None:
            out["box"] = list(self.box)
        elif self.rle is not None:
            out["mask"] = self.rle
        else:
            out["polygon"] = self.polygon
        return out


@dataclass(frozen=True, kw_only=True)
class Item:
    """A validated benchmark item. ``answer`` is a letter for MCQ items, a float for numeric ones.

    R4D-Bench as shipped (:mod:`p4d.eval.r4d`) adds ``som_image`` (the SoM key frame, a separate
    first image), ``fallback_video`` (the full ``source`` video, tried when ``video`` fails),
    ``benchmark`` (stibench / vlm4d) and ``answer_value`` (the option's value as written); an answer
    among none of the options is kept as ``answer=""`` (scored 0, as the release scores it).
    STI-Bench (:mod:`p4d.eval.sti`) sets ``official="sti"`` (its parser), ``task`` (its task name),
    ``prompt`` (its official prompt text) and ``window`` ((time_start, time_end) seconds, where frames
    are sampled).
    """

    id: str
    video: Path
    question: str
    options: tuple[str, ...]
    answer: str | float
    category: str
    split: str
    regions: tuple[RegionSpec, ...] = ()
    som_image: Path | None = None
    fallback_video: Path | None = None
    benchmark: str | None = None
    answer_value: object = None
    official: str = "r4d"
    task: str | None = None
    prompt: str | None = None
    window: tuple[float, float] | None = None

    @property
    def is_numeric(self) -> bool:
        return not self.options

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    def to_json(self) -> dict:
        return {"id": self.id, "video": str(self.video), "question": self.question, "options": list(self.options),
                "answer": self.answer, "category": self.category, "split": self.split,
                "regions": [r.to_json() for r in self.regions]}


@dataclass(frozen=True)
class ItemProblem:
    """A malformed item: its id (``#k`` = k-th record when it has none) and what is wrong."""

    id: str
    reason: str


@dataclass(frozen=True)
class Bench:
    path: Path
    items: tuple[Item, ...]
    problems: tuple[ItemProblem, ...]


def parse_items(numbered, parse) -> tuple[list, list[ItemProblem]]:
    """``parse(record, item_id)`` over ``(index, record)`` pairs: a record that is not a JSON object,
    has no id or repeats an earlier id, or that ``parse`` refuses (ConfigError), becomes an
    :class:`ItemProblem` labelled by its id (or ``#index+1``); the rest are returned in order."""
    items, problems, seen = [], [], set()
    for k, record in numbered:
        raw_id = record.get("id") if isinstance(record, dict) else None
        item_id = str(raw_id).strip() if raw_id is not None else ""
        try:
            if not isinstance(record, dict):
                raise ConfigError(f"expected a JSON object, got {type(record).__name__}")
            if not item_id:
                raise ConfigError("missing id")
            if item_id in seen:
                raise ConfigError(f"duplicate id (an earlier item has id {item_id!r})")
            items.append(parse(record, item_id))
            seen.add(item_id)
        except ConfigError as exc:
            problems.append(ItemProblem(item_id or f"#{k + 1}", str(exc)))
    return items, problems


def load_bench(path: str | Path, *, check_videos: bool = True) -> Bench:
    """Read a JSON/JSONL benchmark; good items plus one :class:`ItemProblem` per malformed item.

    Raises ConfigError (naming the file) only when the file itself is unreadable or not JSON.
    """
    path = Path(path)
    records, problems = _read_records(path)
    numbered = [(k, record) for k, record in enumerate(records) if record is not None]  # None: unreadable line
    items, bad = parse_items(numbered, lambda record, _: parse_item(record, base=path.parent, check_video=check_videos))
    problems.extend(bad)
    for p in problems:
        log.debug("%s: item %s skipped: %s", path, p.id, p.reason)
    if problems:
        log.warning("%s: %d malformed items skipped (%s)", path, len(problems), ", ".join(p.id for p in problems[:10])
                    + (", ..." if len(problems) > 10 else ""))
    return Bench(path=path, items=tuple(items), problems=tuple(problems))


def _read_records(path: Path) -> tuple[list, list[ItemProblem]]:
    if not path.is_file():
        raise ConfigError(f"benchmark {path}: no such file; expected a JSON or JSONL file of items")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        records, problems = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                records.append(None)
                problems.append(ItemProblem(f"line {n}", f"not valid JSON ({exc.msg})"))
        return records, problems
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"benchmark {path}: not valid JSON ({exc.msg} at line {exc.lineno}); expected a list of items or JSONL") from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise ConfigError(f"benchmark {path}: expected a JSON list of items (or {{'items': [...]}}), got {type(data).__name__}")
    return data, []


def parse_item(record: dict, *, base: Path, check_video: bool = True) -> Item:
    """One record -> :class:`Item`; ConfigError with the reason if it is malformed."""
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError("missing question")
    category = parse_category(record.get("category"))
    split = CATEGORIES[category].split
    if record.get("split") is not None and str(record["split"]).strip().lower() != split:
        raise ConfigError(f"split {record['split']!r} disagrees with category {category} ({split})")
    options = parse_options(record.get("options"))
    if "answer" not in record or record["answer"] is None or (isinstance(record["answer"], str) and not record["answer"].strip()):
        raise ConfigError("missing answer")
    answer = parse_answer(record["answer"], options)
    video = record.get("video")
    if not isinstance(video, str) or not video.strip():
        raise ConfigError("missing video")
    video_path = Path(video).expanduser()
    if not video_path.is_absolute():
        video_path = base / video_path
    if check_video and not video_path.is_file():
        raise ConfigError(f"video not found: {video_path}")
    regions = parse_regions(record.get("regions") or [])
    labels = {r.label.lower() for r in regions}
    for ref in _OBJ_REF.findall(question):
        if ref.lower() not in labels:
            raise ConfigError(f"question refers to <{ref}> but no region has label {ref!r}")
    return Item(id=str(record["id"]).strip(), video=video_path, question=question, options=options,
                answer=answer, category=category, split=split, regions=regions)


def parse_category(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"unknown category {value!r}; expected one of {', '.join(CATEGORIES)}")
    text = value.strip()
    if text.upper() in CATEGORIES:
        return text.upper()
    code = _ALIASES.get(" ".join(text.lower().split()))
    if code is None:
        raise ConfigError(f"unknown category {value!r}; expected one of {', '.join(CATEGORIES)} (or their names)")
    return code


def parse_options(value) -> tuple[str, ...]:
    """Options as a tuple of texts (letter prefixes like "A. ", "(B) " removed when they run A, B, C...)."""
    if value is None or value == [] or value == {}:
        return ()
    if isinstance(value, dict):
        keys = [str(k).strip().upper() for k in value]
        if keys != list(LETTERS[: len(keys)]):
            raise ConfigError(f"options: expected keys A, B, C, ... in order, got {list(value)}")
        texts = [str(v) for v in value.values()]
    elif isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        texts = [str(v) for v in value]
        prefixes = [_LETTER_PREFIX.match(t) for t in texts]
        if all(m and m.group(1).upper() == LETTERS[i] for i, m in enumerate(prefixes)):
            texts = [m.group(2) for m in prefixes]
    else:
        raise ConfigError(f"options: expected a list of strings or a dict of letter -> text, got {value!r:.80}")
    texts = [t.strip() for t in texts]
    if not 2 <= len(texts) <= len(LETTERS):
        raise ConfigError(f"options: expected 2 to 26 options, got {len(texts)}")
    if any(not t for t in texts) or len({t.lower() for t in texts}) != len(texts):
        raise ConfigError(f"options: expected distinct non-empty options, got {texts}")
    return tuple(texts)


def parse_answer(value, options: tuple[str, ...]) -> str | float:
    """A letter among the options' letters (MCQ) or a finite float (numeric item)."""
    if not options:
        number = _as_number(value)
        if number is None:
            raise ConfigError(f"answer {value!r}: an item without options needs a numeric answer")
        return number
    text = str(value).strip()
    letters = LETTERS[: len(options)]
    bare = text.strip("()[] .:").upper()
    if len(bare) == 1 and bare in LETTERS:
        if bare in letters:
            return bare
        raise ConfigError(f"answer {value!r} is not among the options (letters {letters[0]}-{letters[-1]})")
    for letter, option in zip(letters, options):
        if text.lower() == option.lower():
            return letter
    raise ConfigError(f"answer {value!r} is not among the options {list(options)}")


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_regions(value) -> tuple[RegionSpec, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"regions: expected a list, got {type(value).__name__}")
    specs, seen = [], set()
    for k, r in enumerate(value):
        if not isinstance(r, dict):
            raise ConfigError(f"regions[{k}]: expected an object with label and box/bbox/mask/polygon")
        label = str(r.get("label") or f"obj_{k + 1}").strip().strip("<>")
        if label.lower() in seen:
            raise ConfigError(f"regions: label {label!r} appears twice")
        seen.add(label.lower())
        specs.append(_region_spec(label, r, k))
    return tuple(specs)


def _region_spec(label: str, r: dict, k: int) -> RegionSpec:
    given = [key for key in ("box", "bbox", "mask", "polygon") if r.get(key) is not None]
    if len(given) != 1:
        raise ConfigError(f"regions[{k}] ({label}): expected exactly one of box, bbox, mask, polygon; got {given or 'none'}")
    key = given[0]
    if key in ("box", "bbox"):
        coords = [_as_number(v) for v in r[key]] if isinstance(r[key], list) else []
        if len(coords) != 4 or any(c is None for c in coords):
            raise ConfigError(f"regions[{k}] ({label}): {key} must be 4 numbers, got {r[key]!r}")
        if key == "bbox":
            x, y, w, h = coords
            coords = [x, y, x + w, y + h]
        x0, y0, x1, y1 = coords
        if not (x1 > x0 and y1 > y0 and x0 >= 0 and y0 >= 0):
            raise ConfigError(f"regions[{k}] ({label}): {key} {r[key]!r} is empty or negative; expected x1 > x0 >= 0, y1 > y0 >= 0")
        return RegionSpec(label=label, box=(x0, y0, x1, y1))
    if key == "mask":
        decode_rle(r["mask"])  # validates size/counts now, so a bad mask is reported by id
        return RegionSpec(label=label, rle=r["mask"])
    polygon_mask(r["polygon"], (2, 2))  # validates the structure
    return RegionSpec(label=label, polygon=r["polygon"])


def write_items(items: Sequence[Item], path: str | Path) -> Path:
    """Write items as JSONL, video paths relative to the output file's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            record = item.to_json()
            record["video"] = os.path.relpath(item.video.resolve(), base)
            f.write(json.dumps(record, default=_json_default) + "\n")
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
