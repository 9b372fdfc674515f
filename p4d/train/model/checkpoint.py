"""Load an NVILA-Lite checkpoint directory in its published (VILA) layout::

    <dir>/llm/           config.json, tokenizer files, model.safetensors or
                         model-0000k-of-0000n.safetensors (+ .index.json)
                         keys: model.embed_tokens.weight, model.layers.{i}.self_attn.q_proj.weight,
                         ..., model.norm.weight, lm_head.weight (absent when tied)
    <dir>/vision_tower/  config.json, model*.safetensors
                         keys: vision_model.embeddings.patch_embedding.weight,
                         vision_model.encoder.layers.{i}.self_attn.q_proj.weight, ...,
                         vision_model.post_layernorm.weight (the ``vision_model.`` prefix is
                         optional, as transformers 5.x saves SiglipVisionModel without it)
    <dir>/mm_projector/  config.json (mm_projector_type mlp_downsample_3x3_fix),
                         model.safetensors with keys layers.{1,2,4,5,7}.{weight,bias}

Strict: every student key of the three parts must be present with its shape, and no file key
may be left over; a :class:`CheckpointError` names the folder and the keys otherwise.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from p4d.errors import CheckpointError
from p4d.heads.keys import state_dict_diff
from p4d.train.model.config import NVILA_LITE_8B, StudentConfig
from p4d.train.model.projector import PROJECTOR_TYPE

log = logging.getLogger(__name__)

#: Published subfolder → student attribute.
SUBFOLDERS: dict[str, str] = {"llm": "llm", "vision_tower": "vision_tower", "mm_projector": "mm_projector"}
VISION_PREFIX = "vision_model."


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint folder or file is missing."""


def _folder(path: Path, name: str) -> Path:
    if not path.is_dir():
        raise CheckpointNotFoundError(
            f"--model.init-from {path}: no such folder; expected an NVILA-Lite directory with llm/, vision_tower/, "
            "mm_projector/")
    sub = path / name
    if not sub.is_dir():
        raise CheckpointNotFoundError(
            f"{sub}: missing subfolder {name!r}; expected an NVILA-Lite directory with llm/, vision_tower/, mm_projector/"
        )
    return sub


def read_safetensors_folder(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of ``folder/*.safetensors`` (one file or shards; an index json, if any,
    must name exactly the keys found). Duplicate keys across shards are an error."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointNotFoundError(f"{folder}: no *.safetensors file")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            part = safetensors.torch.load_file(str(file))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{file}: not a readable safetensors file ({exc})") from exc
        dup = sorted(set(part) & set(state))
        if dup:
            raise CheckpointError(f"{file}: keys also present in another shard: {dup[:5]}")
        state.update(part)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        named = set(json.loads(index.read_text()).get("weight_map", {}))
        if named != set(state):
            raise CheckpointError(
                f"{index}: weight_map disagrees with the shards: only in index {sorted(named - set(state))[:5]}, "
                f"only in shards {sorted(set(state) - named)[:5]}"
            )
    return state


def part_state_dict(model, part: str) -> dict[str, torch.Tensor]:
    """The state dict of one published part (llm, vision_tower, mm_projector) as saved: a tied
    lm_head is left out."""
    state = getattr(model, part).state_dict()
    if part == "llm" and model.llm.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied to model.embed_tokens.weight, not saved
    return state


def _widen_concat(name: str, target: torch.Tensor, source: torch.Tensor, in_dim: int) -> torch.Tensor | None:
    """4d-concat: published layers.1 (LayerNorm 9D) / layers.2 (Linear 9D → 3D) into the widened
    9(D + c') layout; E_v channels come from the checkpoint, the F_4D ones keep their init
    (LayerNorm 1/0, Linear columns zero). None if the shapes do not fit that pattern."""
    width = target.shape[-1]
    if width % 9 or source.shape[-1] % 9 or source.shape[:-1] != target.shape[:-1]:
        return None
    d, wide = source.shape[-1] // 9, width // 9
    if d != in_dim or wide <= d:
        return None
    out = target.detach().clone()
    if name == "layers.2.weight":
        out.zero_()
    out.view(*out.shape[:-1], 9, wide)[..., :d] = source.view(*source.shape[:-1], 9, d).to(out.dtype)
    return out


def load_nvila_lite_weights(model, path: str | os.PathLike) -> None:
    """Load ``path``'s llm/, vision_tower/ and mm_projector/ weights into ``model`` (a
    :class:`~p4d.train.model.student.Student`), strictly (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointNotFoundError(f"{path}: checkpoint directory not found")
    for folder_name, part in SUBFOLDERS.items():
        folder = _folder(path, folder_name)
        found = read_safetensors_folder(folder)
        if part == "vision_tower":
            found = {k[len(VISION_PREFIX):] if k.startswith(VISION_PREFIX) else k: v for k, v in found.items()}
        expected = part_state_dict(model, part)
        missing, unexpected, _ = state_dict_diff(expected, found)  # shapes: checked below (4d-concat widens)
        if missing or unexpected:
            shown = lambda keys: ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
            raise CheckpointError(
                f"{folder}: keys do not match the student's {part}: "
                f"missing [{shown(missing)}]; unexpected [{shown(unexpected)}]"
            )
        load: dict[str, torch.Tensor] = {}
        for key, target in expected.items():
            source = found[key]
            if source.shape != target.shape:
                widened = None
                if part == "mm_projector" and model.cfg.strategy == "4d-concat" and key in ("layers.1.weight", "layers.1.bias", "layers.2.weight"):
                    widened = _widen_concat(key, target, source, model.cfg.vision_width)
                if widened is None:
                    raise CheckpointError(
                        f"{folder}: key {key!r} has shape {tuple(source.shape)}, the student expects {tuple(target.shape)}"
                    )
                source = widened
            load[key] = source.to(dtype=target.dtype)
        getattr(model, part).load_state_dict(load, strict=False)
        log.info("loaded %d tensors from %s", len(load), folder)
    if model.llm.config.tie_word_embeddings:
        model.llm.tie_weights()


def _json(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: not a readable JSON file ({exc})") from exc


def config_from_checkpoint(path: str | os.PathLike, *, base: StudentConfig = NVILA_LITE_8B, **overrides: Any) -> StudentConfig:
    """``base`` with its ``vision`` / ``llm`` fields replaced by the checkpoint's
    ``vision_tower/config.json`` and ``llm/config.json`` (when present), then ``overrides``.
    ``mm_projector/config.json``, when present, must name ``mlp_downsample_3x3_fix``."""
    from transformers import Qwen2Config, SiglipVisionConfig

    path = Path(path)
    changes: dict[str, Any] = {}
    llm_json = _folder(path, "llm") / "config.json"
    if llm_json.is_file():
        data = _json(llm_json)
        if data.get("model_type") not in (None, "qwen2"):
            raise CheckpointError(f"{llm_json}: expected model_type 'qwen2', found {data.get('model_type')!r}")
        changes["llm"] = _clean(Qwen2Config.from_pretrained(str(llm_json.parent), local_files_only=True).to_dict())
    vt_json = _folder(path, "vision_tower") / "config.json"
    if vt_json.is_file():
        changes["vision"] = _clean(SiglipVisionConfig.from_pretrained(str(vt_json.parent), local_files_only=True).to_dict())
    proj_json = _folder(path, "mm_projector") / "config.json"
    if proj_json.is_file():
        kind = _json(proj_json).get("mm_projector_type")
        if kind != PROJECTOR_TYPE:
            raise CheckpointError(f"{proj_json}: expected mm_projector_type {PROJECTOR_TYPE!r}, found {kind!r}")
    changes.update(overrides)
    return base.replace(**changes)


def _clean(config: dict[str, Any]) -> dict[str, Any]:
    drop = {"transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype", "output_hidden_states", "return_dict"}
    return {k: v for k, v in config.items() if k not in drop}


def load_nvila_lite(
    path: str | os.PathLike,
    *,
    config: StudentConfig | None = None,
    heads=None,
    cache_spec=None,
    f4d_shape=None,
    training_modules: bool = True,
    device: torch.device | str | None = None,
    load_weights: bool = True,
    **overrides: Any,
):
    """Build a student from an NVILA-Lite directory: config from its JSON files (or ``config``),
    tokenizer from ``llm/``, weights loaded strictly (``load_weights=False``: left unread, for a
    build whose weights arrive otherwise). D_4DP (and 4d-pe's encoding) start from their init;
    ``heads`` are attached frozen."""
    from p4d.train.model.student import build_student
    from p4d.train.model.tokenizer import load_tokenizer

    path = Path(path)
    cfg = config if config is not None else config_from_checkpoint(path, **overrides)
    tokenizer = load_tokenizer(_folder(path, "llm"))
    model = build_student(
        cfg,
        heads=heads,
        cache_spec=cache_spec,
        f4d_shape=f4d_shape,
        tokenizer=tokenizer,
        training_modules=training_modules,
        device=device,
        init_weights=False,
    )
    if load_weights:
        load_nvila_lite_weights(model, path)
    return model
