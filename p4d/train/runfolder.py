"""What ``p4d train`` checks about its run folder before anything is written or started.

- ``--out`` over an existing run is refused unless ``--overwrite`` (which then clears it), or
  unless the run continues there (``--resume`` of that same folder).
- ``--resume`` of a run already at its ``--steps`` is refused with the flag to raise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from p4d.errors import ConfigError, Interrupted

#: files and folders a run writes into OUT (what --overwrite clears)
RUN_ENTRIES = ("config.yaml", "data_report.json", "log.jsonl", "checkpoints", "export", "tensorboard")


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("config.yaml", "checkpoints", "log.jsonl"))


def check_out_folder(out: str | Path, *, resume_from: Path | None, overwrite: bool) -> None:
    """Refuse to write a new run over ``out`` when it holds one; ``overwrite`` clears it (rank 0)."""
    out = Path(out)
    if not is_run_folder(out):
        return
    if resume_from is not None and out.resolve() in resume_from.resolve().parents:
        return  # continuing the run that lives there
    if not overwrite:
        raise ConfigError(f"--out {out}: already holds a run (config.yaml, checkpoints); continue it with "
                          f"`p4d train --resume {out}`, choose another --out, or pass --overwrite to replace it")
    if int(os.environ.get("RANK", "0")) == 0:
        for name in RUN_ENTRIES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for stale in out.glob("grads-step-*.safetensors"):
            stale.unlink()


def check_not_finished(resume_from: Path, meta: dict[str, Any], max_steps: int) -> None:
    """Refuse ``--resume`` of a checkpoint already at (or past) ``max_steps``."""
    step = int(meta.get("step", 0))
    if step >= max_steps:
        raise ConfigError(f"--resume {resume_from}: already at step {step} of --steps {max_steps} "
                          f"(optim.max-steps), nothing to train; pass a larger --steps, e.g. --steps {max_steps * 2}")


class TrainInterrupted(Interrupted):
    """Ctrl-C during training: the last completed step is checkpointed; the message gives the resume command."""

    def __init__(self, out: str | Path, step: int, saved: Path | None):
        self.out, self.step, self.saved = Path(out), step, saved
        if saved is None:
            text = (f"p4d train: stopped by Ctrl-C before the first step completed; nothing was saved in {out}. "
                    f"Start again with --overwrite")
        else:
            text = (f"p4d train: stopped by Ctrl-C after step {step}; saved {saved}. "
                    f"Continue with: p4d train --resume {out}")
        super().__init__(text)
