"""MRA against hand-computed values; scoring, micro averages and the random baseline's expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from p4d.eval.items import Item
from p4d.eval.scoring import first_option_answer, mra, random_expectation, score_answer, summarize
from p4d.eval.table import format_table

# MRA: θ ∈ {0.50, ..., 0.95}; an item counts for θ when |ŷ - y| / y < 1 - θ, i.e. 1 - θ ∈ {0.50, 0.45, ..., 0.05}.
MRA_CASES = [
    (10.0, 10.0, 1.0),   # error 0 < every tolerance
    (10.0, 12.0, 0.6),   # rel 0.20 < 0.50, 0.45, 0.40, 0.35, 0.30, 0.25 -> 6 of 10
    (10.0, 9.0, 0.8),    # rel 0.10 < 0.50 ... 0.15 -> 8 (0.10 < 0.10 is false)
    (10.0, 11.0, 0.8),   # the same from above
    (10.0, 14.9, 0.1),   # rel 0.49 < 0.50 only
    (10.0, 15.0, 0.0),   # rel 0.50 is not < 0.50
    (10.0, 10.4, 1.0),   # rel 0.04 < 0.05
    (10.0, 10.5, 0.9),   # rel 0.05 is not < 0.05
    (4.0, 3.0, 0.5),     # rel 0.25 < 0.50 ... 0.30 -> 5
    (-2.0, -2.25, 0.8),  # negative truth: |y| in the denominator, rel 0.125 < 0.50 ... 0.15 -> 8
    (0.0, 0.0, 1.0),
    (0.0, 0.1, 0.0),
    (5.0, None, 0.0),    # no number parsed
]


@pytest.mark.parametrize("truth, prediction, expected", MRA_CASES)
def test_mra_hand_values(truth, prediction, expected):
    assert mra(prediction, truth) == pytest.approx(expected, abs=1e-12)


def _item(item_id, category, split, answer, n_options=4):
    options = tuple(f"o{k}" for k in range(n_options))
    return Item(id=item_id, video=Path("x.mp4"), question="?", options=options, answer=answer, category=category, split=split)


def test_score_answer_mcq_and_numeric():
    item = _item("1", "C", "dynamic", "C")
    assert score_answer(item, "The answer is (C).") == ("C", 1.0)
    assert score_answer(item, "B") == ("B", 0.0)
    assert score_answer(item, "no idea") == (None, 0.0)
    numeric = Item(id="2", video=Path("x.mp4"), question="?", options=(), answer=10.0, category="DP", split="dynamic")
    assert score_answer(numeric, "about 12 m") == (12.0, pytest.approx(0.6))
    assert random_expectation(numeric) == 0.0 and first_option_answer(numeric) == ""


def test_mini_benchmark_table_by_hand():
    # 6 items with known answers and known model outputs; expected scores worked out by hand.
    items_and_outputs = [
        (_item("s1", "VG", "static", "A", 5), "A"),        # 1
        (_item("s2", "DM", "static", "B", 5), "C"),        # 0
        (_item("s3", "SR", "static", "E", 5), "(E)"),      # 1
        (_item("d1", "C", "dynamic", "D"), "Answer: d"),   # 1
        (_item("d2", "C", "dynamic", "A"), "B"),           # 0
        (Item(id="d3", video=Path("x.mp4"), question="?", options=(), answer=10.0, category="DP", split="dynamic"),
         "12"),                                            # MRA 0.6
    ]
    summary = summarize((it.category, it.split, score_answer(it, out)[1]) for it, out in items_and_outputs)
    assert summary.column("Avg").count == 6 and summary.column("Avg").accuracy == pytest.approx(100 * 3.6 / 6)
    assert summary.column("Sta").count == 3 and summary.column("Sta").accuracy == pytest.approx(100 * 2 / 3)
    assert summary.column("Dyn").count == 3 and summary.column("Dyn").accuracy == pytest.approx(100 * 1.6 / 3)
    assert summary.column("C").count == 2 and summary.column("C").accuracy == pytest.approx(50.0)
    assert summary.column("DP").accuracy == pytest.approx(60.0)
    assert summary.column("T").count == 0 and summary.column("T").accuracy is None
    table = format_table([("model", summary)]).splitlines()
    assert table[0] == "| Method | Avg | Sta | Dyn | VG | DM | SR | R | C | T | FP | SA | DP |"
    assert table[2] == "| model | 60.0 | 66.7 | 53.3 | 100.0 | 0.0 | 100.0 | – | 50.0 | – | – | – | 60.0 |"
    assert table[3] == "| # items | 6 | 3 | 3 | 1 | 1 | 1 | 0 | 2 | 0 | 0 | 0 | 1 |"

    # random baseline, exact expectation: static 1/5 each; dynamic 1/4, 1/4 and 0 for the numeric item
    random = summarize((it.category, it.split, random_expectation(it)) for it, _ in items_and_outputs)
    assert random.column("Sta").accuracy == pytest.approx(20.0)
    assert random.column("Dyn").accuracy == pytest.approx(100 * 0.5 / 3)
    assert random.column("Avg").accuracy == pytest.approx(100 * 1.1 / 6)
    # first-option baseline: answers "A" -> right on s1 and d2 only
    first = summarize((it.category, it.split, score_answer(it, first_option_answer(it))[1]) for it, _ in items_and_outputs)
    assert first.column("Avg").accuracy == pytest.approx(100 * 2 / 6)


def test_paper_random_row_follows_from_option_counts():
    """Paper Tab. 3 Random: Avg 23.4, Sta 20.0, Dyn 24.7.

    Static items come from STI-Bench (5 options) -> 1/5 = 20.0. Dynamic: VLM4D's categories (R, C, T, FP)
    have 4 options, STI-Bench's (SA, DP) 5. With the refreshed split's 388 static / 1,031 dynamic items and
    969 four-option + 62 five-option dynamic items: Dyn = (969/4 + 62/5) / 1031 = 254.65 / 1031 = 24.70 %,
    Avg = (388/5 + 254.65) / 1419 = 332.25 / 1419 = 23.41 %.
    """
    counts = {"VG": 130, "DM": 129, "SR": 129, "R": 180, "C": 170, "T": 529, "FP": 90, "SA": 31, "DP": 31}
    options = {"VG": 5, "DM": 5, "SR": 5, "R": 4, "C": 4, "T": 4, "FP": 4, "SA": 5, "DP": 5}
    split = {c: "static" if c in ("VG", "DM", "SR") else "dynamic" for c in counts}
    items = [_item(f"{c}{k}", c, split[c], "A", options[c]) for c, n in counts.items() for k in range(n)]
    random = summarize((it.category, it.split, random_expectation(it)) for it in items)
    assert (random.column("Sta").count, random.column("Dyn").count) == (388, 1031)
    row = format_table([("Random", random)]).splitlines()[2].split(" | ")
    assert row[1:4] == ["23.4", "20.0", "24.7"]
    assert random.column("Dyn").accuracy == pytest.approx(100 * (969 / 4 + 62 / 5) / 1031)
    assert random.column("T").accuracy == pytest.approx(25.0) and random.column("SA").accuracy == pytest.approx(20.0)
