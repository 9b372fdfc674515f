"""Multi-head attention kernels for the teacher encoder.

``attend(q, k, v)`` computes softmax(q kᵀ / √d) v for q, k, v of shape (B, heads, L, d) with
``torch.nn.functional.scaled_dot_product_attention``. On CUDA, when the optional ``xformers``
package is importable (the ``gpu`` extra: ``pip install 'p4d[gpu]'``), ``backend="auto"`` uses
``xformers.ops.memory_efficient_attention`` instead; both compute the same function.
"""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType
from typing import Literal

import torch
import torch.nn.functional as F

from p4d.errors import ConfigError, require_package

log = logging.getLogger(__name__)

AttnBackend = Literal["auto", "sdpa", "xformers", "math"]
BACKENDS: tuple[str, ...] = ("auto", "sdpa", "xformers", "math")  # math: explicit softmax, the bench baseline


@functools.cache
def xformers_ops() -> ModuleType | None:
    """``xformers.ops`` if importable, else None (looked up once)."""
    try:
        return importlib.import_module("xformers.ops")
    except Exception:  # ImportError, or a broken build raising at import time
        return None


def check_backend(backend: str) -> None:
    """Raise ConfigError for an unknown backend; MissingDependencyError if xformers is asked for but absent."""
    if backend not in BACKENDS:
        raise ConfigError(f"attention backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "xformers" and xformers_ops() is None:
        require_package("xformers", "gpu")


def uses_xformers(backend: str, device: torch.device) -> bool:
    """Whether ``attend`` takes the xformers path for tensors on ``device``."""
    return backend in ("auto", "xformers") and device.type == "cuda" and xformers_ops() is not None


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """softmax(q kᵀ · d^-½) v. q, k, v: (B, heads, L, d) -> (B, heads, L, d). No mask, no dropout."""
    if backend == "math":
        weights = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1)
        return weights @ v
    if uses_xformers(backend, q.device):
        ops = xformers_ops()
        # xformers takes (B, L, heads, d).
        out = ops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    if backend == "xformers":
        # Asked for explicitly but unusable here (CPU tensors): SDPA computes the same function.
        log.debug("xformers attention needs CUDA tensors; using SDPA on %s", q.device)
    return F.scaled_dot_product_attention(q, k, v)
