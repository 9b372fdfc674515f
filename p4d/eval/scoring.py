"""Scores per item and their averages: MCQ accuracy, MRA for numeric answers, per split and category.

- MCQ item: 1 if the parsed letter is the answer, else 0. Unparsed: under the ``release`` protocol
  a seeded uniformly random letter (1/N in expectation, as the release scores it); under ``p4d`` 0.
- Numeric item: mean relative accuracy, MRA = mean over θ ∈ {0.50, 0.55, ..., 0.95} of
  1[|ŷ − y| / |y| < 1 − θ] (VSI-Bench's metric); y = 0 scores 1 only for ŷ = 0.
- Averages are micro over items: Avg over all, Sta/Dyn over each split's items, one column per
  category; each column also carries its item count.
- Baselines: ``random`` is the exact expectation, 1/(number of options) per MCQ item (0 for a numeric
  item: there is nothing to draw from); ``first-option`` always answers "A" (numeric items: no answer, 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from p4d.eval.items import CATEGORIES, DYNAMIC, R4D_CATEGORIES, STATIC, Item
from p4d.eval.parse import parse_choice, parse_number, parse_release_letter, random_letter

#: θ = 0.50, 0.55, ..., 0.95 written as (10 + k) / 20, so 1 − θ = (10 − k) / 20 exactly.
MRA_TOLERANCES = tuple((10 - k) / 20 for k in range(10))
SPLIT_COLUMNS = ("Avg", "Sta", "Dyn")
BASELINES = ("random", "first-option")


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


def score_item(item: Item, raw: str | None, *, protocol: str = "release", seed: int = 0
               ) -> tuple[str | float | None, float, bool]:
    """(parsed answer, score, unparsed) under a protocol. ``release``: the release's letter parser;
    no letter → a uniformly random letter seeded by (seed, item id), scored like any answer and
    flagged unparsed. ``p4d``: :func:`score_answer` (unparsed scores 0). Numeric items: MRA."""
    if item.is_numeric or protocol != "release":
        parsed, score = score_answer(item, raw)
        return parsed, score, parsed is None
    letter = parse_release_letter(raw, len(item.options))
    unparsed = letter is None
    if unparsed:
        letter = random_letter(len(item.options), seed, item.id)
    return letter, float(letter == item.answer), unparsed


def random_expectation(item: Item) -> float:
    """Expected score of a uniform random choice: 1 / number of options (0 for numeric items)."""
    return 1.0 / len(item.options) if item.options else 0.0


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
