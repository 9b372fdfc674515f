"""Export a trained student for inference, without the training-only D_4DP and D_m.

The export is an NVILA-Lite directory (llm/, vision_tower/, mm_projector/ in the published
layout and key names, see :mod:`~p4d.train.model.checkpoint`) plus ``p4d_student.json`` (the
StudentConfig: TPE mode, strategy, attention, dtype ...) and, for 4d-pe, ``f4d_embed/``. ``llm/`` holds the
training tokenizer as saved (``p4d_student.json`` records its fingerprint; loading checks it). Loading
it needs nothing from the cache, except that 4d-concat and 4d-pe students read F_4D at inference.

``dtype`` stores the floating weights in ``bfloat16`` or ``float32`` (``p4d train`` exports bf16 by
default, ``--export-dtype``: NVILA-Lite-8B ≈ 16 GB instead of ≈ 32 GB of fp32 masters); the loader
casts whatever it reads to the dtype it builds in, so both load. ``p4d_student.json`` records it
under ``"weights_dtype"``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import safetensors.torch
import torch

from p4d.errors import CheckpointError, ConfigError
from p4d.train.model.checkpoint import VISION_PREFIX, CheckpointNotFoundError, part_state_dict, read_safetensors_folder
from p4d.train.model.config import StudentConfig
from p4d.train.model.projector import PROJECTOR_TYPE
from p4d.train.model.tokenizer import save_tokenizer

log = logging.getLogger(__name__)

STUDENT_FILE = "p4d_student.json"
EXPORT_FORMAT = "p4d.student"
EXPORT_VERSION = 1
#: export dtype name → torch dtype (``--export-dtype``)
EXPORT_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _save(state: dict[str, torch.Tensor], folder: Path, config: dict | None = None,
          dtype: torch.dtype | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cast = lambda v: v.to(dtype) if dtype is not None and v.is_floating_point() else v  # noqa: E731
    tensors = {k: cast(v.detach().to("cpu")).contiguous() for k, v in state.items()}
    safetensors.torch.save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))


def export_student(model, path: str | os.PathLike, dtype: str | None = None) -> Path:
    """Write ``model`` (a :class:`~p4d.train.model.student.Student`) to directory ``path`` for
    inference. D_4DP and the heads are not written. LoRA layers must be merged first. ``dtype``:
    ``bf16`` | ``fp32`` for the floating weights (None: as the model holds them)."""
    path = Path(path)
    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise ConfigError(f"--export-dtype {dtype!r}: expected one of {', '.join(EXPORT_DTYPES)}")
    to = EXPORT_DTYPES.get(dtype)
    for name, _ in model.named_parameters():
        if "lora_" in name:
            raise ConfigError(f"export: parameter {name!r} is a LoRA layer; merge the adapters before exporting")
    path.mkdir(parents=True, exist_ok=True)
    cfg: StudentConfig = model.cfg
    llm_dir = path / "llm"
    _save(part_state_dict(model, "llm"), llm_dir, dtype=to)
    model.llm.config.save_pretrained(str(llm_dir))
    tokenizer = save_tokenizer(model.tokenizer, llm_dir)  # the training tokenizer as is, checked at load
    vision = {VISION_PREFIX + k: v for k, v in model.vision_tower.state_dict().items()}
    _save(vision, path / "vision_tower", dtype=to)
    model.vision_tower.config.save_pretrained(str(path / "vision_tower"))
    _save(
        model.mm_projector.state_dict(),
        path / "mm_projector",
        {"architectures": ["MultimodalProjector"], "model_type": "v2l_projector", "mm_projector_type": PROJECTOR_TYPE},
        dtype=to,
    )
    if hasattr(model, "f4d_embed"):
        _save(model.f4d_embed.state_dict(), path / "f4d_embed", dtype=to)
    held = {str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
    record = {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, "config": cfg.to_dict(),
              "weights_dtype": str(to).removeprefix("torch.") if to is not None else "+".join(sorted(held)),
              "tokenizer": tokenizer}
    (path / STUDENT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    log.info("exported the %s student (strategy %s) to %s", cfg.name, cfg.strategy, path)
    return path


def read_exported_config(path: str | os.PathLike) -> StudentConfig:
    """The StudentConfig of an export."""
    file = Path(path) / STUDENT_FILE
    if not file.is_file():
        raise CheckpointNotFoundError(f"{file}: not found; expected a student export folder (RUN/export of `p4d train`)")
    try:
        record = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file}: not valid JSON ({exc})") from exc
    if record.get("format") != EXPORT_FORMAT or record.get("format_version") != EXPORT_VERSION:
        raise CheckpointError(
            f"{file}: expected format {EXPORT_FORMAT!r} version {EXPORT_VERSION}, "
            f"found {record.get('format')!r} version {record.get('format_version')!r}"
        )
    return StudentConfig.from_dict(record["config"])


def load_exported_student(
    path: str | os.PathLike, *, device: torch.device | str | None = None, attn: str | None = None, dtype: str | None = None
):
    """Rebuild an exported student for inference (no D_4DP, no heads), weights loaded strictly,
    built directly on ``device`` (``auto``/None: CUDA when available, else the CPU) in ``dtype``
    (``auto``/None: bfloat16 on CUDA, float32 on the CPU; :mod:`~p4d.train.model.placement`).
    ``attn`` overrides the recorded attention (e.g. ``eager`` for evaluation; the recorded
    ``auto`` picks flash-attention 2 on CUDA when installed, else SDPA)."""
    from p4d.train.model.checkpoint import load_nvila_lite_weights
    from p4d.train.model.placement import resolve_device, resolve_dtype
    from p4d.train.model.student import build_student
    from p4d.train.model.tokenizer import load_tokenizer

    path = Path(path)
    cfg = read_exported_config(path)
    tokenizer = load_tokenizer(path / "llm", fingerprint=json.loads((path / STUDENT_FILE).read_text()).get("tokenizer"))
    device = resolve_device(device)
    changes = {k: v for k, v in (("attn", attn), ("dtype", resolve_dtype(dtype, device))) if v is not None}
    if changes:
        cfg = cfg.replace(**changes)
    model = build_student(
        cfg, tokenizer=tokenizer, training_modules=False, device=device, init_weights=False
    )
    load_nvila_lite_weights(model, path)
    if hasattr(model, "f4d_embed"):
        state = read_safetensors_folder(path / "f4d_embed")
        want = model.f4d_embed.state_dict()
        if set(state) != set(want):
            raise CheckpointError(f"{path / 'f4d_embed'}: expected keys {sorted(want)}, found {sorted(state)}")
        model.f4d_embed.load_state_dict({k: v.to(want[k].dtype) for k, v in state.items()})
    model.eval()
    return model
