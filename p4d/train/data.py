"""Conversation records → training samples, joined with the cache by video and clip.

A record (LLaVA style, one JSON object; a ``.json`` list or one per ``.jsonl`` line)::

    {"id": "vsti-0001",
     "video": "clips/street.mp4",          # or "image": "a.jpg" / ["a.jpg", "b.jpg"]
     "clip": 0,                            # optional: only this clip of the video (see below)
     "conversations": [{"from": "human", "value": "<video>\\nHow far ... <obj_1> ...?\\nA. 2 m\\nB. 5 m"},
                       {"from": "gpt", "value": "B"}],
     "regions": [{"label": "obj_1", "box": [x0, y0, x1, y1]}]}   # or "mask": COCO RLE, "polygon": [...]

Roles ``human``/``user`` and ``gpt``/``assistant`` alternate, starting with the human; the
``<video>``/``<image>`` placeholders are dropped (the student puts its video block before the
first question). Paths are relative to the data file's folder (or ``video_root``). Regions are
boxes/masks on the first frame in its display pixels, drawn as SoM marks at load time.

Clips: without ``"clip"`` a record trains **every done clip** of its video, one sample per clip
per epoch (a video cached with ``--policy stride`` as 5 clips gives 5 samples of that record, each
with its own targets; regions are drawn on each clip's first frame). ``"clip": k`` trains only
the video's k-th clip (0-based, in time order), as before. ``data_report.json`` counts both under
``clips``: records that named a clip, records that took all clips, the samples those made, and their
clips that were not done (pending or failed: not trained).

Joining: a video matches a cache row by resolved path, else by its content fingerprint (size +
sha256 of the first MiB, as the planner records it), so a moved dataset still joins. The clip's
status decides the sample's kind: ``video`` (done: targets from the cache), or, for failed,
pending, out-of-range clips and videos not in the cache (a record without ``"clip"``: a video
without any done clip), skipped and counted (``video-sft``, SFT only, with
``allow_missing_targets``). On a partial cache one headline says "cache N/M clips done" and how
many records wait on pending clips; the records themselves are in ``data_report.json``. Image
records are ``image`` samples: SFT only, no cache lookup, time cue off. Nothing here raises for
one bad record; the :class:`DataReport` counts them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p4d.cache_schema import STATUS_DONE, STATUS_FAILED, CacheStore
from p4d.cache_schema.contract import file_fingerprint
from p4d.errors import ConfigError

log = logging.getLogger(__name__)

KINDS = ("video", "video-sft", "image")
HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")
_PLACEHOLDER = re.compile(r"<(video|image)>\s*", re.IGNORECASE)
#: How many example messages are kept per skip reason.
EXAMPLES_PER_REASON = 3
#: Skip reasons summed up in one headline (a partial cache) instead of one log line per record.
QUIET_REASONS = ("pending_clip",)


@dataclass(frozen=True)
class Sample:
    """One training sample.

    kind: ``video`` (cache targets), ``video-sft`` (decoded without targets) or ``image``.
    media: the video path, or the image paths. clip: the global cache clip (``video``), or the
    clip number within the video (``video-sft``). shard: the cache shard (−1 off the cache).
    num_frames: N frames the student sees.
    """

    kind: str
    record_id: str
    turns: tuple[tuple[str, str], ...]
    media: tuple[str, ...]
    clip: int
    shard: int
    num_frames: int
    regions: tuple[dict, ...] = ()

    @property
    def bucket(self) -> tuple[str, int]:
        """Samples of one batch share kind and N (so frames and targets stack)."""
        return (self.kind, self.num_frames)


@dataclass
class DataReport:
    """What happened to every record: counts per sample kind and per skip reason, with examples."""

    records: int = 0
    kinds: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    degraded: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: one_clip_records ("clip": k), all_clip_records (no "clip"), all_clip_samples (what those made),
    #: all_clip_not_done (their clips pending or failed, not trained)
    clips: Counter = field(default_factory=Counter)
    #: the cache's clip counts: clips, done, pending, failed
    cache: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(message)
        if reason in QUIET_REASONS:
            log.debug("skipping record: %s", message)
        else:
            log.warning("skipping record: %s", message)

    def note(self, reason: str, message: str) -> None:
        """A record that is kept but degraded (e.g. SFT only); counted under ``reason``."""
        self.degraded[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(message)
        log.info("%s", message)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "kinds": dict(self.kinds), "skipped": dict(self.skipped),
                "degraded": dict(self.degraded), "clips": dict(self.clips), "cache": dict(self.cache),
                "examples": self.examples}

    def cache_headline(self) -> str | None:
        """"cache N/M clips done (...)" when the cache is partial (some clip pending), else None."""
        c = self.cache
        if not c or not c["pending"]:
            return None
        line = f"cache {c['done']}/{c['clips']} clips done ({c['pending']} pending, {c['failed']} failed)"
        waiting = self.skipped.get("pending_clip", 0)
        if waiting:
            line += f"; {waiting} record(s) wait on pending clips and are skipped (run `p4d precompute` to finish)"
        if self.clips.get("all_clip_not_done"):
            line += f"; {self.clips['all_clip_not_done']} clip(s) of all-clip records not done, not trained"
        return line + "; details in data_report.json"

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items())) or "none"
        line = f"{self.records} records, {sum(self.kinds.values())} samples: {kinds}"
        if self.skipped:
            line += "; skipped " + ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items()))
        if self.degraded:
            line += "; " + ", ".join(f"{n} {k}" for k, n in sorted(self.degraded.items()))
        if self.clips.get("all_clip_records"):
            line += (f"; {self.clips['all_clip_records']} record(s) without 'clip' trained "
                     f"{self.clips['all_clip_samples']} clip(s)")
        return line


# ---- reading records ---------------------------------------------------------------------------

def read_records(path: str | Path, report: DataReport) -> list[tuple[str, Any]]:
    """[(label, record)] from a .json list or a .jsonl file; bad JSONL lines are counted, not raised."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--data {path}: no such file; expected a conversation .json or .jsonl")
    text = path.read_text(encoding="utf-8")
    out: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            report.records += 1
            try:
                out.append((f"{path.name}:{number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                report.skip("malformed", f"{path.name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--data {path}: not valid JSON ({exc.msg}, line {exc.lineno}); "
                          "use .jsonl to have bad records skipped one by one") from None
    if not isinstance(data, list):
        raise ConfigError(f"--data {path}: expected a JSON list of records, found {type(data).__name__}")
    report.records += len(data)
    return [(f"{path.name}[{i}]", r) for i, r in enumerate(data)]


def parse_turns(record: dict) -> tuple[tuple[str, str], ...]:
    """(question, answer) pairs of a record's ``conversations``; ConfigError if malformed."""
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ConfigError("expected a non-empty 'conversations' list")
    turns = []
    for k in range(0, len(conv), 2):
        pair = conv[k:k + 2]
        if len(pair) != 2:
            raise ConfigError(f"turn {k + 1} ({_role(pair[0])!r}) has no assistant answer after it")
        (q, a) = pair
        if _role(q) not in HUMAN_ROLES or _role(a) not in ASSISTANT_ROLES:
            raise ConfigError(f"turns {k + 1}-{k + 2}: expected a human turn then a gpt turn, found "
                              f"{_role(q)!r} then {_role(a)!r}")
        question = _PLACEHOLDER.sub("", _text(q, k + 1)).strip()
        answer = _text(a, k + 2).strip()
        if not answer:
            raise ConfigError(f"turn {k + 2}: empty answer")
        turns.append((question, answer))
    return tuple(turns)


def _role(turn: Any) -> str:
    return str(turn.get("from", turn.get("role", ""))).lower() if isinstance(turn, dict) else repr(turn)


def _text(turn: dict, number: int) -> str:
    value = turn.get("value", turn.get("content"))
    if not isinstance(value, str):
        raise ConfigError(f"turn {number}: expected a string 'value', found {value!r}")
    return value


def parse_regions(record: dict) -> tuple[dict, ...]:
    regions = record.get("regions") or []
    if not isinstance(regions, list):
        raise ConfigError(f"'regions': expected a list, found {type(regions).__name__}")
    out = []
    for k, r in enumerate(regions):
        if not isinstance(r, dict) or not isinstance(r.get("label"), str):
            raise ConfigError(f"regions[{k}]: expected an object with a string 'label'")
        given = [key for key in ("box", "mask", "polygon") if r.get(key) is not None]
        if len(given) != 1:
            raise ConfigError(f"region {r['label']!r}: expected exactly one of box, mask, polygon, found {given}")
        if "box" in given:
            box = r["box"]
            if (not isinstance(box, (list, tuple)) or len(box) != 4
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
                    or box[2] <= box[0] or box[3] <= box[1]):
                raise ConfigError(f"region {r['label']!r}: box: expected [x0, y0, x1, y1] with x1 > x0, y1 > y0, "
                                  f"found {box!r}")
        out.append(dict(r))
    return tuple(out)


# ---- joining with the cache ---------------------------------------------------------------------

def _norm(path: str) -> str:
    return path if "://" in path else os.path.normpath(os.path.abspath(path))


class CacheIndex:
    """Video path (or content) → (row in videos.json, first global clip of that video)."""

    def __init__(self, store: CacheStore):
        self.store = store
        self.status = store.clip_status()
        self.first_clip: list[int] = []
        offset = 0
        for v in store.videos:
            self.first_clip.append(offset)
            offset += v.num_clips
        self.by_path = {_norm(v.path): row for row, v in enumerate(store.videos)}
        self._by_content: dict[tuple[int, str], int] | None = None
        self._failures: dict[int, str] | None = None

    def failure(self, clip: int) -> str:
        if self._failures is None:
            self._failures = self.store.failures()
        return self._failures.get(clip, "no reason recorded")

    def find(self, path: str) -> int | None:
        row = self.by_path.get(_norm(path))
        if row is not None:
            return row
        if self._by_content is None:
            self._by_content = {(v.size_bytes, v.content_hash): row for row, v in enumerate(self.store.videos)
                                if v.content_hash}
        size, digest = file_fingerprint(path)
        return self._by_content.get((size, digest)) if digest else None


def _resolve(entry: str, base: Path) -> str:
    return entry if "://" in entry or Path(entry).is_absolute() else str(base / entry)


def _exists(path: str) -> bool:
    return "://" in path or Path(path).is_file()


def build_samples(
    conversations: str | Path,
    store: CacheStore,
    *,
    video_root: str | Path | None = None,
    allow_missing_targets: bool = False,
) -> tuple[list[Sample], DataReport]:
    """Every trainable sample of the conversation file, and the report of what was skipped."""
    conversations = Path(conversations)
    base = Path(video_root) if video_root else conversations.parent
    report = DataReport()
    index = CacheIndex(store)
    n_frames = store.spec.num_frames
    report.cache = {"clips": int(index.status.size), "done": int((index.status == STATUS_DONE).sum()),
                    "failed": int((index.status == STATUS_FAILED).sum())}
    report.cache["pending"] = report.cache["clips"] - report.cache["done"] - report.cache["failed"]
    samples: list[Sample] = []
    for label, record in read_records(conversations, report):
        try:
            if not isinstance(record, dict):
                raise ConfigError(f"expected a JSON object, found {type(record).__name__}")
            rid = str(record.get("id", label))
            turns = parse_turns(record)
            regions = parse_regions(record)
        except ConfigError as exc:
            report.skip("malformed", f"{label}: {exc}")
            continue
        where = f"{label} (id {rid})"
        if record.get("video"):
            made = _video_samples(record, rid, where, turns, regions, base, index, n_frames, allow_missing_targets,
                                  report)
        elif record.get("image"):
            made = [s for s in [_image_sample(record, rid, where, turns, regions, base, report)] if s is not None]
        else:
            report.skip("no_media", f"{where}: has neither 'video' nor 'image'")
            made = []
        for sample in made:
            samples.append(sample)
            report.kinds[sample.kind] += 1
    headline = report.cache_headline()
    if headline:
        log.warning("%s", headline)
    log.info("data %s: %s", conversations, report.summary())
    return samples, report


def _video_samples(record, rid, where, turns, regions, base, index: CacheIndex, n_frames, allow_missing,
                   report) -> list[Sample]:
    """The record's samples: its one clip (``"clip": k``), or every done clip of its video."""
    path = _resolve(str(record["video"]), base)
    if not _exists(path):
        report.skip("missing_video", f"{where}: video {path} does not exist")
        return []
    if "clip" in record:
        report.clips["one_clip_records"] += 1
    else:
        report.clips["all_clip_records"] += 1
        row = index.find(path)
        if row is not None:
            first, count = index.first_clip[row], index.store.videos[row].num_clips
            done = [g for g in range(first, first + count) if int(index.status[g]) == STATUS_DONE]
            report.clips["all_clip_not_done"] += count - len(done)
            if done:
                report.clips["all_clip_samples"] += len(done)
                return [Sample(kind="video", record_id=rid, turns=turns, media=(path,), clip=g,
                               shard=index.store.shard_of(g), num_frames=n_frames, regions=regions) for g in done]
        # not in the cache, or no done clip: skipped (or SFT-only) as a record of its clip 0
    sample = _one_clip_sample(record, rid, where, turns, regions, path, index, n_frames, allow_missing, report)
    return [] if sample is None else [sample]


def _one_clip_sample(record, rid, where, turns, regions, path, index: CacheIndex, n_frames, allow_missing, report):
    clip = record.get("clip", 0)
    if isinstance(clip, bool) or not isinstance(clip, int) or clip < 0:
        report.skip("malformed", f"{where}: 'clip': expected an int >= 0, found {clip!r}")
        return None
    row = index.find(path)
    problem = reason = None
    if row is None:
        reason, problem = "not_in_cache", f"video {path} is not in the cache {index.store.url}"
    elif clip >= index.store.videos[row].num_clips:
        reason, problem = "clip_out_of_range", (f"clip {clip} of {path}: the cache planned "
                                                f"{index.store.videos[row].num_clips} clip(s) for it")
    else:
        g = index.first_clip[row] + clip
        status = int(index.status[g])
        if status == STATUS_DONE:
            return Sample(kind="video", record_id=rid, turns=turns, media=(path,), clip=g,
                          shard=index.store.shard_of(g), num_frames=n_frames, regions=regions)
        if status == STATUS_FAILED:
            why = index.failure(g)
            reason, problem = "failed_clip", f"cache clip {g} ({path} clip {clip}) failed in precompute: {why}"
        else:
            reason, problem = "pending_clip", f"cache clip {g} ({path} clip {clip}) is pending (run `p4d precompute`)"
    if allow_missing:
        report.note("sft_only_missing_targets", f"{where}: {problem}; training it SFT-only (--allow-missing-targets)")
        return Sample(kind="video-sft", record_id=rid, turns=turns, media=(path,), clip=clip, shard=-1,
                      num_frames=n_frames, regions=regions)
    report.skip(reason, f"{where}: {problem} (--data.allow-missing-targets trains such records SFT-only)")
    return None


def _image_sample(record, rid, where, turns, regions, base, report):
    images = record["image"]
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        report.skip("malformed", f"{where}: 'image': expected a path or a list of paths, found {images!r}")
        return None
    paths = tuple(_resolve(i, base) for i in images)
    missing = [p for p in paths if not _exists(p)]
    if missing:
        report.skip("missing_image", f"{where}: image {missing[0]} does not exist")
        return None
    return Sample(kind="image", record_id=rid, turns=turns, media=paths, clip=-1, shard=-1,
                  num_frames=len(paths), regions=regions)
