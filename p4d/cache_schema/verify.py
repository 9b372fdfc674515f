"""Check a store against its contract: creation marker, arrays, ``clips/video`` against
``videos.json``, status, and every done clip's data: its shard files exist, its chunks are in
the shard index, decode and pass their crc32c checksums, and hold finite values."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.cache_schema.fidelity import FALLBACK_PART
from p4d.cache_schema.layout import STATUS_DONE, STATUS_FAILED, STATUS_PENDING
from p4d.cache_schema.map_codecs import decode_map, quant_part
from p4d.cache_schema.spec import SCHEMA_VERSION
from p4d.cache_schema.store import (CREATED_FILE, VIDEOS_FILE, CacheStore, _fs, array_problems, video_of_clip)
from p4d.errors import CacheNotFoundError

log = logging.getLogger(__name__)

__all__ = ["VerifyReport", "verify"]

_EMPTY = np.uint64(2**64 - 1)  # a shard index entry of a chunk that was never written


@dataclass
class VerifyReport:
    """``problems``: what is wrong (exit 1); ``info``: failed clips with reasons (recorded, not wrong).

    ``damaged_shards``: shard -> what is wrong with the data of its done clips (or its torn
    status): ``p4d cache repair`` turns them pending so ``p4d precompute`` recomputes them.
    ``video_table_ok``: ``clips/video`` agrees with ``videos.json`` (repair rewrites it if not).
    """

    problems: list[str]
    counts: dict
    info: list[str] = field(default_factory=list)
    url: str = ""
    damaged_shards: dict[int, list[str]] = field(default_factory=dict)
    video_table_ok: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def headline(self) -> str:
        c = self.counts
        verdict = "OK" if self.ok else f"{len(self.problems)} PROBLEM(S)"
        damaged = f"; {len(self.damaged_shards)} damaged shards" if self.damaged_shards else ""
        return (f"{verdict}: {self.url}: {c.get('done', 0)} done, {c.get('pending', 0)} pending, "
                f"{c.get('failed', 0)} failed of {c.get('total', 0)} clips; "
                f"{c.get('checked_clips', 0)} done clips read back and checked{damaged}")


def _empty_chunk_rows(store: CacheStore, path: str, shard: int, rows: int) -> list[int] | str:
    """Rows (clips, from the shard's first) among the first ``rows`` whose chunks the shard index
    lists as never written (zarr would read them as fill values), or why the index is unreadable."""
    arr = store.array(path)
    per_shard = math.prod(s // c for s, c in zip(arr.shards, arr.chunks))
    size = 16 * per_shard + 4  # (offset, nbytes) uint64 per chunk + the index's crc32c
    fs, _ = _fs(store.url)
    tail = fs.cat_file(store.shard_file(path, shard), start=-size)
    if len(tail) < size:
        return f"{len(tail)} bytes, shorter than its shard index ({size} bytes)"
    entries = np.frombuffer(tail[:-4], "<u8").reshape(arr.shards[0], -1, 2)
    empty = (entries == _EMPTY).all(axis=2).any(axis=1)
    return [int(r) for r in np.flatnonzero(empty[:rows])]


def _check_shard_file(store: CacheStore, path: str, shard: int, rng: range, done_rows: np.ndarray) -> str | None:
    """Why the ``path`` file of ``shard`` cannot hold its done clips (missing, unwritten chunks), or None."""
    if store.missing_shards(path, [shard]):
        return "file missing"
    holes = _empty_chunk_rows(store, path, shard, len(rng))
    if isinstance(holes, str):
        return holes
    lost = sorted(set(holes) & set(done_rows.tolist()))
    if lost:
        return f"chunks of done clips {[rng.start + r for r in lost]} never written (absent from the shard index)"
    return None


def _read_shard(store: CacheStore, path: str, shard: int, rng: range, done_rows: np.ndarray,
                damage: list[str]) -> np.ndarray | None:
    why = _check_shard_file(store, path, shard, rng, done_rows)
    if why is None:
        try:
            return np.asarray(store.array(path)[rng.start:rng.stop])
        except Exception as exc:  # noqa: BLE001 - torn or flipped: checksum / decode error
            why = f"unreadable, corrupt or torn ({type(exc).__name__}: {exc})"
    damage.append(f"{path}: shard {shard} (clips {rng.start}-{rng.stop - 1}): {why}")
    return None


def _marker_problems(store: CacheStore) -> list[str]:
    if store.attrs.get("schema_version") != SCHEMA_VERSION:
        return []
    try:
        marker = json.loads(store.read_side_file(CREATED_FILE))
        table = store.read_side_file(VIDEOS_FILE)
    except (CacheNotFoundError, ValueError) as exc:
        return [f"creation marker or {VIDEOS_FILE} unreadable: {exc}"]
    if not isinstance(marker, dict) or marker.get("videos_sha256") != hashlib.sha256(table).hexdigest():
        return [f"{VIDEOS_FILE} differs from the table the store was created with (sha256 in {CREATED_FILE})"]
    return []


def _video_table_problems(store: CacheStore) -> list[str]:
    want = video_of_clip(store.videos)
    try:
        found = np.asarray(store.array("clips/video")[:])
    except Exception as exc:  # noqa: BLE001 - torn / flipped shard
        return [f"clips/video unreadable ({type(exc).__name__}: {exc}); `p4d cache repair` rewrites it from {VIDEOS_FILE}"]
    missing = store.missing_shards("clips/video", range(store.num_shards))
    bad = np.flatnonzero(found != want)
    out = []
    if missing:
        out.append(f"clips/video: shard files {missing} missing")
    if bad.size:
        c = int(bad[0])
        out.append(f"clips/video: {bad.size} clips disagree with {VIDEOS_FILE} (clip {c} holds row {int(found[c])}, "
                   f"{VIDEOS_FILE} plans row {int(want[c])}); `p4d cache repair` rewrites it")
    return out


def verify(store: CacheStore) -> VerifyReport:
    """Every check of the module docstring; failed clips are listed (with reasons) as info, not problems."""
    by_path = array_problems(store)
    problems = [p for probs in by_path.values() for p in probs]
    problems += _marker_problems(store)
    bad_paths = set(by_path)
    video_problems = [] if "clips/video" in bad_paths else _video_table_problems(store)
    problems += video_problems
    status, torn_status = store.read_status()
    damaged: dict[int, list[str]] = {}
    for shard in torn_status:
        rng = store.shard_clips(shard)
        damaged.setdefault(shard, []).append(
            f"clips/status: shard {shard} (clips {rng.start}-{rng.stop - 1}) unreadable, torn or corrupt; its clips "
            "count as pending until the shard is rewritten")
    codec = LATENT_CODECS[store.spec.latent_codec]
    spec = store.spec
    checked = 0
    for shard in range(store.num_shards):
        rng = store.shard_clips(shard)
        done = status[rng.start:rng.stop] == STATUS_DONE
        if not done.any():
            continue
        checked += int(done.sum())
        rows = np.flatnonzero(done)
        damage = damaged.setdefault(shard, [])

        def read(path: str, needed: np.ndarray = rows) -> np.ndarray | None:
            return None if path in bad_paths else _read_shard(store, path, shard, rng, needed, damage)

        def report_nonfinite(name: str, values: np.ndarray) -> None:
            finite = np.isfinite(values[rows].reshape(rows.size, -1)).all(axis=1)
            for r in rows[~finite]:
                clip = rng.start + int(r)
                damage.append(f"clip {clip} ({_video_of(store, clip)}): NaN/Inf in {name} although marked done")

        parts = {p.name: read(f"latents/{p.name}") for p in codec.stored_parts(spec.latent_codec_version)}
        if "clips/latent_codec" in store.layouts:  # the codec self-check's level; 2 = bfloat16 fallback
            levels = read("clips/latent_codec")
            fallback = rows[levels[rows] == 2] if levels is not None else rows[:0]
            if fallback.size:  # the fallback file exists only for shards where a clip fell back
                read(f"latents/{FALLBACK_PART}", fallback)
        if all(v is not None for v in parts.values()):
            report_nonfinite("latents/f4d (decoded)", codec.decode(parts))
        for m in spec.modalities:
            values = read(f"maps/{m}")
            if spec.map_codec == "quant16":  # codes are finite ints: check what they decode to
                quant = read(f"maps/{quant_part(m)}")
                if values is not None and quant is not None:
                    decoded = np.zeros(values.shape, np.float32)
                    decoded[rows] = decode_map(m, values[rows], quant[rows])
                    report_nonfinite(f"maps/{m} (decoded)", decoded)
            elif values is not None:
                report_nonfinite(f"maps/{m}", values)
        ts = read("clips/timestamp")
        if ts is not None:
            report_nonfinite("clips/timestamp", ts)
        fi = read("clips/frame_index")
        if fi is not None:
            for r in rows[(fi[rows] < 0).any(axis=1)]:
                damage.append(f"clip {rng.start + int(r)}: clips/frame_index holds negative indices although done")
    damaged = {s: d for s, d in damaged.items() if d}
    problems += [p for s in sorted(damaged) for p in damaged[s]]
    failures = store.failures()
    info = [f"clip {clip} ({_video_of(store, clip)}) failed: {reason}" for clip, reason in failures.items()]
    info += _unmarked_shards(store, status)
    counts = {
        "pending": int((status == STATUS_PENDING).sum()),
        "done": int((status == STATUS_DONE).sum()),
        "failed": int((status == STATUS_FAILED).sum()),
        "total": int(status.size),
        "checked_clips": checked,
        "torn_status_shards": len(torn_status),
        "damaged_shards": len(damaged),
        "problems": len(problems),
    }
    return VerifyReport(problems=problems, counts=counts, info=info, url=store.url, damaged_shards=damaged,
                        video_table_ok=not video_problems and "clips/video" not in bad_paths)


def _unmarked_shards(store: CacheStore, status: np.ndarray) -> list[str]:
    """Pending shards whose data files exist but whose status file does not: an interrupted write
    (the status file is removed first and written last) or a deleted status file. Not served;
    the next precompute rewrites them."""
    out = []
    data_path = next(iter(store.layouts))
    for shard in range(store.num_shards):
        rng = store.shard_clips(shard)
        if (status[rng.start:rng.stop] == STATUS_PENDING).all() and store.missing_shards("clips/status", [shard]) \
                and not store.missing_shards(data_path, [shard]):
            out.append(f"shard {shard} (clips {rng.start}-{rng.stop - 1}): data written but no status file (an "
                       "interrupted write or a deleted status file); pending until `p4d precompute` rewrites it")
    return out


def _video_of(store: CacheStore, clip: int) -> str:
    try:
        v = int(store.array("clips/video")[clip])
        return store.videos[v].path
    except Exception:  # noqa: BLE001 - a report line must not fail
        return "video unknown"
