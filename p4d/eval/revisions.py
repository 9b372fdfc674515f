"""Known benchmark revisions: which item files are superseded, told apart by their item count.

Every result pins its items file by sha256 (the predictions file's header, the printed table).
Where a benchmark's labels were corrected, scores on the old revision are not comparable with
published ones; :func:`check_revision` warns when a known old revision is scored.

- VSTI-Bench: labels corrected in July 2026 (five question types); the corrected test split has
  **5,736** items, the superseded one **6,042**. A benchmark whose path names ``vsti`` and that holds
  6,042 items is the old revision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Revision:
    benchmark: str   # matched case-insensitively against the benchmark's path, "-"/"_" ignored
    items: int       # item count of the superseded revision
    current: int     # item count of the corrected revision
    note: str


OLD_REVISIONS = (
    Revision("vstibench", 6042, 5736,
             "VSTI-Bench's labels were corrected in July 2026 (five question types); scores on the old labels are "
             "not comparable with results on the corrected test split"),
)


def known_old_revision(path: str | Path, num_items: int) -> Revision | None:
    """The superseded revision ``path`` with ``num_items`` items is, if it is a known one."""
    name = str(path).lower().replace("-", "").replace("_", "")
    return next((r for r in OLD_REVISIONS if r.benchmark in name and num_items == r.items), None)


def check_revision(path: str | Path, num_items: int) -> Revision | None:
    """Log a warning (and return the revision) when ``path`` is a known superseded revision."""
    old = known_old_revision(path, num_items)
    if old is not None:
        log.warning("%s: %d items is the superseded %s revision (the corrected one has %d): %s", path, num_items,
                    old.benchmark, old.current, old.note)
    return old
