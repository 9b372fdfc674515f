"""Data parallelism of the trainer (``--runtime.parallel``): none, DDP or FSDP2.

- ``none``: one process, no wrapper (a plain run; refused under torchrun with more processes).
- ``ddp``: every rank holds the whole student, gradients are all-reduced
  (``find_unused_parameters=True``: LoRA and the frozen parts leave parameters without gradients).
- ``fsdp``: ``torch.distributed.fsdp.fully_shard`` (FSDP2) on every transformer block of the LLM
  (and of E_v when E_v trains) and on the untied embedding and lm_head, then on the root: each rank
  holds 1/world of every trainable parameter (and so of its gradient and of AdamW's moments),
  all-gathered unit by unit for the forward and the backward. Frozen parameters (E_v when frozen,
  the D_m heads) are left out of the sharded groups (``ignored_params``) and stay whole on every
  rank: FSDP2 wants one dtype and one ``requires_grad`` per group, and frozen modules keep the
  preset's bf16 under ``bf16-mixed``. ``bf16-mixed`` becomes ``MixedPrecisionPolicy(param_dtype=
  bfloat16, reduce_dtype=float32)`` over the fp32 sharded masters; ``fp32`` has no policy. LoRA
  recipes are refused (DDP trains them).
- ``auto``: ``fsdp`` when the recipe full-tunes the LLM (``tune-all``, ``tune-llm``, ``tune-p+llm``)
  and more than one process runs, ``ddp`` for the other recipes, ``none`` for one process. The run's
  config.yaml records the resolved choice, never ``auto``.

Loading without world-size copies (:func:`place_sharded`, called by
:func:`p4d.train.build.build_sharded_model`): rank 0 builds the student as a plain run does (seeded
init, or ``--model.init-from`` read from disk); every other rank builds it with its parameters on
the meta device (no bytes, :mod:`p4d.train.meta_device`); all shard; rank 0 broadcasts the full
state and each rank keeps its shard. Only rank 0 ever holds the whole student. This module takes a
built student; it never builds one (``build`` imports ``sharding``, not the other way round).

Gradient accumulation under FSDP reduce-scatters every micro-batch (FSDP2 has no ``no_sync``;
skipping the sync would keep unsharded gradients on every rank, which sharding exists to avoid).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

from p4d.errors import ConfigError
from p4d.train.config import PARALLEL
from p4d.train.meta_device import local_tensor, materialize, parameters_on_meta

log = logging.getLogger(__name__)

#: Recipes that full-tune the LLM's weights (``auto`` shards them).
FULL_LLM_TUNES = ("tune-all", "tune-llm", "tune-p+llm")


def resolve_parallel(name: str, tune: str, world_size: int) -> str:
    """The concrete choice (``none`` | ``ddp`` | ``fsdp``) of ``--runtime.parallel name`` for the
    recipe ``tune`` at ``world_size`` processes."""
    if name not in PARALLEL:
        raise ConfigError(f"--runtime.parallel {name!r}: expected one of {', '.join(PARALLEL)}")
    if name == "auto":
        if world_size <= 1:
            return "none"
        return "fsdp" if tune in FULL_LLM_TUNES else "ddp"
    if name == "none" and world_size > 1:
        raise ConfigError(f"--runtime.parallel none: {world_size} processes run; pass --runtime.parallel auto, ddp "
                          "or fsdp (a run resumed at more processes than it started with keeps its recorded choice)")
    return name


# ---- sharding -------------------------------------------------------------------------------------

def shard_units(model: nn.Module) -> list[nn.Module]:
    """The units FSDP2 gathers one at a time below the root: the LLM's decoder layers, E_v's encoder
    layers when E_v trains, and the untied input embedding and lm_head (NVILA-Lite-8B: 545 M
    parameters each, which the root would otherwise keep gathered through the whole step). Tied ones
    (NVILA-Lite-2B) stay in the root with the projector, D_4DP and the final norms."""
    units = list(model.llm.model.layers)
    units += list(model.vision_tower.get_submodule("encoder.layers"))  # SiglipVisionModel (transformers 5)
    if not model.llm.config.tie_word_embeddings:
        units += [model.llm.get_input_embeddings(), model.llm.lm_head]
    return [u for u in units if any(p.requires_grad for p in u.parameters())]


def mixed_precision(policy: str):
    """FSDP2's policy for the trainer's ``--runtime.precision`` (resolved)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if policy in ("bf16-mixed", "bf16-pure"):
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_student(model: nn.Module, *, precision: str, device: torch.device) -> nn.Module:
    """``fully_shard`` every transformer block, then the root (in place; returns ``model``).
    Frozen parameters are ignored (left whole, moved to ``device``)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    import torch.distributed as dist

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    frozen = {p for p in model.parameters() if not p.requires_grad}
    for p in frozen:  # FSDP2 moves what it shards (shard by shard), not what it ignores
        if not p.is_meta and p.device != device:
            p.data = p.data.to(device)
    for module in model.modules():
        for name, b in module._buffers.items():
            if b is not None and not b.is_meta and b.device != device:
                module._buffers[name] = b.to(device)
    kwargs: dict[str, Any] = dict(mesh=mesh, mp_policy=mixed_precision(precision), ignored_params=frozen)
    for unit in shard_units(model):
        fully_shard(unit, **kwargs)
    fully_shard(model, **kwargs)
    # FSDP2 warns on every step that the root returned a view (``out["hidden"]``, the visual tokens'
    # hidden states reshaped): an in-place op on it would skip the backward hook. The trainer only reads
    # the outputs out of place (``loss / grad_accum``, ``float(term)``), and the FSDP-equals-one-process
    # tests hold the gradients.
    warnings.filterwarnings("ignore", message=rf"FSDP2-wrapped module \({type(model).__name__}\) returned a view",
                            category=UserWarning)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def local_parameter_bytes(model: nn.Module, *, trainable: bool = True) -> tuple[int, int]:
    """(bytes this rank holds, bytes of the whole parameters) of the trainable (or frozen) parameters;
    sharded parameters count their local shard."""
    here = total = 0
    for p in model.parameters():
        if p.requires_grad != trainable:
            continue
        here += local_tensor(p).numel() * p.element_size()
        total += p.numel() * p.element_size()
    return here, total


def place_sharded(model: nn.Module, *, precision: str, device: torch.device) -> nn.Module:
    """Shard a built student over the process group and fill every rank's shards from rank 0's
    weights (every rank calls it): rank 0 passes the student built for real (on the host), the
    other ranks the same student built with its parameters on the meta device."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    is_main = dist.get_rank() == 0
    full = model.state_dict() if is_main else {}  # references to the built tensors, before sharding drops them
    shard_student(model, precision=precision, device=device)
    if not is_main:
        materialize(model, device)
    model.place_attention(device)  # attn auto: as a one-process run on this device decides
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    dist.barrier()
    here, total = local_parameter_bytes(model)
    log.info("fsdp: rank %d holds %.1f of %.1f MB of trainable parameters", dist.get_rank(), here / 2**20,
             total / 2**20)
    return model


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor (a collective: every rank calls it); ``t`` itself otherwise."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def gather_student(model: nn.Module, is_main: bool) -> nn.Module | None:
    """An unsharded inference copy (no D_4DP, no D_m) of a sharded student, on the CPU of rank 0
    (None on the other ranks). Every rank calls it; only rank 0 holds the whole weights, gathered
    block by block straight to CPU."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from p4d.train.model import build_student
    from p4d.train.model.student import TRAINING_ONLY_MODULES

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not is_main:
        return None
    with parameters_on_meta():
        plain = build_student(model.cfg, tokenizer=model.tokenizer, training_modules=False)
    keep = {k: v for k, v in full.items() if k.split(".", 1)[0] not in TRAINING_ONLY_MODULES}
    plain.load_state_dict(keep, strict=True, assign=True)
    if plain.llm.config.tie_word_embeddings:
        plain.llm.tie_weights()
    return plain.eval()
