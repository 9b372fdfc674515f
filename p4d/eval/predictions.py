"""The predictions file: JSONL, one header line then one line per predicted item; resumable.

Line 1 (``"type": "header"``): the benchmark (path + sha256), model dir or baseline, frames, cache,
attention implementation and dtype, the model's saved preset (strategy, loss, time cue,
trainability), the p4d version. Each further line (``"type": "prediction"``): id, category, split,
answer, raw model text, parsed answer, score, and the sampled frame indices/timestamps.

Every line is written whole, flushed and fsynced, so a killed eval leaves at most one torn last line;
reopening drops it and continues after the items already there. Reopening with another benchmark
or run setting (:data:`RESUME_KEYS`) is refused, naming ``--out``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from p4d.errors import ConfigError

log = logging.getLogger(__name__)

#: Header fields that must agree for a run to continue an existing predictions file.
RESUME_KEYS = ("bench_sha256", "model", "baseline", "frames", "cache", "attn", "dtype", "protocol", "seed")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_predictions(path: str | Path) -> tuple[dict, dict[str, dict]]:
    """(header, id -> last prediction record) of a predictions file; a torn last line is ignored."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"predictions file {path}: no such file")
    header, records, _ = _scan(path)
    if header is None:
        raise ConfigError(f"predictions file {path}: no header line; expected a file written by `p4d eval`")
    return header, records


def _scan(path: Path) -> tuple[dict | None, dict[str, dict], int]:
    """Header, records, and the byte length of the complete lines (a torn tail excluded)."""
    data = path.read_bytes()
    header, records, good = None, {}, 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        good += len(line)
        if record.get("type") == "header" and header is None:
            header = record
        elif record.get("type") == "prediction" and "id" in record:
            records[str(record["id"])] = record
    return header, records, good


class PredictionsWriter:
    """Appends prediction lines to a predictions file; ``done`` holds the records already there."""

    def __init__(self, path: str | Path, header: dict, *, resume: bool = True) -> None:
        self.path = Path(path)
        self.done: dict[str, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.is_file() and self.path.stat().st_size:
            old, self.done, good = _scan(self.path)
            if old is None:
                raise ConfigError(f"--out {self.path}: exists but is not a p4d predictions file; choose another --out")
            changed = [k for k in RESUME_KEYS if old.get(k) != header.get(k)]
            if changed:
                diffs = ", ".join(f"{k}: {old.get(k)!r} -> {header.get(k)!r}" for k in changed)
                raise ConfigError(f"--out {self.path}: holds predictions of another run ({diffs}); "
                                  f"choose another --out or delete the file")
            if good < self.path.stat().st_size:
                log.warning("%s: dropping a torn last line (an interrupted write)", self.path)
                with self.path.open("r+b") as f:
                    f.truncate(good)
            self.header = old
            log.info("%s: resuming, %d items already predicted", self.path, len(self.done))
        else:
            self.header = dict(header, type="header")
            with self.path.open("wb") as f:
                self._write_line(f, self.header)

    def append(self, record: dict) -> None:
        record = dict(record, type="prediction")
        with self.path.open("ab") as f:
            self._write_line(f, record)
        self.done[str(record["id"])] = record

    @staticmethod
    def _write_line(f, record: dict) -> None:
        f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
