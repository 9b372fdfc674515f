"""Map the released L4P checkpoint's head keys to :class:`DenseHeads` (notes/l4p.md §3).

Published: ``l4p_model.task_heads.<task>.task_head.dpt.<rest>`` (the ``l4p_model.`` prefix is
optional here), task ∈ {depth, flow_2d_backward, dyn_mask, camray} → ours:
``heads.<modality>.dpt.<rest>``. ``<rest>`` is unchanged: our DPT keeps the published module names.

The published DPT also stores ``scratch.layer_rn.{0..3}.weight``, a ModuleList alias of the same
tensors as ``scratch.layer{1..4}_rn.weight`` (CroCo's make_scratch). The alias is checked equal
to its target (or used for it when only the alias is present) and reported as ignored.
"""

from __future__ import annotations

import logging
import re
from typing import Mapping

import torch
from torch import Tensor, nn

from p4d.errors import CheckpointError
from p4d.heads.config import PUBLISHED_TASK_NAMES, HeadsConfig

log = logging.getLogger(__name__)

_MODALITY_OF_TASK = {task: modality for modality, task in PUBLISHED_TASK_NAMES.items()}
_ALIAS = re.compile(r"scratch\.layer_rn\.(\d+)\.weight")
_ROOT = "l4p_model."
_HEADS = "task_heads."
_DPT = "task_head.dpt."


def state_dict_diff(expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) keys of ``found`` against ``expected``, each sorted.

    The one strictness check behind every loader (heads, teacher, student); callers word the error.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    return missing, unexpected, wrong_shape


def _short(keys: list[str], limit: int = 20) -> str:
    more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def heads_checkpoint_filter(
    state_dict: Mapping[str, Tensor], cfg: HeadsConfig
) -> tuple[dict[str, Tensor], list[str]]:
    """Published keys → ours. Returns (mapped, ignored_keys).

    ignored_keys: task-head keys of tasks we do not build (e.g. ``track_2d.*``, or a modality
    missing from ``cfg.modalities``) and the ``scratch.layer_rn.*`` aliases. Keys outside
    ``task_heads.`` (the encoder) are the encoder's business: neither mapped nor listed.
    Keys of a built task that are not below ``task_head.dpt.`` are mapped to
    ``heads.<modality>.<rest>`` so that a strict load reports them as unexpected.
    Raises CheckpointError if an alias disagrees with the tensor it aliases.
    """
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    aliases: dict[str, tuple[str, Tensor]] = {}
    for key, value in state_dict.items():
        k = key[len(_ROOT):] if key.startswith(_ROOT) else key
        if not k.startswith(_HEADS):
            continue
        task, _, rest = k[len(_HEADS):].partition(".")
        modality = _MODALITY_OF_TASK.get(task)
        if modality is None or modality not in cfg.modalities:
            ignored.append(key)
            continue
        if not rest.startswith(_DPT):
            mapped[f"heads.{modality}.{rest}"] = value
            continue
        rest = rest[len(_DPT):]
        alias = _ALIAS.fullmatch(rest)
        if alias:
            target = f"heads.{modality}.dpt.scratch.layer{int(alias.group(1)) + 1}_rn.weight"
            aliases[target] = (key, value)
            ignored.append(key)
            continue
        mapped[f"heads.{modality}.dpt.{rest}"] = value
    for target, (key, value) in aliases.items():
        if target not in mapped:
            log.info("checkpoint has only the alias %s; using it for %s", key, target)
            mapped[target] = value
        elif mapped[target].shape != value.shape or not torch.equal(mapped[target], value):
            raise CheckpointError(
                f"checkpoint: {key} should alias the same tensor as the layer*_rn weight "
                f"mapped to {target}, but the two differ"
            )
    return mapped, ignored


def load_published_heads(heads: nn.Module, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Load the published head weights into a DenseHeads (strict). Returns the ignored keys.

    Raises CheckpointError listing missing keys, unexpected keys and shape mismatches.
    """
    mapped, ignored = heads_checkpoint_filter(state_dict, heads.cfg)
    load_strict(heads, mapped, source="checkpoint")
    if ignored:
        log.info("ignored %d checkpoint keys (other tasks, layer_rn aliases)", len(ignored))
    return ignored


def load_strict(module: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """load_state_dict with every problem reported at once as a CheckpointError naming ``source``."""
    own = module.state_dict()
    missing, unexpected, wrong_shape = state_dict_diff(own, state)
    mismatched = [f"{k}: expected {tuple(own[k].shape)}, found {tuple(state[k].shape)}" for k in wrong_shape]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_short(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_short(mismatched)}")
    if problems:
        raise CheckpointError(f"{source}: does not fit the heads; " + "; ".join(problems))
    module.load_state_dict(dict(state), strict=True)
