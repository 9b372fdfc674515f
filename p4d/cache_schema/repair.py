"""Repair a damaged store so that precompute recomputes exactly what was lost.

:func:`repair` runs :func:`~p4d.cache_schema.verify.verify`, rewrites ``clips/video`` from
``videos.json`` when they disagree (``videos.json`` is checked against the creation marker's
hash first), and deletes the status file of every damaged shard, so its clips turn pending and
the next ``p4d precompute`` run (same arguments) rewrites those shards whole. Run it while no
precompute writes to the store (one writer per shard). :func:`precompute_command` rebuilds that
command from the store's own attrs (teacher, taps, sampling, maps, codec, shard size, teacher
input, the codec self-check's thresholds), so a resumed run is never refused for a forgotten flag.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass, field

from p4d.cache_schema.fidelity import FidelityPolicy
from p4d.cache_schema.labels import RANDOM_WEIGHTS_KEY
from p4d.cache_schema.store import CacheStore, video_of_clip
from p4d.cache_schema.verify import VerifyReport, _marker_problems, verify
from p4d.errors import CacheSchemaError

log = logging.getLogger(__name__)

__all__ = ["RepairReport", "precompute_command", "repair"]

#: stands for the teacher checkpoint in a rebuilt command (the store records its hash, not its path)
WEIGHTS_PLACEHOLDER = "TEACHER_WEIGHTS"


def _videos_argument(store: CacheStore) -> str:
    """The folder holding every planned video (VIDEOS of the command; an existing store is not
    re-planned, so any VIDEOS works), or ``VIDEOS`` when they share none."""
    paths = [v.path for v in store.videos]
    if not paths or any("://" in p for p in paths):
        return "VIDEOS"
    try:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    except ValueError:
        return "VIDEOS"
    return common if common not in ("", os.sep) else "VIDEOS"


def precompute_command(store: CacheStore) -> str:
    """The ``p4d precompute`` command that fills ``store`` again, every setting from its attrs:
    a run with it passes precompute's check against the store (``CacheSpec.compatible_with``).
    A store of real weights records their hash only: ``--teacher-weights TEACHER_WEIGHTS`` stands for
    the file (named in a trailing comment with the hash)."""
    spec = store.spec
    teacher = spec.teacher
    preset = str(teacher.get("preset", "l4p"))
    args = ["p4d", "precompute", _videos_argument(store), store.url, "--teacher", preset]
    random = bool(teacher.get(RANDOM_WEIGHTS_KEY))
    if random and preset != "tiny":  # tiny is random without the flag
        args.append("--random-weights")
    elif not random:
        args += ["--teacher-weights", WEIGHTS_PLACEHOLDER]
    sampling, spatial = spec.sampling, spec.spatial
    args += ["--taps", ",".join(map(str, spec.taps)), "--num-frames", str(sampling.get("num_frames", spec.num_frames)),
             "--policy", str(sampling.get("policy", "uniform")), "--frame-stride", str(sampling.get("frame_stride", 1)),
             "--modalities", ",".join(spec.modalities), "--codec", spec.latent_codec,
             "--clips-per-shard", str(spec.clips_per_shard)]
    if spatial.get("teacher_input"):
        args += ["--teacher-input", str(spatial["teacher_input"])]
        if spatial["teacher_input"] == "release" and spatial.get("student_size"):
            args += ["--student-size", str(spatial["student_size"])]
    thresholds = {tuple(r["min_cosine"]) for r in store.shard_runs().values()
                  if isinstance(r.get("min_cosine"), list) and len(r["min_cosine"]) == 2}
    default = (FidelityPolicy().min_mean_cosine, FidelityPolicy().min_worst_cosine)
    if len(thresholds) == 1 and next(iter(thresholds)) != default:
        args += ["--min-cosine", ",".join(map(str, next(iter(thresholds))))]
    text = shlex.join(args)
    if not random:
        text += f"  # {WEIGHTS_PLACEHOLDER}: the checkpoint of weights hash {teacher.get('weights_hash', '?')}"
    return text



@dataclass
class RepairReport:
    before: VerifyReport
    pending_shards: list[int] = field(default_factory=list)  # shards turned pending (recomputed by precompute)
    pending_clips: int = 0
    rewrote_video_table: bool = False
    command: str = ""  # the precompute command that recomputes the pending shards (precompute_command)

    def headline(self) -> str:
        if self.before.ok:
            return f"nothing to repair: {self.before.url} verifies clean"
        parts = []
        if self.rewrote_video_table:
            parts.append("rewrote clips/video from videos.json")
        if self.pending_shards:
            parts.append(f"turned {len(self.pending_shards)} damaged shards ({self.pending_clips} clips) pending; "
                         f"recompute them with:\n  {self.command}")
        return "; ".join(parts) or "no repairable damage"


def repair(store: CacheStore) -> RepairReport:
    """Make a damaged store recomputable (see the module docstring); raises CacheSchemaError for
    damage it cannot repair (missing or reshaped arrays, a videos.json that is not the planned one)."""
    store._require_writable("repair")
    report = verify(store)
    out = RepairReport(before=report, command=precompute_command(store))
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
