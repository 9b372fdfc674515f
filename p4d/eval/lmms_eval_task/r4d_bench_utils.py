"""lmms-eval hooks of the ``r4d_bench`` task, built on p4d's own prompt and parser, so lmms-eval
and ``p4d eval`` score a model the same way (notes/release.md §6).

Setup (in an environment with lmms-eval and p4d installed)::

    export R4D_BENCH_ROOT=/data/R4D-Bench
    python -m p4d.eval.lmms_eval_task.r4d_bench_utils prepare $R4D_BENCH_ROOT   # writes lmms_eval.jsonl
    cp p4d/eval/lmms_eval_task/r4d_bench.* lmms_eval/tasks/r4d_bench/

``prepare`` writes ``lmms_eval.jsonl`` next to ``test.json``: one line per item with the options
and the answer JSON-encoded (``test.json`` mixes ints, strings and None in ``options``, which the
Arrow tables of ``datasets`` cannot hold in one column) and the category resolved.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from p4d.eval.items import CATEGORIES, LETTERS
from p4d.eval.parse import parse_release_letter, random_letter
from p4d.eval.prompt import format_prompt
from p4d.eval.r4d import load_r4d
from p4d.eval.scoring import summarize
from p4d.eval.table import format_table

INDEX_FILE = "lmms_eval.jsonl"
SEED = int(os.environ.get("R4D_BENCH_SEED", "0"))


def prepare(root: str | os.PathLike) -> Path:
    """Write ROOT/lmms_eval.jsonl from ROOT/test.json (malformed items are reported and left out)."""
    root = Path(root)
    bench = load_r4d(root)
    out = root / INDEX_FILE
    with out.open("w", encoding="utf-8") as f:
        for item in bench.items:
            f.write(json.dumps({
                "id": item.id, "video": str(item.video), "source": str(item.fallback_video or item.video),
                "som_image": str(item.som_image) if item.som_image else "", "question": item.question,
                "options_json": json.dumps(list(item.options)), "answer_letter": item.answer,
                "category": item.category, "split": item.split, "benchmark": item.benchmark or ""}) + "\n")
    for p in bench.problems:
        print(f"skipped {p.id}: {p.reason}", file=sys.stderr)
    return out


def _options(doc) -> list[str]:
    return json.loads(doc["options_json"])


def r4d_doc_to_visual(doc) -> list:
    """[SoM image (PIL, RGB), video path]: the release's visual input."""
    from PIL import Image

    video = doc["video"] if Path(doc["video"]).is_file() else doc["source"]
    visuals = [Image.open(doc["som_image"]).convert("RGB")] if doc.get("som_image") else []
    return [*visuals, video]


def r4d_doc_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """The release prompt (:func:`p4d.eval.prompt.format_prompt`)."""
    return format_prompt(doc["question"], _options(doc), som=bool(doc.get("som_image")))


def r4d_doc_to_target(doc) -> str:
    return doc["answer_letter"]


def r4d_process_results(doc, results) -> dict:
    """The release parser; no letter -> a random letter seeded by (R4D_BENCH_SEED, id)."""
    n = len(_options(doc))
    letter = parse_release_letter(results[0] if results else None, n)
    unparsed = letter is None
    if unparsed:
        letter = random_letter(n, SEED, str(doc["id"]))
    record = {"id": str(doc["id"]), "category": doc["category"], "split": doc["split"],
              "score": float(letter == doc["answer_letter"]), "unparsed": unparsed, "parsed": letter}
    return {"r4d_accuracy": record}


def r4d_aggregate(records) -> float:
    """Avg (micro, percent); prints the release's 12-column table and the unparsed count."""
    summary = summarize((r["category"], r["split"], r["score"]) for r in records)
    print(format_table([("model", summary)]))
    print(f"unparsed (random letter, seed {SEED}): {sum(bool(r['unparsed']) for r in records)} of {len(records)}")
    return summary.column("Avg").accuracy or 0.0


__all__ = ["CATEGORIES", "LETTERS", "prepare", "r4d_aggregate", "r4d_doc_to_target", "r4d_doc_to_text",
           "r4d_doc_to_visual", "r4d_process_results"]

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "prepare":
        sys.exit("usage: python -m p4d.eval.lmms_eval_task.r4d_bench_utils prepare R4D_BENCH_ROOT")
    print(f"wrote {prepare(sys.argv[2])}")
