"""Save and load D_m heads: ``heads.safetensors`` with the HeadsConfig (JSON) in the file's
metadata, so a trainer rebuilds the heads without the teacher. Also bytes in/out, for object
stores (the cache keeps the file as a side file of the store).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Union

import safetensors.torch
import torch

from p4d.cache_schema.contract import HEADS_FILE
from p4d.errors import CheckpointError, ConfigError
from p4d.heads.config import HeadsConfig
from p4d.heads.dense import DenseHeads
from p4d.heads.keys import load_strict

log = logging.getLogger(__name__)

HEADS_FILENAME = HEADS_FILE  # the cache contract's name (p4d.cache_schema.contract)
FORMAT = "p4d.heads"
FORMAT_VERSION = "1"
_META_FORMAT, _META_VERSION, _META_CONFIG = "format", "format_version", "heads_config"

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]


class HeadsFileNotFoundError(CheckpointError, FileNotFoundError):
    """The heads file (or the directory meant to hold it) does not exist."""


def heads_file(path: str | os.PathLike) -> Path:
    """``path`` itself if it names a ``.safetensors`` file, else ``path / heads.safetensors``."""
    p = Path(path)
    return p if p.suffix == ".safetensors" else p / HEADS_FILENAME


def _metadata(heads: DenseHeads) -> dict[str, str]:
    return {
        _META_FORMAT: FORMAT,
        _META_VERSION: FORMAT_VERSION,
        _META_CONFIG: json.dumps(heads.cfg.to_dict(), sort_keys=True),
    }


def _tensors(heads: DenseHeads) -> dict[str, torch.Tensor]:
    if not isinstance(heads, DenseHeads):
        raise ConfigError(f"heads: expected a DenseHeads, found {type(heads).__name__}")
    return {k: v.detach().to("cpu").contiguous() for k, v in heads.state_dict().items()}


def heads_to_bytes(heads: DenseHeads) -> bytes:
    """The content of ``heads.safetensors`` as bytes."""
    return safetensors.torch.save(_tensors(heads), metadata=_metadata(heads))


def save_heads(heads: DenseHeads, path: str | os.PathLike) -> Path:
    """Write ``heads.safetensors`` (weights in their dtype + config in the metadata). ``path`` is
    a directory (created if needed) or a ``.safetensors`` file path. Returns the file written."""
    target = heads_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    safetensors.torch.save_file(_tensors(heads), str(tmp), metadata=_metadata(heads))
    os.replace(tmp, target)
    log.info("saved %d head tensors to %s", len(heads.state_dict()), target)
    return target


def _read(source: PathOrBytes) -> tuple[dict[str, torch.Tensor], dict[str, str], str]:
    """(tensors, metadata, name for messages)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "heads bytes"
        data = bytes(source)
    else:
        file = heads_file(source)
        name = str(file)
        if not file.is_file():
            raise HeadsFileNotFoundError(
                f"{name}: heads file not found (expected {HEADS_FILENAME} written by save_heads)"
            )
        data = file.read_bytes()
    try:
        tensors = safetensors.torch.load(data)
        meta = _metadata_of(data)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{name}: not a readable safetensors file ({exc})") from exc
    return tensors, meta, name


def _metadata_of(data: bytes) -> dict[str, str]:
    # The header is: 8-byte little-endian length, then JSON with an optional "__metadata__".
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]).get("__metadata__") or {}


def _config(meta: dict[str, str], name: str) -> HeadsConfig:
    if meta.get(_META_FORMAT) != FORMAT:
        raise CheckpointError(
            f"{name}: expected safetensors metadata format={FORMAT!r} (written by save_heads), "
            f"found {meta.get(_META_FORMAT)!r}"
        )
    if meta.get(_META_VERSION) != FORMAT_VERSION:
        raise CheckpointError(
            f"{name}: expected format_version {FORMAT_VERSION}, found {meta.get(_META_VERSION)!r}"
        )
    try:
        return HeadsConfig.from_dict(json.loads(meta[_META_CONFIG]))
    except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as exc:
        raise CheckpointError(f"{name}: bad heads_config in the metadata: {exc}") from exc


def read_heads_config(source: PathOrBytes) -> HeadsConfig:
    """The HeadsConfig stored with saved heads (path, directory or bytes)."""
    _, meta, name = _read(source)
    return _config(meta, name)


def load_heads(
    source: PathOrBytes, *, device=None, dtype: torch.dtype | None = None, frozen: bool = True
) -> DenseHeads:
    """Rebuild DenseHeads from :func:`save_heads` output (a directory, a file or bytes).

    dtype: the stored dtype when None. frozen: parameters requires_grad=False and eval() mode
    (gradients still flow through to the input). Raises CheckpointError on a bad config or on
    missing/unexpected keys or shapes (listing them); HeadsFileNotFoundError if absent.
    """
    tensors, meta, name = _read(source)
    cfg = _config(meta, name)
    if dtype is None and tensors:
        dtype = next(iter(tensors.values())).dtype
    heads = DenseHeads(cfg, device=device, dtype=dtype)
    load_strict(heads, tensors, source=name)
    if frozen:
        heads.requires_grad_(False)
        heads.eval()
    return heads


def heads_from_bytes(
    data: bytes, *, device=None, dtype: torch.dtype | None = None, frozen: bool = True
) -> DenseHeads:
    """:func:`load_heads` on the bytes of :func:`heads_to_bytes`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CheckpointError(f"heads bytes: expected bytes, found {type(data).__name__}")
    return load_heads(data, device=device, dtype=dtype, frozen=frozen)
