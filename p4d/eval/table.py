"""Markdown results tables laid out like the paper's Tab. 3 (the published 12-column R4D-Bench table).

Columns: Avg, Sta, Dyn, then VG, DM, SR (static) and R, C, T, FP, SA, DP (dynamic), then any extra
category present in the rows (e.g. TIME). Scores are percentages with one decimal; a column without
items shows "–". The last row gives the item count per column.
"""

from __future__ import annotations

from collections.abc import Sequence

from p4d.eval.scoring import SPLIT_COLUMNS, Summary


def table_columns(summaries: Sequence[Summary]) -> list[str]:
    """Avg, Sta, Dyn, the nine categories, then extra categories any summary has items in."""
    columns = list(SPLIT_COLUMNS)
    for summary in summaries:
        for name in summary.category_columns():
            if name not in columns:
                columns.append(name)
    return columns


def _count_cell(summaries: Sequence[Summary], column: str) -> str:
    counts = sorted({s.column(column).count for s in summaries})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def format_cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def format_table(rows: Sequence[tuple[str, Summary]], *, first_header: str = "Method",
                 extra: Sequence[tuple[str, Sequence[str]]] = (), counts: bool = True) -> str:
    """A markdown table: one row per (name, summary), optional extra leading columns
    (``extra = [(header, values per row)]``, e.g. ("# Frames", ["16", "16"])), and an item-count row
    (a range "min–max" where the rows' counts differ)."""
    summaries = [s for _, s in rows]
    columns = table_columns(summaries)
    header = [first_header, *(h for h, _ in extra), *columns]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r, (name, summary) in enumerate(rows):
        cells = [name, *(values[r] for _, values in extra), *(format_cell(summary.column(c).accuracy) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    if counts and rows:
        cells = ["# items", *("" for _ in extra), *(_count_cell(summaries, c) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
