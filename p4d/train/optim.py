"""The trainer's AdamW and its warmup + cosine schedule.

- :func:`build_optimizer`: one AdamW group per (part, decay) (:func:`param_groups`),
  with the fused kernel (one launch for the whole update) when every trainable parameter is a CUDA
  floating tensor (FSDP2's sharded DTensors included); torch's default elsewhere (the for-loop on
  the CPU).
- :func:`lr_factor` / :func:`build_scheduler`: transformers' ``get_cosine_schedule_with_warmup``
  (what the release's HF Trainer runs, notes/release.md §5) step for step: the factor of the step
  that has finished ``s`` optimizer steps is ``s / warmup`` during warmup (so the first step runs
  at lr 0, as the release's does), then a cosine from 1 at ``warmup`` to ``floor`` at ``total``
  (``--optim.min-lr-ratio``; 0 is the release, as ``get_cosine_with_min_lr_schedule_with_warmup``
  computes it otherwise). ``--optim.warmup-ratio r`` means ``ceil(r × max_steps)`` warmup steps,
  as the HF Trainer counts them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from p4d.errors import ConfigError
from p4d.train.config import TrainConfig

#: Student part → optimizer group (and the OptimConfig field with its lr).
PARAM_GROUPS = {"vision_tower": "lr_vision", "mm_projector": "lr_projector", "f4d_embed": "lr_projector",
                "llm": "lr_llm", "d4dp": "lr_d4dp"}


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One AdamW group per (part, decay): lr from ``--optim.lr-*``; biases and norms get no decay."""
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = name.split(".", 1)[0]
        if part not in PARAM_GROUPS:
            raise ConfigError(f"trainable parameter {name!r} belongs to no optimizer group ({', '.join(PARAM_GROUPS)})")
        groups.setdefault((part, p.ndim >= 2), []).append(p)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = getattr(cfg.optim, PARAM_GROUPS[part])
        out.append({"params": params, "lr": lr, "weight_decay": cfg.optim.weight_decay if decay else 0.0,
                    "name": f"{part}{'' if decay else '.no_decay'}"})
    if not out:
        raise ConfigError(f"--tune {cfg.recipe.tune}: no parameter is trainable")
    return out


def adamw_options(params: Iterable[torch.Tensor]) -> dict[str, bool]:
    """``{"fused": True}`` when every parameter is a floating tensor on CUDA, else ``{}``."""
    params = list(params)
    if params and all(p.device.type == "cuda" and p.is_floating_point() for p in params):
        return {"fused": True}
    return {}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    options = adamw_options(p for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, betas=tuple(cfg.optim.betas), **options)


def warmup_steps(cfg: TrainConfig) -> int:
    o = cfg.optim
    return o.warmup_steps if o.warmup_steps > 0 else int(math.ceil(o.warmup_ratio * o.max_steps))


def lr_factor(step: int, *, warmup: int, total: int, floor: float = 0.0) -> float:
    """The lr multiplier after ``step`` finished optimizer steps (the one the next step uses):
    ``step / warmup`` while ``step < warmup``, then a cosine from 1 to ``floor`` at ``total``."""
    if step < warmup:
        return step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    w, total, floor = warmup_steps(cfg), cfg.optim.max_steps, cfg.optim.min_lr_ratio
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup=w, total=total, floor=floor))
