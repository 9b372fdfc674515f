"""Training checkpoints: one folder per step of named parts, plus ``meta.json`` written last.

::

    OUT/checkpoints/step-000100/
        model.safetensors      every student tensor but the frozen D_m (full-weight presets), or
        adapter.safetensors    the trainable tensors only: LoRA adapters + projector/D_4DP (LoRA presets)
        optimizer.pt           AdamW state (tensors, numbers, lists: read with weights_only=True)
        scheduler.json         LR scheduler state
        rng-rank00000.safetensors   torch CPU/CUDA RNG states, python + numpy states in its metadata
        data.json              sampler position {epoch, batch, seed, global_batch}
        train_state.json       {step, samples, epoch}
        meta.json              resolved config, student architecture, p4d/torch versions, world size, parts

Under ``--runtime.parallel fsdp`` the model and optimizer parts are one sharded
``torch.distributed.checkpoint`` folder instead (every rank writes its own shards, rank 0 the
``.metadata`` index last)::

    OUT/checkpoints/step-000100/
        sharded/               __0_0.distcp, __1_0.distcp, ..., .metadata: {"model": every student
                               tensor but D_m, "optim": AdamW state}, keyed by parameter name
        scheduler.json, rng-rank*.safetensors, data.json, train_state.json, meta.json   (as above)

DCP reshards on load: a sharded checkpoint resumes at another world size, and loads into an
unsharded student (one process, eval, inspect) as well. A whole checkpoint resumes into a sharded
student the other way round: rank 0 reads it and broadcasts, each rank keeps its shards.

Nothing is unpickled without ``weights_only=True``. A folder is written as ``step-K.tmp`` and
renamed when complete, so a killed run never leaves a half checkpoint that looks complete; the
newest folder with a ``meta.json`` is what ``--resume RUN_DIR`` continues from.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from p4d.errors import CheckpointError
from p4d.train.sharding import is_sharded

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
MODEL = "model.safetensors"
ADAPTER = "adapter.safetensors"
OPTIMIZER = "optimizer.pt"
LR_SCHEDULER = "scheduler.json"
DATALOADER = "data.json"
TRAIN_STATE = "train_state.json"
META = "meta.json"
SHARDED = "sharded"
RNG = "rng-rank{rank:05d}.safetensors"
STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(out: str | Path, step: int) -> Path:
    return Path(out) / CHECKPOINTS / f"step-{step:06d}"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("p4d")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def _unique_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that share storage with an earlier key (tied weights); return (unique, aliases)."""
    seen: dict[tuple[int, int, tuple], str] = {}
    unique, aliases = {}, {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen:
            aliases[k] = seen[key]
        else:
            seen[key] = k
            unique[k] = v.detach().to("cpu").contiguous()
    return unique, aliases


def model_tensors(model: nn.Module, lora: bool) -> dict[str, torch.Tensor]:
    """What a checkpoint stores of the student: the trainable tensors (LoRA) or everything but D_m."""
    if lora:
        return {n: p for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if not k.startswith("heads.")}


def save_checkpoint(out: str | Path, *, step: int, model: nn.Module, optimizer, scheduler, sampler_state: dict,
                    train_state: dict, meta: dict, lora: bool, rank: int = 0, is_main: bool = True,
                    keep: int = 0, barrier: Callable[[], None] = lambda: None, sharded: bool = False) -> Path:
    """Write the checkpoint of ``step``: every rank its RNG file (and, ``sharded``, its shards of
    the model and optimizer), rank 0 the rest. Every rank calls it (``barrier`` synchronises them:
    folder made → RNG files and shards written → folder renamed)."""
    final = step_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    if is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier()
    _save_rng(tmp / RNG.format(rank=rank))
    if sharded:
        _save_sharded(tmp / SHARDED, model, optimizer)
    barrier()
    if is_main:
        if not sharded:
            unique, aliases = _unique_tensors(model_tensors(model, lora))
            safetensors.torch.save_file(unique, str(tmp / (ADAPTER if lora else MODEL)),
                                        metadata={"aliases": json.dumps(aliases)})
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
        (tmp / LR_SCHEDULER).write_text(json.dumps(_jsonable(scheduler.state_dict())))
        (tmp / DATALOADER).write_text(json.dumps(sampler_state))
        (tmp / TRAIN_STATE).write_text(json.dumps(train_state))
        full_meta = {**meta, "step": step, "p4d_version": _version(), "torch_version": torch.__version__,
                     "parts": sorted(p.name for p in tmp.iterdir()) + [META]}
        (tmp / META).write_text(json.dumps(full_meta, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        log.info("saved checkpoint %s", final)
        if keep > 0:
            for old in list_checkpoints(out)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return None  # e.g. the lambdas of LambdaLR, which are rebuilt from the config


def list_checkpoints(out: str | Path) -> list[Path]:
    """Complete checkpoint folders (with meta.json) of a run, oldest first."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and (p / META).is_file()]
    return [p for _, p in sorted(found)]


def find_checkpoint(path: str | Path) -> Path:
    """``path`` itself if it is a checkpoint folder, else the newest complete one of the run ``path``."""
    path = Path(path)
    if (path / META).is_file():
        return path
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"--resume {path}: no checkpoint here (expected a step-K folder with {META}, or a run "
                              f"folder holding {CHECKPOINTS}/step-K)")
    return found[-1]


def find_resume(path: str | Path) -> tuple[Path, Path | None]:
    """``--resume PATH`` → (the run folder to write into, its newest complete checkpoint or None).

    PATH is a checkpoint folder (``RUN/checkpoints/step-K``) or a run folder. A run folder
    without a complete checkpoint (killed before the first save) resumes from step 0; a folder
    that is neither is refused."""
    path = Path(path)
    if (path / META).is_file():
        if path.parent.name != CHECKPOINTS:
            raise CheckpointError(f"--resume {path}: a checkpoint outside a run folder (expected RUN/{CHECKPOINTS}/"
                                  f"step-K); resume its run folder, or start a new run with --model.init-from")
        return path.parent.parent, path
    found = list_checkpoints(path)
    if found:
        return path, found[-1]
    if (path / "config.yaml").is_file():
        return path, None
    raise CheckpointError(f"--resume {path}: neither a run folder (config.yaml, {CHECKPOINTS}/step-K/{META}) nor a "
                          "checkpoint folder; check the path")


def read_meta(folder: str | Path) -> dict[str, Any]:
    file = Path(folder) / META
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: not a readable checkpoint meta file ({exc})") from None


def is_sharded_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / SHARDED).is_dir()


def _model_part(model: nn.Module) -> dict[str, Any]:
    """Every tensor of the student but D_m's (it comes from the cache), keyed by name: DTensor
    shards of a sharded student, whole tensors of a plain one."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return {k: v for k, v in get_model_state_dict(model).items() if not k.startswith("heads.")}


def _optim_part(model: nn.Module, optimizer) -> dict[str, Any]:
    """The optimizer's state keyed by parameter name (sharded like the parameters)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer)


def _save_sharded(folder: Path, model: nn.Module, optimizer) -> None:
    import torch.distributed.checkpoint as dcp

    dcp.save({"model": _model_part(model), "optim": _optim_part(model, optimizer)}, checkpoint_id=str(folder))


def _load_sharded(folder: Path, model: nn.Module, optimizer=None) -> None:
    """Load a sharded checkpoint's model part into ``model`` or, given ``optimizer``, its optimizer
    part into ``optimizer`` (``model`` sharded or not; any world size: DCP reads each rank's slices)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, \
        set_optimizer_state_dict

    folder = folder / SHARDED
    state = {"model": _model_part(model)} if optimizer is None else {"optim": _optim_part(model, optimizer)}
    try:
        with warnings.catch_warnings():  # one process without a process group is a supported DCP load
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=str(folder))
    except (Exception, CheckpointException) as exc:  # noqa: BLE001 - CheckpointException is a BaseException
        root = [line for line in str(exc).splitlines() if line.strip()][-1:] or [type(exc).__name__]
        raise CheckpointError(f"{folder}: not a readable sharded checkpoint for this student ({root[0].strip()})") \
            from None
    if optimizer is None:  # strict=False: D_m is not in the checkpoint, it comes from the cache
        set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))
    else:
        set_optimizer_state_dict(model, optimizer, state["optim"])


def _broadcast_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)


def _is_rank0() -> bool:
    import torch.distributed as dist

    return dist.get_rank() == 0


def load_model_state(folder: str | Path, model: nn.Module, lora: bool) -> None:
    """Load the model part of a checkpoint into a freshly built student (same recipe), strictly.
    Whole (safetensors) weights into a sharded student: rank 0 reads them and broadcasts, each rank
    keeps its shards."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    folder = Path(folder)
    if is_sharded_checkpoint(folder):
        _load_sharded(folder, model)
        return
    sharded = is_sharded(model)
    if sharded and not _is_rank0():
        set_model_state_dict(model, {}, options=_broadcast_options())
        return
    file = folder / (ADAPTER if lora else MODEL)
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; the checkpoint was written by a {'full' if lora else 'LoRA'} "
                              f"run (check --recipe.tune)")
    with safetensors.safe_open(str(file), "pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    state = safetensors.torch.load_file(str(file))
    want = model_tensors(model, lora)
    missing = sorted(set(want) - set(state) - set(aliases))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        raise CheckpointError(f"{file}: keys do not match the student: missing {missing[:6]}, "
                              f"unexpected {unexpected[:6]}")
    full = {}
    with torch.no_grad():
        for name, target in want.items():
            source = state[aliases.get(name, name)]
            if source.shape != target.shape:
                raise CheckpointError(f"{file}: {name} has shape {tuple(source.shape)}, the student expects "
                                      f"{tuple(target.shape)}")
            if sharded:
                full[name] = source.to(target.dtype)
            else:
                target.copy_(source.to(target.dtype))
    if sharded:
        set_model_state_dict(model, full, options=_broadcast_options())


def _whole_optimizer_into_sharded(file: Path, model: nn.Module, optimizer) -> None:
    """An ``optimizer.pt`` of an unsharded run (state keyed by parameter index) into the optimizer of
    a sharded student: rank 0 reads it and keys it by parameter name (the same recipe builds the
    same groups in the same order), then broadcasts; each rank keeps its shards."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    named = {}
    if _is_rank0():
        try:
            saved = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for a bad file
            raise CheckpointError(f"{file}: unreadable optimizer state ({exc})") from None
        by_id = {id(p): n for n, p in model.named_parameters()}
        names = [by_id[id(p)] for g in optimizer.param_groups for p in g["params"]]
        if [len(g["params"]) for g in saved["param_groups"]] != [len(g["params"]) for g in optimizer.param_groups]:
            raise CheckpointError(f"{file}: optimizer groups of {[len(g['params']) for g in saved['param_groups']]} "
                                  f"parameters, this student's {[len(g['params']) for g in optimizer.param_groups]}")
        named = {"state": {names[int(i)]: v for i, v in saved["state"].items()},
                 "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, named, options=_broadcast_options())


def load_training_state(folder: str | Path, *, optimizer, scheduler, rank: int, device: torch.device,
                        model: nn.Module | None = None) -> dict:
    """Restore optimizer, scheduler and this rank's RNG; return {"data": ..., "train": ...}.
    ``model`` (already loaded by :func:`load_model_state`) is needed for a sharded checkpoint or a
    sharded student: the optimizer state is keyed by its parameter names."""
    folder = Path(folder)
    if is_sharded_checkpoint(folder):
        if model is None:
            raise ValueError("load_training_state: a sharded checkpoint needs the model")
        _load_sharded(folder, model, optimizer)
    elif model is not None and is_sharded(model):
        _whole_optimizer_into_sharded(folder / OPTIMIZER, model, optimizer)
    else:
        try:
            opt_state = torch.load(folder / OPTIMIZER, map_location=device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for a bad file
            raise CheckpointError(f"{folder / OPTIMIZER}: unreadable optimizer state ({exc})") from None
        optimizer.load_state_dict(opt_state)
    sched = json.loads((folder / LR_SCHEDULER).read_text())
    sched.pop("lr_lambdas", None)
    scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    rng_file = folder / RNG.format(rank=rank)
    if rng_file.is_file():
        _load_rng(rng_file)
    else:
        log.warning("%s: no RNG state for rank %d (another world size?); RNG not restored", folder, rank)
    return {"data": json.loads((folder / DATALOADER).read_text()),
            "train": json.loads((folder / TRAIN_STATE).read_text())}


def _save_rng(file: Path) -> None:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    py = random.getstate()
    meta = {"python": json.dumps([py[0], list(py[1]), py[2]]),
            "numpy": json.dumps([np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])])}
    safetensors.torch.save_file(tensors, str(file), metadata=meta)


def _load_rng(file: Path) -> None:
    with safetensors.safe_open(str(file), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, state, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(state), gauss))
    name, pos, has_gauss, cached = json.loads(meta["numpy"])
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))


def load_checkpoint_model(folder: str | Path, *, cache: str | None = None, device: str | torch.device = "cpu"):
    """The student of a training checkpoint (its recipe rebuilt from meta.json, weights loaded):
    returns (model, TrainConfig). ``cache`` overrides the store recorded in the config (for D_m)."""
    from p4d.cache_schema import open_store
    from p4d.train.build import build_model
    from p4d.train.config import TrainConfig

    folder = find_checkpoint(folder)
    cfg = TrainConfig.from_dict(read_meta(folder)["config"], source=f"{folder / META}")
    model, _ = build_model(cfg, open_store(cache or cfg.data.cache), device=device)
    load_model_state(folder, model, cfg.recipe.tune.endswith("-lora"))
    return model, cfg
