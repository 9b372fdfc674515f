"""The trainer's precision policy (``--runtime.precision``): which dtype the parameters and the
optimizer state live in, and which dtype the forward computes in.

- ``fp32``: every parameter float32, no autocast (CPU runs, reference runs).
- ``bf16-mixed``: the trainable parameters (the master weights) and so AdamW's moments are
  float32; the forward runs under bf16 autocast; frozen modules (E_v when frozen, D_m) keep the
  preset's dtype (bf16 for the NVILA presets). Under FSDP2 the gathered copies are bf16 and the
  gradients are reduced in float32 (``MixedPrecisionPolicy``).
- ``bf16-pure``: parameters stay in the preset's dtype (bf16) and AdamW updates them there. An
  update smaller than half a bf16 ulp of the weight is lost: 10 steps at lr 2e-5 on weights of
  scale 0.02 leave most entries bit-identical (tests/train/test_precision.py). Kept only to
  reproduce that figure; never a default.
- ``auto``: ``bf16-mixed`` on CUDA, ``fp32`` on CPU. The run's config.yaml records the resolved
  policy, never ``auto``.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from p4d.errors import ConfigError
from p4d.train.config import PRECISIONS

log = logging.getLogger(__name__)

#: Older names still read from configs and checkpoints.
ALIASES = {"bf16": "bf16-mixed"}


def resolve_precision(name: str, device: torch.device | str) -> str:
    """The concrete policy (``fp32`` | ``bf16-mixed`` | ``bf16-pure``) of ``name`` on ``device``."""
    name = ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ConfigError(f"--runtime.precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16-mixed" if torch.device(device).type == "cuda" else "fp32"
    return name


def apply_precision(model: nn.Module, policy: str) -> dict[str, int]:
    """Cast ``model``'s parameters for ``policy`` (after trainability is set); returns
    {dtype name: parameter count} for the log."""
    if policy == "fp32":
        model.float()
    elif policy == "bf16-mixed":
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    elif policy != "bf16-pure":
        raise ConfigError(f"--runtime.precision {policy!r}: resolve it with resolve_precision first")
    counts: dict[str, int] = {}
    for p in model.parameters():
        key = f"{str(p.dtype).removeprefix('torch.')}{'' if p.requires_grad else ' (frozen)'}"
        counts[key] = counts.get(key, 0) + p.numel()
    log.info("precision %s: parameters %s", policy, counts)
    return counts


def autocast(policy: str, device: torch.device):
    """bf16 autocast for the ``bf16-*`` policies, nothing for ``fp32`` (``auto`` resolved on ``device``)."""
    policy = resolve_precision(policy, device)
    if policy in ("bf16-mixed", "bf16-pure"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
