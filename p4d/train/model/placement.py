"""Where and in which dtype a student runs for inference (``p4d eval --model``, ``p4d inspect
--compare``): ``--device auto|cpu|cuda[:i]`` and ``--dtype auto|float32|bfloat16|float16``.

``auto`` device = CUDA when this process sees a GPU, else the CPU; ``auto`` dtype = bfloat16 on
CUDA (the NVILA presets' dtype) and float32 on the CPU (bf16 matmuls on the CPU are slow and round
more). Training resolves its own device and precision (``--runtime.device``, ``--runtime.precision``).
"""

from __future__ import annotations

import torch

from p4d.errors import ConfigError
from p4d.train.model.config import DTYPES

DEVICES = ("auto", "cpu", "cuda")
INFERENCE_DTYPES = ("auto", *DTYPES)


def resolve_device(device: str | torch.device | None, *, flag: str = "--device") -> torch.device:
    """``auto`` (or None) -> cuda if available else cpu; ``cuda`` without a GPU is a ConfigError naming ``flag``."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and name != "cuda" and not name.startswith("cuda:"):
        raise ConfigError(f"{flag} {name!r}: expected one of {', '.join(DEVICES)} (or cuda:INDEX)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{flag} {name}: no CUDA device is available to this process; use {flag} cpu or auto")
    return torch.device(name)


def resolve_dtype(dtype: str | None, device: torch.device | str, *, flag: str = "--dtype") -> str:
    """``auto`` (or None) -> ``bfloat16`` on CUDA, ``float32`` elsewhere; a name of ``DTYPES`` is kept."""
    name = "auto" if dtype is None else str(dtype)
    if name == "auto":
        return "bfloat16" if torch.device(device).type == "cuda" else "float32"
    if name not in DTYPES:
        raise ConfigError(f"{flag} {name!r}: expected one of {', '.join(INFERENCE_DTYPES)}")
    return name


def resolve_placement(device: str | None, dtype: str | None) -> tuple[str, str]:
    """(device, dtype) names that ``--device`` / ``--dtype`` resolve to here (ConfigError naming the flag)."""
    where = resolve_device(device)
    return str(where), resolve_dtype(dtype, where)
