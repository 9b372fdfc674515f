"""Building a student without its bytes: parameters on the meta device, storage allocated later.

The FSDP ranks that receive their shards from rank 0 build the student inside
:func:`parameters_on_meta` (no bytes, no init), shard it, then :func:`materialize` the shards they
hold; :func:`p4d.train.sharding.gather_student` builds the inference copy the same way and assigns
the gathered weights. This module imports nothing of p4d, so both ``build`` and ``sharding`` use it
without importing each other.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every parameter registered inside the block lives on the meta device (no bytes, no init);
    buffers stay real (rotary frequencies and position ids are not in the state dict, so nothing
    would restore them)."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and not param.is_meta:
            kind = type(param)
            module._parameters[name] = kind(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def materialize(model: nn.Module, device: torch.device) -> None:
    """Allocate (uninitialised) storage on ``device`` for ``model``'s meta parameters, keeping every
    real tensor (buffers, parameters built for real) as it was."""
    keep = {name: t.detach().clone() for name, t in _named_tensors(model) if not local_tensor(t).is_meta}
    model.to_empty(device=device)
    with torch.no_grad():
        for name, t in _named_tensors(model):
            if name in keep:
                local_tensor(t).copy_(local_tensor(keep[name]))


def _named_tensors(model: nn.Module):
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor; ``t`` itself otherwise."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t
