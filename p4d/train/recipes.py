"""Named training recipes: ``p4d train --recipe release|paper``.

A recipe is a set of settings applied under the YAML file and the flags (defaults < recipe <
``--config`` < flags), so any of its values can still be overridden. Both print what they set.

- ``release``: the public 4D-RGPT training script (``sft.sh``, notes/release.md §3-§5): the
  NVILA-Lite-8B student (weights from ``--model.init-from``; p4d's preset runs SigLIP at 448 px as
  NVILA-Lite's published config does, while the notes name the 384-px tower), frozen
  vision tower and projector, LLM (+ D_4DP) trained (``tune-llm``), one learning rate 1e-5 with
  cosine decay, warmup ratio 0.03, weight decay 0, 10 epochs, 16 frames, model max length 16384,
  global batch 1024 through gradient accumulation, bf16, gradient checkpointing, 16 loader workers;
  D_4DP one Linear per tap on frames 0, 2, …; losses LD 0.01, depth 0.1, flow 0.001, motion 0.01,
  camray 1e-5. Not reproduced: the region extractor (``regiongpt`` mask pooling; p4d draws SoM marks
  instead) and DeepSpeed ZeRO-3 (p4d shards with its own runtime).
- ``paper``: the same, with the paper's readings where they differ: projector and LLM trained
  (``tune-p+llm``, Tab. 7's best), D_4DP as the model card's MLP (2560, GELU, Xavier) over frame
  pairs averaged.
"""

from __future__ import annotations

import math
from typing import Any

from p4d.errors import ConfigError

_RELEASE: dict[str, dict[str, Any]] = {
    "recipe": {"strategy": "p4d", "loss": "ld+ed", "time_cue": "tpe", "tune": "tune-llm"},
    "model": {"preset": "nvila-lite-8b", "d4dp": "linear", "d4dp_time": "stride", "gradient_checkpointing": True},
    "loss": {"ld_weight": 0.01, "depth_weight": 0.1, "flow_weight": 0.001, "motion_weight": 0.01,
             "camray_weight": 1e-5},
    "data": {"max_length": 16384, "num_workers": 16},
    "optim": {"lr_llm": 1e-5, "lr_d4dp": 1e-5, "lr_projector": 1e-5, "warmup_steps": 0, "warmup_ratio": 0.03,
              "min_lr_ratio": 0.0, "weight_decay": 0.0, "epochs": 10, "global_batch": 1024},
    "runtime": {"precision": "bf16-mixed"},  # DeepSpeed bf16: bf16 compute over fp32 master weights
    "expect": {"num_frames": 16},
}

_PAPER: dict[str, dict[str, Any]] = {
    **_RELEASE,
    "recipe": {**_RELEASE["recipe"], "tune": "tune-p+llm"},
    "model": {**_RELEASE["model"], "d4dp": "mlp", "d4dp_time": "mean", "d4dp_hidden": 2560},
}

RECIPES: dict[str, dict[str, dict[str, Any]]] = {"release": _RELEASE, "paper": _PAPER}


def recipe_settings(name: str) -> dict[str, dict[str, Any]]:
    """The nested settings of recipe ``name`` (a fresh copy)."""
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r}: expected one of {', '.join(RECIPES)}")
    return {section: dict(values) for section, values in RECIPES[name].items()}


def describe_recipe(name: str) -> str:
    """One line per setting the recipe makes, as flags: ``--optim.lr-llm 1e-05``."""
    lines = [f"recipe {name}: sets"]
    for section, values in recipe_settings(name).items():
        for key, value in values.items():
            lines.append(f"  --{section}.{key.replace('_', '-')} {value}")
    return "\n".join(lines)


def resolve_run_length(cfg, samples, world_size: int) -> dict[str, int]:
    """Fill ``optim.grad_accum`` from ``optim.global_batch`` and ``optim.max_steps`` from
    ``optim.epochs`` (in place, before the optimizer schedule is built); returns what was set.

    global batch = batch_size × processes × grad_accum, which must come out whole. An epoch is the
    sampler's full global micro-batches (a last partial batch is dropped), so
    max_steps = ceil(epochs × micro-batches per epoch / grad_accum).
    """
    from p4d.train.loader import ShardBatchSampler

    o, set_ = cfg.optim, {}
    if o.global_batch is not None:
        per_micro = cfg.data.batch_size * world_size
        if o.global_batch % per_micro:
            raise ConfigError(
                f"--optim.global-batch {o.global_batch}: not a multiple of --data.batch-size {cfg.data.batch_size} x "
                f"{world_size} processes = {per_micro}; change one of them")
        o.grad_accum = set_["optim.grad_accum"] = o.global_batch // per_micro
    if o.epochs is not None:
        sampler = ShardBatchSampler(samples, batch_size=cfg.data.batch_size, world_size=world_size,
                                    seed=cfg.runtime.seed)
        per_epoch = len(sampler.epoch_batches(0))
        if per_epoch == 0:
            raise ConfigError(
                f"--optim.epochs {o.epochs}: the data holds no full global micro-batch of "
                f"{cfg.data.batch_size * world_size} samples of one kind; lower --data.batch-size")
        o.max_steps = set_["optim.max_steps"] = max(1, math.ceil(o.epochs * per_epoch / o.grad_accum))
    return set_
