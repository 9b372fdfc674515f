"""Own region benchmarks: MCQ items + first-frame boxes/masks -> items of this format + an HTML SoM sheet.

Inputs:

- VQA: a JSON/JSONL file of items in :mod:`p4d.eval.items` form without ``regions`` (question
  text refers to ``<obj_1>``, ...); videos relative to the VQA file's folder.
- BOXES: a JSON/JSONL file of ``{"id": ITEM_ID, "regions": [{"label": "obj_1", "box": [...]}, ...]}``
  records, or one JSON object ``{ITEM_ID: [regions...]}``; region forms as in :mod:`p4d.eval.items`.

Output: OUT (JSONL items, videos relative to OUT's folder), ``OUT.html`` (one row per item: the
first frame with its SoM marks, question, options with the answer in bold) and the PNGs it shows in
``OUT_som/``. Items that do not validate (bad region, dangling ``<obj_k>``, undecodable video, ...)
and boxes for unknown ids are reported by id and left out.

Example::

    p4d eval make-regions my_vqa.jsonl my_boxes.json my_bench.jsonl   # then open my_bench.html
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from PIL import Image

from p4d.errors import ConfigError, P4DError
from p4d.eval.items import Item, ItemProblem, parse_item, write_items
from p4d.eval.temporal import MadeItems
from p4d.video import sample_clip
from p4d.video.marks import draw_marks

log = logging.getLogger(__name__)


def _read_json_records(path: Path, flag: str):
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def read_boxes(path: str | Path) -> dict[str, list]:
    """Item id -> list of region dicts, from either BOXES form."""
    path = Path(path)
    data = _read_json_records(path, "BOXES")
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(r, dict) and "id" in r and "regions" in r for r in data):
        return {str(r["id"]): r["regions"] for r in data}
    raise ConfigError(f"BOXES {path}: expected {{item id: [regions]}} or records with 'id' and 'regions'")


def make_regions(vqa: str | Path, boxes: str | Path, out: str | Path, *, sheet: bool = True,
                 progress: bool = True) -> MadeItems:
    """Join VQA items with their regions, validate, write OUT (+ the HTML SoM sheet)."""
    vqa, out = Path(vqa), Path(out)
    records = _read_json_records(vqa, "VQA")
    if isinstance(records, dict) and isinstance(records.get("items"), list):
        records = records["items"]
    if not isinstance(records, list):
        raise ConfigError(f"VQA {vqa}: expected a list of items (JSON) or one item per line (JSONL)")
    regions_by_id = read_boxes(boxes)
    items: list[Item] = []
    skipped: list[ItemProblem] = []
    used = set()
    for k, record in enumerate(records):
        item_id = str(record.get("id", "")).strip() if isinstance(record, dict) else ""
        if not item_id:
            skipped.append(ItemProblem(f"#{k + 1}", "missing id"))
            continue
        merged = dict(record)
        if item_id in regions_by_id:
            merged["regions"] = regions_by_id[item_id]
            used.add(item_id)
        try:
            item = parse_item(merged, base=vqa.parent)
        except ConfigError as exc:
            skipped.append(ItemProblem(item_id, str(exc)))
            continue
        items.append(item)
    skipped += [ItemProblem(i, "boxes given for an id that is not in VQA") for i in regions_by_id if i not in used]

    if sheet:
        items, failed = write_som_sheet(items, out.with_suffix(".html"), progress=progress)
        skipped += failed
    write_items(items, out)
    for problem in skipped:
        log.warning("make-regions: %s left out: %s", problem.id, problem.reason)
    return MadeItems(items=tuple(items), path=out, skipped=tuple(skipped))


def write_som_sheet(items: list[Item], path: Path, *, progress: bool = True) -> tuple[list[Item], list[ItemProblem]]:
    """Render every item's first frame with its marks to ``<stem>_som/<n>.png`` and an HTML page;
    return the items that rendered and the ones that failed (undecodable video, mask of the wrong size)."""
    from tqdm.auto import tqdm

    folder = path.with_name(path.stem + "_som")
    folder.mkdir(parents=True, exist_ok=True)
    rows, kept, failed = [], [], []
    for n, item in enumerate(tqdm(items, desc="SoM sheet", unit="item", disable=not progress)):
        try:
            frame = sample_clip(item.video, num_frames=1).frames[0]
            marked, _ = draw_marks(frame, [spec.to_region(frame.shape[:2]) for spec in item.regions])
        except P4DError as exc:
            failed.append(ItemProblem(item.id, str(exc)))
            continue
        png = folder / f"{n:05d}.png"
        Image.fromarray(marked).save(png)
        kept.append(item)
        options = "".join(
            f"<li>{'<b>' if letter == item.answer else ''}{letter}. {html.escape(text)}{'</b>' if letter == item.answer else ''}</li>"
            for letter, text in zip(item.letters, item.options))
        answer = "" if item.options else f"<p>answer: <b>{item.answer}</b></p>"
        rows.append(f"<tr><td><img src=\"{folder.name}/{png.name}\" width=\"448\"></td><td><p><code>{html.escape(item.id)}</code> "
                    f"· {item.category} ({item.split})</p><p>{html.escape(item.question)}</p><ol type=\"A\" style=\"list-style:none\">"
                    f"{options}</ol>{answer}</td></tr>")
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>SoM sheet</title>"
            "<style>body{font-family:sans-serif}td{vertical-align:top;padding:8px;border-bottom:1px solid #ccc}</style>"
            f"</head><body><h1>{html.escape(path.stem)}: {len(kept)} items</h1><table>{''.join(rows)}</table></body></html>")
    path.write_text(page, encoding="utf-8")
    return kept, failed
