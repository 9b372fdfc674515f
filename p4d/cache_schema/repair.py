"""Repair a damaged store so that precompute recomputes exactly what was lost.

:func:`repair` runs :func:`~p4d.cache_schema.verify.verify`, rewrites ``clips/video`` from
``videos.json`` when they disagree (``videos.json`` is checked against the creation marker's
hash first), and deletes the status file of every damaged shard, so its clips turn pending and
the next ``p4d precompute`` run (same arguments) rewrites those shards whole. Run it while no
precompute writes to the store (one writer per shard).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from p4d.cache_schema.store import CacheStore, video_of_clip
from p4d.cache_schema.verify import VerifyReport, _marker_problems, verify
from p4d.errors import CacheSchemaError

log = logging.getLogger(__name__)

__all__ = ["RepairReport", "repair"]


@dataclass
class RepairReport:
    before: VerifyReport
    pending_shards: list[int] = field(default_factory=list)  # shards turned pending (recomputed by precompute)
    pending_clips: int = 0
    rewrote_video_table: bool = False

    def headline(self) -> str:
        if self.before.ok:
            return f"nothing to repair: {self.before.url} verifies clean"
        parts = []
        if self.rewrote_video_table:
            parts.append("rewrote clips/video from videos.json")
        if self.pending_shards:
            parts.append(f"turned {len(self.pending_shards)} damaged shards ({self.pending_clips} clips) pending: run "
                         f"`p4d precompute VIDEOS {self.before.url}` with the store's settings to recompute them")
        return "; ".join(parts) or "no repairable damage"


def repair(store: CacheStore) -> RepairReport:
    """Make a damaged store recomputable (see the module docstring); raises CacheSchemaError for
    damage it cannot repair (missing or reshaped arrays, a videos.json that is not the planned one)."""
    store._require_writable("repair")
    report = verify(store)
    out = RepairReport(before=report)
    if report.ok:
        return out
    unfixable = [p for p in report.problems if p.startswith("missing array") or ": shape " in p or ": dtype " in p]
    if unfixable:
        raise CacheSchemaError(f"{store.url}: cannot repair {unfixable[0]}; rebuild the store in a new folder")
    if not report.video_table_ok:
        marker = _marker_problems(store)
        if marker:
            raise CacheSchemaError(f"{store.url}: cannot rewrite clips/video: {marker[0]}")
        for shard in range(store.num_shards):
            store.delete_shard_file("clips/video", shard)
        store.array("clips/video")[:] = video_of_clip(store.videos)
        out.rewrote_video_table = True
        log.warning("%s: rewrote clips/video from videos.json", store.url)
    for shard in sorted(report.damaged_shards):
        store.delete_shard_file("clips/status", shard)
        out.pending_shards.append(shard)
        out.pending_clips += len(store.shard_clips(shard))
        log.warning("%s: shard %d turned pending: %s", store.url, shard, "; ".join(report.damaged_shards[shard]))
    return out
