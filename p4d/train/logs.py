"""Training logs (rank 0): a JSONL line per logged step, a tqdm bar with the loss terms, and
TensorBoard scalars when the ``tensorboard`` package is installed.

Each JSONL record holds ``step``, ``epoch``, ``loss`` (the weighted total), every unweighted
loss term (``sft``, ``ld``, ``depth``, ``flow``, ``motion``, ``camray``), ``lr/<group>``,
``step_time`` and ``data_wait`` (seconds), ``data_wait_frac``, ``samples_per_s``,
``peak_mem_mb`` (CUDA max allocated, else the process's max RSS), ``samples`` (seen so far) and
``dropped`` (samples that failed to load in this step).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import sys
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
BAR_TERMS = ("loss", "sft", "ld", "depth", "flow", "motion", "camray")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


class RunLog:
    """Open on every rank; only ``enabled`` (rank 0) writes."""

    def __init__(self, out: str | Path, *, total_steps: int, start_step: int = 0, enabled: bool = True,
                 progress: bool = True, tensorboard: bool = False):
        self.enabled = enabled
        self.path = Path(out) / LOG_FILE
        self._file = None
        self._bar = None
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc="p4d train", unit="step", dynamic_ncols=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # TrainConfig.validate checked the package is there

            self._tb = SummaryWriter(str(Path(out) / "tensorboard"))

    def step(self, advanced: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(advanced)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        if self._bar is not None:
            self._bar.set_postfix({k: f"{record[k]:.4g}" for k in BAR_TERMS if k in record}, refresh=False)
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        for thing in (self._bar, self._tb, self._file):
            if thing is not None:
                thing.close()


def truncate_log(out: str | Path, step: int) -> int:
    """Keep the records of steps <= ``step`` (a resumed run logs the later ones again); returns how
    many records were dropped. The file is replaced atomically."""
    path = Path(out) / LOG_FILE
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:   # a torn last line
            dropped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(k + "\n" for k in kept))
        tmp.replace(path)
    return dropped


def read_log(out: str | Path) -> list[dict[str, Any]]:
    """The JSONL records of a run folder (for tests and reports); a torn last line is ignored."""
    path = Path(out) / LOG_FILE
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
