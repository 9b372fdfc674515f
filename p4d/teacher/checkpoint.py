"""Teacher checkpoints: safe file loading, strict key mapping, safetensors export, weights hash.

Checkpoints are untrusted input. ``.safetensors`` is read as plain tensors; a PyTorch file
(``.ckpt``, ``.pt``, ``.pth``, ``.bin``) only through ``torch.load(weights_only=True)``. A file that
needs arbitrary unpickling is refused, never re-read with ``weights_only=False``.

The published layout is the released L4P Lightning checkpoint (notes/l4p.md §3)::

    {"state_dict": {"l4p_model.video_encoder.<encoder key>": ...,
                    "l4p_model.task_heads.{depth,flow_2d_backward,dyn_mask,camray}.task_head.dpt.<dpt key>": ...,
                    "l4p_model.task_heads.track_2d.<tracking key>": ...}, ...}

The encoder keys go through :func:`p4d.teacher.encoder.checkpoint_filter_fn`, the head keys through
:func:`p4d.heads.heads_checkpoint_filter`; tracking-head keys are ignored and reported. The
export writes the same layout, so a re-load takes exactly the same path.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from p4d.errors import CheckpointError
from p4d.heads import PUBLISHED_TASK_NAMES
from p4d.teacher.encoder import L4P_ENCODER_PREFIX, checkpoint_filter_fn

log = logging.getLogger(__name__)

#: Prefix of all task heads in the released checkpoint.
L4P_HEADS_PREFIX = "l4p_model.task_heads."
#: Prefix of the released tracking head, which p4d does not build (its keys are ignored, reported).
L4P_TRACKING_PREFIX = "l4p_model.task_heads.track_2d."
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_MAX_LISTED = 30


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return f"{len(keys)}: {shown}{more}"


def load_checkpoint_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} state dict of a checkpoint file, on the CPU.

    ``.safetensors`` is preferred; ``.ckpt``/``.pt``/``.pth``/``.bin`` load with
    ``torch.load(weights_only=True)`` only. Unwraps ``{'state_dict': ...}`` (Lightning) or
    ``{'model': ...}`` containers and a DataParallel ``module.`` prefix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"teacher weights {path}: no such file (expected a .safetensors or .ckpt file)")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"teacher weights {path}: not a readable .safetensors file ({e})") from e
    elif suffix in PICKLE_SUFFIXES:
        obj = _torch_load_weights_only(path)
    else:
        raise CheckpointError(
            f"teacher weights {path}: unknown file type {suffix!r}; expected .safetensors or one of "
            f"{', '.join(PICKLE_SUFFIXES)}"
        )
    return _unwrap(obj, path)


def _torch_load_weights_only(path: Path) -> object:
    """torch.load(weights_only=True), memory-mapped when the file is in the zip format."""
    last_error: Exception | None = None
    for mmap in (True, False):  # the legacy (pre-zip) torch.save format cannot be memory-mapped
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"teacher weights {path}: refused, the file needs arbitrary unpickling, which can run code "
                f"(torch.load weights_only=True said: {str(e).splitlines()[0]}). Checkpoints are untrusted "
                f"input; convert it to .safetensors in a trusted environment first"
            ) from e
        except Exception as e:  # not a torch file, truncated, legacy format with mmap, ...
            last_error = e
    raise CheckpointError(f"teacher weights {path}: cannot be read by torch.load ({last_error})") from last_error


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for container in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(container), Mapping):
            obj = obj[container]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"teacher weights {path}: expected a state dict of tensors, found {type(obj).__name__}")
    if all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"teacher weights {path}: entries that are not tensors: {_listing(not_tensors)}")
    return dict(obj)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_teacher_weights` loaded and what it ignored."""

    path: str
    encoder_tensors: int
    head_tensors: dict[str, int]
    ignored: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        heads = ", ".join(f"{m} {n}" for m, n in self.head_tensors.items())
        return (
            f"loaded {self.path}: encoder {self.encoder_tensors} tensors; heads {heads}; "
            f"ignored {len(self.ignored)} (tracking head / unused heads)"
        )


def load_teacher_weights(model: nn.Module, path: str | Path) -> LoadReport:
    """Load the released L4P checkpoint (or its export) into an :class:`~p4d.teacher.model.L4PTeacher`, strictly.

    Every encoder and head tensor of the model must be present with the right shape, and every
    key of the file must map to the model or be a known-ignored key (tracking head, heads not
    built); otherwise a CheckpointError lists the missing, unexpected and mis-shaped keys.
    A model on the meta device gets the file's tensors assigned (no copy).
    """
    from p4d.heads import heads_checkpoint_filter
    from p4d.heads.keys import state_dict_diff

    path = Path(path)
    sd = load_checkpoint_file(path)
    enc_sd = checkpoint_filter_fn(sd, model.encoder)
    head_keys = {k: v for k, v in sd.items() if k.startswith(L4P_HEADS_PREFIX) and not k.startswith(L4P_TRACKING_PREFIX)}
    heads_sd, heads_ignored = heads_checkpoint_filter(head_keys, model.heads.cfg)
    ignored = sorted([k for k in sd if k.startswith(L4P_TRACKING_PREFIX)] + list(heads_ignored))
    stray = sorted(k for k in sd if not k.startswith(L4P_ENCODER_PREFIX) and not k.startswith(L4P_HEADS_PREFIX))

    problems = []
    for part, module, mapped, prefix in (("encoder", model.encoder, enc_sd, L4P_ENCODER_PREFIX), ("heads", model.heads, heads_sd, "")):
        own = module.state_dict()
        missing, unexpected, wrong_shape = state_dict_diff(own, mapped)
        shapes = [f"{prefix}{k} {tuple(mapped[k].shape)} (model {tuple(own[k].shape)})" for k in wrong_shape]
        if missing:
            problems.append(f"{part}: missing keys {_listing([prefix + k for k in missing])}")
        if unexpected:
            problems.append(f"{part}: unexpected keys {_listing([prefix + k for k in unexpected])}")
        if shapes:
            problems.append(f"{part}: wrong shapes {_listing(shapes)}")
    if stray:
        problems.append(f"unexpected keys outside the L4P layout {_listing(stray)}")
    if problems:
        raise CheckpointError(f"teacher weights {path} do not match preset {model.preset.name!r}:\n  " + "\n  ".join(problems))

    assign = any(p.device.type == "meta" for p in model.parameters())
    model.encoder.load_state_dict(enc_sd, strict=True, assign=assign)
    model.heads.load_state_dict(heads_sd, strict=True, assign=assign)
    counts: dict[str, int] = {}
    for key in heads_sd:
        modality = key.split(".")[1]
        counts[modality] = counts.get(modality, 0) + 1
    report = LoadReport(path=str(path), encoder_tensors=len(enc_sd), head_tensors=counts, ignored=tuple(ignored))
    if ignored:
        log.info("teacher weights %s: ignored %d keys (%s ...)", path, len(ignored), ", ".join(ignored[:3]))
    return report


def published_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under the released L4P key names (encoder, the built dense heads, and the
    DPT's ``scratch.layer_rn.{0..3}`` aliases of ``scratch.layer{1..4}_rn``), contiguous CPU copies."""
    out: dict[str, torch.Tensor] = {}
    for k, v in model.encoder.state_dict().items():
        out[L4P_ENCODER_PREFIX + k] = v
    for k, v in model.heads.state_dict().items():
        # ours: heads.<modality>.dpt.<rest>  ->  l4p_model.task_heads.<task>.task_head.dpt.<rest>
        _, modality, rest = k.split(".", 2)
        base = f"{L4P_HEADS_PREFIX}{PUBLISHED_TASK_NAMES[modality]}.task_head."
        out[base + rest] = v
        for i in range(1, 5):
            if rest == f"dpt.scratch.layer{i}_rn.weight":
                out[base + f"dpt.scratch.layer_rn.{i - 1}.weight"] = v
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def export_safetensors(model: nn.Module, path: str | Path, *, metadata: Mapping[str, str] | None = None) -> Path:
    """Write the teacher's weights as ``.safetensors`` in the published L4P key layout.

    Loading the file goes through the same mapping as the released ``.ckpt``. ``metadata`` adds
    string entries to the header (``p4d_teacher_preset`` defaults to the model's preset name). The
    bytes are canonical: the same tensors and metadata give the same file (:func:`canonical_safetensors`).
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"export path {path}: expected a .safetensors file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    preset = getattr(model, "preset", None)
    header = {"format": "pt", "layout": "l4p-lightning-state_dict"}
    if preset is not None:
        header["p4d_teacher_preset"] = preset.name
    header.update({str(k): str(v) for k, v in (metadata or {}).items()})
    path.write_bytes(canonical_safetensors(save(published_state_dict(model), metadata=header)))
    return path


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted (tensors and ``__metadata__``
    entries alike) and compact, space-padded to 8 bytes as safetensors pads it. safetensors writes
    the header from hash maps, so its key order (and the file's sha256) varies between processes;
    the tensor bytes and their offsets are left as they are."""
    import json
    import struct

    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + size:]


def weights_hash(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` over the sorted names, dtypes, shapes and raw bytes of every tensor.

    Identifies the teacher in the cache. Hash the model's own ``state_dict()`` so that the same
    weights read from the ``.ckpt`` or from the ``.safetensors`` export give the same hash.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if t.device.type == "meta":
            raise CheckpointError(f"weights_hash: tensor {name!r} is on the meta device (no values to hash)")
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}\0{str(t.dtype)}\0{tuple(state_dict[name].shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
    return "sha256:" + h.hexdigest()
