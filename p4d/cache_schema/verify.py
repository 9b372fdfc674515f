"""Check a store against its contract: arrays, status, and every done clip's data."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.cache_schema.layout import STATUS_DONE, STATUS_FAILED, STATUS_PENDING
from p4d.cache_schema.store import CacheStore, array_problems

log = logging.getLogger(__name__)

__all__ = ["VerifyReport", "verify"]


@dataclass
class VerifyReport:
    """``problems``: what is wrong (exit 1); ``info``: failed clips with reasons (recorded, not wrong)."""

    problems: list[str]
    counts: dict
    info: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def headline(self) -> str:
        c = self.counts
        verdict = "OK" if self.ok else f"{len(self.problems)} PROBLEM(S)"
        return (f"{verdict}: {self.url}: {c.get('done', 0)} done, {c.get('pending', 0)} pending, "
                f"{c.get('failed', 0)} failed of {c.get('total', 0)} clips; "
                f"{c.get('checked_clips', 0)} done clips read back and checked")


def _read_shard(store: CacheStore, path: str, sl: slice, shard: int, problems: list[str]) -> np.ndarray | None:
    try:
        return np.asarray(store.array(path)[sl])
    except Exception as exc:  # noqa: BLE001 - torn shard: checksum / decode error
        problems.append(f"{path}: shard {shard} (clips {sl.start}-{sl.stop - 1}) unreadable, torn or corrupt "
                        f"({type(exc).__name__}); rewrite it with `p4d precompute --force`")
        return None


def verify(store: CacheStore) -> VerifyReport:
    """Missing arrays, shape/dtype drift vs the spec, torn shards, NaN/Inf or unreadable data in
    done clips; failed clips are listed (with reasons) as info, not as problems."""
    by_path = array_problems(store)
    problems = [p for probs in by_path.values() for p in probs]
    bad_paths = set(by_path)
    status, torn_status = store.read_status()
    for shard in torn_status:
        rng = store.shard_clips(shard)
        problems.append(f"clips/status: shard {shard} (clips {rng.start}-{rng.stop - 1}) unreadable, torn by an "
                        "interrupted writer; its clips count as pending until the shard is rewritten")
    codec = LATENT_CODECS[store.spec.latent_codec]
    spec = store.spec
    checked = 0
    for shard in range(store.num_shards):
        rng = store.shard_clips(shard)
        sl = slice(rng.start, rng.stop)
        done = status[sl] == STATUS_DONE
        if not done.any():
            continue
        checked += int(done.sum())
        rows = np.flatnonzero(done)

        def report_nonfinite(name: str, values: np.ndarray) -> None:
            finite = np.isfinite(values[rows].reshape(rows.size, -1)).all(axis=1)
            for r in rows[~finite]:
                clip = rng.start + int(r)
                problems.append(f"clip {clip} ({_video_of(store, clip)}): NaN/Inf in {name} although marked done")

        part_paths = [f"latents/{p.name}" for p in codec.parts]
        if not bad_paths.intersection(part_paths):
            parts = {p.name: _read_shard(store, f"latents/{p.name}", sl, shard, problems) for p in codec.parts}
            if all(v is not None for v in parts.values()):
                report_nonfinite("latents/f4d (decoded)", codec.decode(parts))
        for m in spec.modalities:
            if f"maps/{m}" not in bad_paths:
                values = _read_shard(store, f"maps/{m}", sl, shard, problems)
                if values is not None:
                    report_nonfinite(f"maps/{m}", values)
        if "clips/timestamp" not in bad_paths:
            ts = _read_shard(store, "clips/timestamp", sl, shard, problems)
            if ts is not None:
                report_nonfinite("clips/timestamp", ts)
        if "clips/frame_index" not in bad_paths:
            fi = _read_shard(store, "clips/frame_index", sl, shard, problems)
            if fi is not None:
                for r in rows[(fi[rows] < 0).any(axis=1)]:
                    problems.append(f"clip {rng.start + int(r)}: clips/frame_index holds negative indices although done")
    failures = store.failures()
    info = [f"clip {clip} ({_video_of(store, clip)}) failed: {reason}" for clip, reason in failures.items()]
    counts = {
        "pending": int((status == STATUS_PENDING).sum()),
        "done": int((status == STATUS_DONE).sum()),
        "failed": int((status == STATUS_FAILED).sum()),
        "total": int(status.size),
        "checked_clips": checked,
        "torn_status_shards": len(torn_status),
        "problems": len(problems),
    }
    return VerifyReport(problems=problems, counts=counts, info=info, url=store.url)


def _video_of(store: CacheStore, clip: int) -> str:
    try:
        v = int(store.array("clips/video")[clip])
        return store.videos[v].path
    except Exception:  # noqa: BLE001 - a report line must not fail
        return "video unknown"
