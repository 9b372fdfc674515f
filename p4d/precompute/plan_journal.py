"""The plan's probe results, kept on the driver's disk as they arrive, so a killed plan resumes.

``STORE.plan.jsonl`` beside a local store (for an object-store URL: ``~/.cache/p4d/plans/``, named
by a hash of the URL). Line 1 holds the plan's parameters (sampling policy, ``--max-pixels``);
each further line one probed video: its path, the (size, mtime in ns) the worker saw before
probing it, and its :class:`~p4d.cache_schema.VideoEntry`. A rerun with the same parameters
reuses every entry whose file still has that size and mtime and probes only the rest; other
parameters start a new journal. A torn last line (a kill mid-write) is ignored. The journal is
deleted once the store exists (it holds nothing the store does not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from p4d.cache_schema import VideoEntry
from p4d.cache_schema.urls import url_to_fs

log = logging.getLogger(__name__)

JOURNAL_KIND, JOURNAL_VERSION, SUFFIX = "p4d-plan-journal", 1, ".plan.jsonl"

FileKey = tuple[int, int]  # (size in bytes, mtime in ns)


def file_key(path: str) -> FileKey | None:
    """(size, mtime ns) of ``path`` as stat sees it now; None when it cannot be stat-ed (then the
    video is probed again on every run: a missing path probes in microseconds)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return int(st.st_size), int(st.st_mtime_ns)


def journal_path(store: str) -> Path:
    """Where the plan journal of ``store`` lives (see the module docstring)."""
    fs, root = url_to_fs(store)
    if "file" in fs.protocol or "local" in fs.protocol:
        root = Path(root)
        return root.with_name(root.name + SUFFIX)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "p4d" / "plans"
    return base / (hashlib.sha256(str(store).encode()).hexdigest()[:16] + SUFFIX)


class PlanJournal:
    """Append-only record of one plan's probes (``params``: what makes two plans' probes interchangeable)."""

    def __init__(self, path: Path, params: dict):
        self.path, self.params = Path(path), {"kind": JOURNAL_KIND, "version": JOURNAL_VERSION, **params}

    def _read(self) -> dict[str, tuple[FileKey | None, VideoEntry]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("plan journal %s unreadable (%s); probing every video again", self.path, exc)
            return {}
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if header != self.params:
            if lines:
                log.warning("plan journal %s was written for another plan (%s); probing every video again",
                            self.path, header)
            return {}
        out = {}
        for n, line in enumerate(lines[1:], start=2):
            try:
                rec = json.loads(line)
                key = None if rec["key"] is None else tuple(int(v) for v in rec["key"])
                out[rec["path"]] = (key, VideoEntry.from_dict(rec["entry"]))
            except (ValueError, KeyError, TypeError) as exc:  # a torn last line, or a damaged one
                log.warning("plan journal %s line %d unreadable (%s); that video is probed again", self.path, n, exc)
        return out

    def reusable(self, paths: Sequence[str]) -> dict[str, VideoEntry]:
        """The journaled entries of ``paths`` whose file is unchanged (same size and mtime) since its probe."""
        journaled = self._read()
        if not journaled:
            self.path.unlink(missing_ok=True)  # another plan's, or empty: start afresh
            return {}
        out = {}
        for p in paths:
            hit = journaled.get(p)
            if hit is not None and hit[0] is not None and hit[0] == file_key(p):
                out[p] = hit[1]
        if out:
            log.warning("plan journal %s: %d of %d videos already probed; probing the other %d", self.path,
                        len(out), len(paths), len(paths) - len(out))
        return out

    def append(self, probed: Iterable[tuple[str, FileKey | None, VideoEntry]]) -> None:
        """Record probes (path, file key before probing, entry), on disk (fsync) before returning."""
        lines = [json.dumps({"path": p, "key": None if k is None else list(k), "entry": e.to_dict()})
                 for p, k, e in probed]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                lines.insert(0, json.dumps(self.params))
            else:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn last line (a kill mid-write) stays alone on its line
                    lines.insert(0, "")
            f.write(("\n".join(lines) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
