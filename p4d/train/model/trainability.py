"""Which parts of the student train: the presets of the paper's ablations plus LoRA on the LLM.

Presets (E_v = vision_tower, E_p = mm_projector): ``tune-all`` (E_v + E_p + LLM), ``tune-v``,
``tune-p``, ``tune-llm``, ``tune-p+llm``, ``tune-llm-lora`` (LoRA adapters only in the LLM),
``tune-p+llm-lora``. D_4DP and the 4d-pe encoding always train; the D_m heads never do.
LoRA is injected in place with peft (``inject_adapter_in_model``), so the student keeps its API;
:func:`merge_lora` folds the adapters back before :func:`~p4d.train.model.export.export_student`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from p4d.errors import ConfigError

log = logging.getLogger(__name__)

TRAINABILITY_PRESETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "tune-all": (("vision_tower", "mm_projector", "llm"), False),
    "tune-v": (("vision_tower",), False),
    "tune-p": (("mm_projector",), False),
    "tune-llm": (("llm",), False),
    "tune-p+llm": (("mm_projector", "llm"), False),
    "tune-llm-lora": ((), True),
    "tune-p+llm-lora": (("mm_projector",), True),
}

#: LoRA targets inside ``model.llm``: the 7 Qwen2 projections of every layer.
LORA_TARGETS = r"model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass(frozen=True, kw_only=True)
class LoraSettings:
    """VILA's defaults: r 64, alpha 16, dropout 0.05."""

    r: int = 64
    alpha: int = 16
    dropout: float = 0.05


def apply_trainability(model: nn.Module, preset: str, *, lora: LoraSettings | None = None) -> dict[str, int]:
    """Set ``requires_grad`` per ``preset`` (injecting LoRA for the ``*-lora`` ones).
    Returns {part: trainable parameter count} for logging."""
    if preset not in TRAINABILITY_PRESETS:
        raise ConfigError(f"--tune: unknown preset {preset!r}; expected one of {tuple(TRAINABILITY_PRESETS)}")
    parts, use_lora = TRAINABILITY_PRESETS[preset]
    model.requires_grad_(False)
    for name in parts:
        getattr(model, name).requires_grad_(True)
    if use_lora:
        from peft import LoraConfig, inject_adapter_in_model

        s = lora or LoraSettings()
        config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=LORA_TARGETS)
        inject_adapter_in_model(config, model.llm)
        for name, p in model.llm.named_parameters():
            p.requires_grad_("lora_" in name)
    for name in ("d4dp", "f4d_embed"):
        module = getattr(model, name, None)
        if module is not None:
            module.requires_grad_(True)
    counts = trainable_counts(model)
    log.info("trainability %s: %s", preset, counts)
    return counts


def trainable_counts(model: nn.Module) -> dict[str, int]:
    """{part (each child module): its parameters with ``requires_grad``, counted}."""
    return {name: sum(p.numel() for p in child.parameters() if p.requires_grad)
            for name, child in model.named_children()}


def merge_lora(model: nn.Module) -> int:
    """Fold every injected LoRA adapter into its base layer and remove the wrapper.
    Returns how many layers were merged."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    return merged
