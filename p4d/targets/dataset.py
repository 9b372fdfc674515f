"""A plain ``torch.utils.data.Dataset`` over conversation records, each joined with its targets.

Records are p4d's conversation format (:mod:`p4d.train.data`: LLaVA-style objects with
``video``, ``conversations`` and optional ``frame_indices`` / ``clip``). Each item is the record
(a dict, untouched) with its cache clip; :func:`collate_targets` reads the batch's targets in one
call (one shard-local read per shard touched) in the reader's layout and keeps the records as a
list, so HF Trainer, Lightning or a hand loop tokenise them as they like::

    ds = TargetDataset("train.jsonl", open_targets("cache.zarr", layout="release"))
    loader = DataLoader(ds, batch_size=8, collate_fn=ds.collate, num_workers=4)
    for batch in loader:  # {"records": [...], "frame_indices": (B, N), "l4p_encs": ..., ...}

Frames: a record's ``frame_indices`` are the frames the caller's trainer samples; without them,
the frames of the video's cached clip number ``clip`` (default 0) are used and returned in the
batch, so the caller decodes exactly those. Misses follow the reader's rule: ``on_missing="raise"``
fails on the first bad record when the dataset is built (one line naming it), ``"skip"`` drops it
and counts it in ``reader.misses`` (``skipped`` lists the record ids).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from p4d.errors import ConfigError
from p4d.targets.lookup import MissingTargetsError, TargetReader

__all__ = ["TargetDataset", "collate_targets"]

try:  # a torch Dataset where torch is installed; the same plain sequence otherwise
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover - torch is installed in the test environment
    _Base = object


def _records(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: not JSON ({exc.msg})") from None
        return out
    data = json.loads(text)
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON list of records (or a .jsonl file)")
    return data


class TargetDataset(_Base):
    """(record, cache clip, frame indices) per video record that the cache holds; see the module docstring."""

    def __init__(self, records: str | Path | list[dict], reader: TargetReader, *, video_root: str | Path | None = None):
        if isinstance(records, (str, Path)):
            path = Path(records)
            if not path.is_file():
                raise ConfigError(f"conversations {path}: no such file")
            root = Path(video_root) if video_root else path.parent
            records = _records(path)
        else:
            root = Path(video_root) if video_root else None
        if root is not None and reader.video_root is None:
            reader.video_root = root
        self.reader = reader
        self.items: list[tuple[dict, int, np.ndarray]] = []
        self.skipped: list[str] = []
        for k, rec in enumerate(records):
            rid = str(rec.get("id", k)) if isinstance(rec, dict) else str(k)
            if not isinstance(rec, dict) or not rec.get("video"):
                raise ConfigError(f"record {rid}: expected an object with a 'video' path")
            try:
                clip, frames = self._join(rec)
            except MissingTargetsError as exc:
                if reader.on_missing == "raise":
                    raise MissingTargetsError(exc.reason, f"record {rid}: {exc}") from None
                reader.misses[exc.reason] += 1
                self.skipped.append(rid)
                continue
            self.items.append((rec, clip, frames))

    def _join(self, rec: dict) -> tuple[int, np.ndarray]:
        video = str(rec["video"])
        if "frame_indices" in rec:
            frames = np.asarray(rec["frame_indices"], dtype=np.int64)
        else:
            frames = self.reader.cached_frames(video, int(rec.get("clip", 0)))
        return self.reader.find(video, frames), frames

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        rec, clip, frames = self.items[i]
        return {"record": rec, "clip": clip, "frame_indices": frames}

    def collate(self, items: list[dict]) -> dict:
        return collate_targets(items, self.reader)


def collate_targets(items: list[dict], reader: TargetReader) -> dict:
    """A batch of :class:`TargetDataset` items: ``records`` (list), ``frame_indices`` (B, N) and
    the targets in the reader's layout (one read for the batch)."""
    frames = np.stack([it["frame_indices"] for it in items])
    out = reader.read([it["clip"] for it in items], frames)
    if reader.device is not None:
        import torch

        frames = torch.from_numpy(frames)
    return {"records": [it["record"] for it in items], "frame_indices": frames, **out}
