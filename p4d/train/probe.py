"""Probe mode (``p4d train --probe-from RUN``): D_4DP trained on a frozen student, the fair control of P4D.

The student (E_v, TPE, E_p, LLM) of the source run's checkpoint is loaded and frozen; only a freshly
initialised D_4DP trains, against the cache's F_4D (LD) and, through the frozen D_m, the maps (ED), as
``--loss`` says. An SFT-only student (``--strategy 4d-sft``) has no D_4DP and predicts no F̂_4D;
probed, it does, so ``p4d eval distill`` and ``p4d inspect --compare`` score it beside a P4D student on
the same clips: what a linear (or MLP) read-out of a student trained without P4D finds in its hidden
states F_hidden (N, h, w, c) about F_4D (taps, N', h', w', c').

The probe run takes the source's architecture (``--model.*``), time cue and trainability record;
its checkpoints hold the whole student (the source's weights bit for bit) plus D_4DP. It writes no
export: without D_4DP, that would be the source's student unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from torch import nn

from p4d.errors import CheckpointError, ConfigError
from p4d.train.config import TrainConfig

log = logging.getLogger(__name__)

#: parameters the probe does not copy from the source: D_4DP trains from its seeded init, D_m comes from the cache
NOT_COPIED = ("d4dp.", "heads.")
#: strategies a probe refuses: their student reads the cached F_4D as input, so a probe would read its own target
READS_F4D = ("4d-concat", "4d-pe")


def resolve_probe(cfg: TrainConfig) -> Path:
    """The source checkpoint folder of ``--probe-from`` (a run folder: its newest checkpoint; or one
    ``step-K`` folder). Makes ``cfg`` the source's student: ``--model.*`` (the D_4DP settings given on
    this run's command line kept), ``--time-cue``, ``--tune`` (a LoRA source's adapters are merged, so
    its full-weight preset); records the exact folder in ``cfg.probe_from`` and turns the export off."""
    from p4d.train.checkpoint import META, find_checkpoint, read_meta
    from p4d.train.distributed import world_size

    try:
        folder = find_checkpoint(cfg.probe_from)
    except CheckpointError:
        raise CheckpointError(
            f"--probe-from {cfg.probe_from}: no student checkpoint there (expected a `p4d train` run folder holding "
            f"checkpoints/step-K/{META}, or one step-K folder; an export has no training config to rebuild from)"
        ) from None
    source = TrainConfig.from_dict(read_meta(folder)["config"], source=str(folder / META))
    if source.recipe.strategy in READS_F4D:
        raise ConfigError(f"--probe-from {folder}: its student (--strategy {source.recipe.strategy}) reads the cached "
                          "F_4D as input, so a probe of it would read its own target; probe a 4d-sft or p4d run")
    for flag, name in (("--student", "preset"), ("--model.config-file", "config_file")):
        mine, theirs = getattr(cfg.model, name), getattr(source.model, name)
        if mine is not None and mine != theirs:
            raise ConfigError(f"{flag} {mine}: --probe-from {folder} trained {flag} {theirs}; the probe keeps the "
                              f"source's student, drop {flag}")
    keep = {n: getattr(cfg.model, n) for n in ("d4dp", "d4dp_time", "d4dp_hidden") if getattr(cfg.model, n) is not None}
    cfg.model = dataclasses.replace(source.model, **keep)
    cfg.recipe.time_cue = source.recipe.time_cue
    cfg.recipe.tune = "tune-p+llm" if source.recipe.tune.endswith("-lora") else source.recipe.tune
    if cfg.runtime.parallel == "auto" and world_size() > 1:
        cfg.runtime.parallel = "ddp"  # only D_4DP trains: every rank holds it whole
    if cfg.checkpoint.export:
        log.info("--probe-from: no export (without D_4DP it is the source's student unchanged)")
        cfg.checkpoint.export = False
    cfg.probe_from = str(folder)
    log.info("probe of %s (strategy %s, time cue %s): the student is frozen, only D_4DP trains", folder,
             source.recipe.strategy, source.recipe.time_cue)
    return folder


def copy_source_student(model: nn.Module, folder: str | Path, *, cache: str, device) -> int:
    """Load the source checkpoint's student (its recipe rebuilt, LoRA merged) and copy every parameter
    and buffer but D_4DP and D_m into ``model``; returns how many tensors were copied. CheckpointError
    naming ``--probe-from`` when the two students do not match tensor for tensor."""
    import torch

    from p4d.train.checkpoint import load_checkpoint_model
    from p4d.train.model.trainability import merge_lora

    source, source_cfg = load_checkpoint_model(folder, cache=cache, device=device)
    if source_cfg.recipe.tune.endswith("-lora"):
        merge_lora(source)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith(NOT_COPIED)}
    mine = model.state_dict()
    wrong = [k for k, v in state.items() if k not in mine or mine[k].shape != v.shape]
    missing = [k for k in mine if not k.startswith(NOT_COPIED) and k not in state]
    if wrong or missing:
        raise CheckpointError(f"--probe-from {folder}: the probe's student does not match the source's "
                              f"(unexpected or reshaped: {wrong[:3]}, missing: {missing[:3]})")
    with torch.no_grad():
        for k, v in state.items():
            mine[k].copy_(v)
    del source
    return len(state)


def freeze_for_probe(model: nn.Module) -> dict[str, int]:
    """Every parameter frozen but D_4DP's; returns {part: trainable parameter count} like
    :func:`~p4d.train.model.apply_trainability`."""
    if getattr(model, "d4dp", None) is None:
        raise ConfigError("--probe-from: the student has no D_4DP to train (--strategy p4d builds it)")
    model.requires_grad_(False)
    model.d4dp.requires_grad_(True)
    from p4d.train.model.trainability import trainable_counts

    counts = trainable_counts(model)
    log.info("probe: trainable %s", counts)
    return counts
