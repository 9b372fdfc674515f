"""Scores per item and their averages: MCQ accuracy, MRA for numeric answers, per split and category.

- MCQ item: 1 if the parsed letter is the answer, else 0. Unparsed: under the ``release`` protocol
  on R4D-Bench a uniformly random letter (1/N in expectation, as the release scores it); on
  STI-Bench and under ``p4d`` 0.
- Numeric item: mean relative accuracy, MRA = mean over θ ∈ {0.50, 0.55, ..., 0.95} of
  1[|ŷ − y| / |y| < 1 − θ] (VSI-Bench's metric); y = 0 scores 1 only for ŷ = 0.
- Averages are micro over items: Avg over all, Sta/Dyn over each split's items, one column per
  category; each column also carries its item count.
- Every MCQ answer is scored twice (:class:`Scored`): **strict**, the benchmark's official parser
  alone, and **matched**, where an answer that states an option's value (the whole answer, or exactly
  one option's text as whole words) counts as that option; ``rule`` records which decided.
- Baselines: ``random`` is the exact expectation, 1/(number of options) per MCQ item (0 for a numeric
  item: there is nothing to draw from); ``first-option`` always answers "A" (numeric items: no answer, 0);
  ``most-frequent-letter`` always answers the letter most items' answers have (the letter-bias check).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from p4d.eval.items import CATEGORIES, DYNAMIC, R4D_CATEGORIES, STATIC, Item
from p4d.eval.parse import (match_option_value, parse_choice, parse_number, parse_release_letter, parse_sti_letter,
                            random_letter)

#: θ = 0.50, 0.55, ..., 0.95 written as (10 + k) / 20, so 1 − θ = (10 − k) / 20 exactly.
MRA_TOLERANCES = tuple((10 - k) / 20 for k in range(10))
SPLIT_COLUMNS = ("Avg", "Sta", "Dyn")
BASELINES = ("random", "first-option", "most-frequent-letter")


def mra(prediction: float | None, truth: float) -> float:
    """Mean relative accuracy of ``prediction`` against ``truth`` (None scores 0)."""
    if prediction is None or not math.isfinite(prediction):
        return 0.0
    if truth == 0:
        return 1.0 if prediction == 0 else 0.0
    relative = abs(prediction - truth) / abs(truth)
    return sum(relative < tol for tol in MRA_TOLERANCES) / len(MRA_TOLERANCES)


def score_answer(item: Item, raw: str | None) -> tuple[str | float | None, float]:
    """(parsed answer, score in [0, 1]) for the model's raw text on ``item``."""
    if item.is_numeric:
        value = parse_number(raw)
        return value, mra(value, float(item.answer))
    letter = parse_choice(raw, item.options)
    return letter, float(letter == item.answer)


#: How an item's answer was decided (``rule`` in the predictions file): the benchmark's official
#: parser found a letter; only the matched rule did (the answer states an option's value); neither,
#: and the release drew a random letter; neither, and the item scores 0.
RULES = ("parser", "value", "random", "none")


@dataclass(frozen=True)
class Scored:
    """One answer scored twice: **strict** (the benchmark's official parser) and **matched** (strict,
    else an answer stating an option's value counts as that option); ``rule`` says which decided."""

    parsed: str | float | None
    score: float
    matched: str | float | None
    score_matched: float
    rule: str

    @property
    def unparsed(self) -> bool:
        """The official parser found no answer (a random letter or 0 under the strict rule)."""
        return self.rule != "parser"

    def record(self) -> dict:
        return {"parsed": self.parsed, "score": self.score, "matched": self.matched,
                "score_matched": self.score_matched, "rule": self.rule, "unparsed": self.unparsed}


def score_item(item: Item, raw: str | None, *, protocol: str = "release", seed: int | None = 0) -> Scored:
    """Score ``raw`` on ``item`` under a protocol, strict and matched.

    ``release``: the item's official parser (``item.official``): ``r4d``, the release's letter parser,
    no letter → a uniformly random letter (seeded by (seed, item id); ``seed`` None: unseeded, as the
    release) drawn once and used by both rules where neither decides; ``sti``, STI-Bench's cascade,
    unparsed scores 0. ``p4d``: :func:`score_answer` (p4d's parser already reads option values, so
    matched = strict). Numeric items: MRA."""
    if item.is_numeric or protocol != "release":
        parsed, score = score_answer(item, raw)
        return Scored(parsed, score, parsed, score, "parser" if parsed is not None else "none")
    if item.official == "sti":
        letter = parse_sti_letter(raw)
    else:
        letter = parse_release_letter(raw, len(item.options))
    if letter is not None:
        score = float(letter == item.answer)
        return Scored(letter, score, letter, score, "parser")
    value = match_option_value(raw, item.options)
    strict = None if item.official == "sti" else random_letter(len(item.options), seed, item.id)
    matched = value if value is not None else strict
    rule = "value" if value is not None else ("none" if strict is None else "random")
    return Scored(strict, float(strict is not None and strict == item.answer), matched,
                  float(matched is not None and matched == item.answer), rule)


def rule_counts(records) -> dict[str, int]:
    """How many prediction records each rule decided (records without ``rule``: by ``unparsed``)."""
    counts = dict.fromkeys(RULES, 0)
    for r in records:
        rule = r.get("rule") or ("none" if r.get("unparsed") else "parser")
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def random_expectation(item: Item) -> float:
    """Expected score of a uniform random choice: 1 / number of options (0 for numeric items and
    for items whose answer is none of the options)."""
    return 1.0 / len(item.options) if item.options and item.answer else 0.0


def most_frequent_letter(items: Iterable[Item]) -> str | None:
    """The answer letter most MCQ items have (ties: the earliest letter); None without MCQ items.
    Always answering it is the letter-bias baseline: above 1/N, the answers' positions are unbalanced."""
    counts: dict[str, int] = {}
    for item in items:
        if not item.is_numeric and item.answer:
            counts[item.answer] = counts.get(item.answer, 0) + 1
    return min(counts, key=lambda letter: (-counts[letter], letter)) if counts else None


def first_option_answer(item: Item) -> str:
    """The raw answer of the first-option baseline: "A" (an empty answer on numeric items)."""
    return "" if item.is_numeric else "A"


@dataclass
class Column:
    """Item count and score sum of one table column."""

    count: int = 0
    total: float = 0.0

    @property
    def accuracy(self) -> float | None:
        """Mean score in percent, None without items."""
        return 100.0 * self.total / self.count if self.count else None


@dataclass
class Summary:
    """Column name -> :class:`Column`, for Avg, Sta, Dyn and every category code."""

    columns: dict[str, Column] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        return self.columns.get(name, Column())

    def category_columns(self) -> list[str]:
        """R4D-Bench's nine codes, then any extra category present (e.g. TIME)."""
        extra = [c for c in CATEGORIES if c not in R4D_CATEGORIES and self.column(c).count]
        return [*R4D_CATEGORIES, *extra]


def summarize(scored: Iterable[tuple[str, str, float]]) -> Summary:
    """Micro averages from (category code, split, score) triples."""
    summary = Summary({name: Column() for name in (*SPLIT_COLUMNS, *CATEGORIES)})
    split_column = {STATIC: "Sta", DYNAMIC: "Dyn"}
    for category, split, score in scored:
        for name in ("Avg", split_column[split], category):
            col = summary.columns[name]
            col.count += 1
            col.total += float(score)
    return summary
