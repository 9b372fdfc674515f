"""lmms-eval hooks of the ``r4d_bench`` task, as the public release's task runs R4D-Bench
(notes/release.md §6), built on p4d's own prompt (:func:`p4d.eval.prompt.format_prompt`) and
parser (:func:`p4d.eval.parse.parse_release_letter`), so lmms-eval and ``p4d eval --protocol
release`` score a model alike.

- Root: ``R4D_BENCH_ROOT`` (default ``R4D-Bench``, relative to the working directory); visual
  paths are ``os.path.join(root, relative path)``. On import, ``$R4D_BENCH_ROOT/test.json`` is
  normalised to ``.cache/test_normalized.jsonl`` (id, options and answer as text; None as ""),
  because ``datasets``' Arrow tables cannot hold its mixed-type columns; no step to run by hand.
- Visual input: ``[SoM image path (only if the file exists), video path (clipped if it exists,
  else source)]``; prompt: the release's (SoM preamble whenever the item names a SoM image).
- Parsing: the release's; no letter → a uniformly random letter: unseeded (the release) unless
  ``R4D_BENCH_SEED`` is set. Twelve metrics as fractions in [0, 1] (Avg, Sta, Dyn, nine categories;
  an empty subset is 0.0, as in the release), plus ``r4d_accuracy_matched`` (p4d's matched rule).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from p4d.eval.items import CATEGORIES, R4D_CATEGORIES, STATIC
from p4d.eval.parse import LETTERS, match_option_value, parse_release_letter, random_letter
from p4d.eval.prompt import format_prompt, option_text
from p4d.eval.r4d import BENCH_FILE
from p4d.eval.scoring import summarize
from p4d.eval.table import format_table

R4D_BENCH_ROOT = os.environ.get("R4D_BENCH_ROOT", "R4D-Bench")
NORMALIZED = Path(".cache") / "test_normalized.jsonl"
SEED = int(os.environ["R4D_BENCH_SEED"]) if os.environ.get("R4D_BENCH_SEED") else None
TASK_CODES = {CATEGORIES[c].name: c for c in R4D_CATEGORIES}
METRICS = ("r4d_accuracy", "r4d_static", "r4d_dynamic", *(f"r4d_{c}" for c in ("VG", "DM", "SR", "R", "C", "T", "FP", "SA", "DP")))


def normalize(root: str | os.PathLike = R4D_BENCH_ROOT) -> Path | None:
    """Write ROOT/.cache/test_normalized.jsonl from ROOT/test.json unless it is newer; None without test.json."""
    src, dst = Path(root) / BENCH_FILE, Path(root) / NORMALIZED
    if not src.is_file():
        return None
    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w", encoding="utf-8") as f:
        for item in json.loads(src.read_text(encoding="utf-8")):
            item = dict(item, id=str(item["id"]), options=[option_text(o) for o in item["options"]],
                        answer=option_text(item.get("answer")))
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    return dst


normalize()


def _root() -> str:
    return os.environ.get("R4D_BENCH_ROOT", R4D_BENCH_ROOT)


def r4d_doc_to_visual(doc) -> list[str]:
    """[SoM image path if the file exists, video path (``video`` if it exists, else ``source``)]."""
    root, paths = _root(), []
    if doc.get("som_image"):
        som = os.path.join(root, doc["som_image"])
        if os.path.exists(som):
            paths.append(som)
    video = os.path.join(root, doc["video"])
    paths.append(video if os.path.exists(video) else os.path.join(root, doc["source"]))
    return paths


def r4d_doc_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """The release prompt; a ``post_prompt`` kwarg is appended after a newline, as the release does."""
    question = doc.get("question") or doc.get("question_raw") or ""
    prompt = format_prompt(question, doc["options"], som=bool(doc.get("som_image")))
    post = (lmms_eval_specific_kwargs or {}).get("post_prompt")
    return f"{prompt}\n{post}" if post else prompt


def r4d_doc_to_target(doc) -> str:
    """The letter of the first option equal to the answer; "" when there is none (scored 0)."""
    options, answer = doc["options"], doc["answer"]
    return LETTERS[options.index(answer)] if answer and answer in options else ""


def r4d_process_results(doc, results) -> dict:
    """One record per metric name (the same dict): strict ``correct`` (the release's), ``correct_matched``."""
    raw = results[0] if results else ""
    n, target = len(doc["options"]), r4d_doc_to_target(doc)
    letter = parse_release_letter(raw, n)
    rule, matched = "parser", letter
    if letter is None:
        letter = random_letter(n, SEED, str(doc["id"]))
        value = match_option_value(raw, doc["options"])
        rule, matched = ("value", value) if value is not None else ("random", letter)
    code = TASK_CODES.get(doc["task"], doc["task"])
    split = CATEGORIES[code].split if code in R4D_CATEGORIES else "unknown"
    record = {"id": str(doc["id"]), "benchmark": doc.get("benchmark"), "task": doc["task"], "task_abbrev": code,
              "split": split, "pred_raw": raw, "pred_letter": letter, "gt_letter": target, "rule": rule,
              "correct": float(bool(target) and letter == target),
              "correct_matched": float(bool(target) and matched == target)}
    return {name: record for name in (*METRICS, "r4d_accuracy_matched")}


def _mean(records, key: str = "correct") -> float:
    return sum(r[key] for r in records) / len(records) if records else 0.0


def r4d_accuracy(records) -> float:
    """Avg in [0, 1]; also prints the 12-column table (percent) with strict and matched rows."""
    known = [r for r in records if r["split"] != "unknown"]
    rows = [(name, summarize((r["task_abbrev"], r["split"], r[key]) for r in known))
            for name, key in (("strict", "correct"), ("matched", "correct_matched"))]
    print(format_table(rows))
    rules = {rule: sum(r["rule"] == rule for r in records) for rule in ("parser", "value", "random")}
    print(f"decided: {rules} (random letters: {'unseeded' if SEED is None else f'seed {SEED}'})")
    return _mean(records)


def r4d_accuracy_matched(records) -> float:
    return _mean(records, "correct_matched")


def r4d_static(records) -> float:
    return _mean([r for r in records if r["split"] == STATIC])


def r4d_dynamic(records) -> float:
    return _mean([r for r in records if r["split"] == "dynamic"])


def _category(code: str):
    def aggregate(records) -> float:
        return _mean([r for r in records if r["task_abbrev"] == code])
    aggregate.__name__ = f"r4d_{code}"
    aggregate.__doc__ = f"Accuracy over {CATEGORIES[code].name} items, in [0, 1] (0.0 without any)."
    return aggregate


r4d_VG, r4d_DM, r4d_SR, r4d_R, r4d_C, r4d_T, r4d_FP, r4d_SA, r4d_DP = (
    _category(c) for c in ("VG", "DM", "SR", "R", "C", "T", "FP", "SA", "DP"))

if __name__ == "__main__":
    print(f"wrote {normalize(sys.argv[1] if len(sys.argv) > 1 else _root())}")
