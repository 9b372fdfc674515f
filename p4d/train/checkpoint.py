"""Training checkpoints: one folder per step of named parts, plus ``meta.json`` written last.

::

    OUT/checkpoints/step-000100/
        model.safetensors      every student tensor but the frozen D_m (full-weight presets), or
        adapter.safetensors    the trainable tensors only: LoRA adapters + projector/D_4DP (LoRA presets)
        optimizer.pt           AdamW state keyed by parameter name (read with weights_only=True)
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

One object saves and loads both: :class:`Checkpointer` holds the student, its optimizer and schedule,
knows whether the student is FSDP2-sharded, and moves its state through
``torch.distributed.checkpoint.state_dict`` (state keyed by parameter name in both layouts)::

                      whole checkpoint                           sharded checkpoint
    whole student     rank 0 saves full state dicts;             DCP reads into the whole tensors
                      every rank reads them                      (one process, eval, inspect)
    sharded student   rank 0 reads, broadcasts                   every rank saves and reads its shards
                      (full_state_dict + broadcast_from_rank0)   (DCP reshards to another world size)

Errors never strand a rank in a collective: each step first does this rank's own file work (reading
and checking files, or writing its parts) and catches what fails, then every rank takes part in one
all-gather of those errors and, if any rank failed, all raise the same one-line
:class:`~p4d.errors.CheckpointError`. Only after that do the collectives that move weights (DCP,
broadcasts) run. A load checks before any weight moves: the parts ``meta.json`` lists are present
(a torn copy), the weight file's keys and shapes (safetensors header, DCP ``.metadata``) match the
student, every shard file is as long as the DCP index needs, and the optimizer's groups match.

Nothing is unpickled without ``weights_only=True``. A folder is written as ``step-K.tmp`` and
renamed when complete, so a killed run never leaves a half checkpoint that looks complete; the
newest folder with a ``meta.json`` is what ``--resume RUN_DIR`` continues from.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import safetensors
import safetensors.torch
import torch
from torch import nn

from p4d.errors import CheckpointError
from p4d.train.rng_state import load_rng, save_rng
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

T = TypeVar("T")


# ---- the folders of a run -------------------------------------------------------------------------

def step_dir(out: str | Path, step: int) -> Path:
    return Path(out) / CHECKPOINTS / f"step-{step:06d}"


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


# ---- every rank agrees before a collective -----------------------------------------------------------

def _group_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def together(what: str, work: Callable[[], T] | None) -> T | None:
    """Run ``work`` (this rank's own file work; None: nothing to do on this rank), then agree with
    every rank: if any rank's work failed, every rank raises the same one-line CheckpointError (the
    lowest failing rank's, ``what`` naming the step). Every rank of the group calls it: one
    all-gather of the errors, nothing else, so no rank waits in a collective for a rank that failed."""
    result, error = None, None
    if work is not None:
        try:
            result = work()
        except CheckpointError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - turned into one error every rank raises
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
            error = f"{what}: {type(exc).__name__} {lines[-1]}".rstrip()
    world = _group_size()
    if world > 1:
        import torch.distributed as dist

        errors: list[str | None] = [None] * world
        dist.all_gather_object(errors, error)
        failed = [(rank, e) for rank, e in enumerate(errors) if e]
        error = f"{failed[0][1]} (rank {failed[0][0]} of {world})" if failed else None
    if error:
        raise CheckpointError(error)
    return result


# ---- the one interface --------------------------------------------------------------------------------

class Checkpointer:
    """Saves and loads the checkpoints of one student (whole or FSDP2-sharded) with its optimizer
    and LR schedule (both None: a model-only load, as eval and inspect do). Every rank of the
    process group builds one and calls :meth:`save` and :meth:`load` together.

    ``lora``: the checkpoint holds the trainable tensors only (``adapter.safetensors``); otherwise
    every tensor of the student but the frozen D_m (``heads.*``, rebuilt from the cache)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler=None, *,
                 lora: bool = False) -> None:
        import torch.distributed as dist

        self.model, self.optimizer, self.scheduler, self.lora = model, optimizer, scheduler, lora
        self.sharded = is_sharded(model)
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.is_main = self.rank == 0
        self._trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    # -- what is stored ------------------------------------------------------------------------------

    def _stored(self, name: str) -> bool:
        return name in self._trainable if self.lora else not name.startswith("heads.")

    def model_state(self) -> dict[str, torch.Tensor]:
        """The stored tensors of the student, keyed by name: this rank's DTensor shards of a sharded
        student (shape: the whole tensor's), the tensors themselves of a whole one. No collective."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return {k: v for k, v in get_model_state_dict(self.model).items() if self._stored(k)}

    def _optimizer_state(self, *, full: bool) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.model, self.optimizer,
                                        options=StateDictOptions(full_state_dict=full, cpu_offload=full))

    # -- save ---------------------------------------------------------------------------------------

    def save(self, out: str | Path, *, step: int, sampler_state: dict, train_state: dict, meta: dict,
             keep: int = 0) -> Path:
        """Write the checkpoint of ``step`` as ``step-K.tmp``, renamed when complete: every rank its
        RNG file (and, sharded, its shards of the model and optimizer), rank 0 the rest."""
        final = step_dir(out, step)
        tmp = final.with_name(final.name + ".tmp")
        together(f"{tmp}: making the folder", (lambda: _fresh_folder(tmp)) if self.is_main else None)
        together(f"{tmp}: writing this rank's RNG state", lambda: save_rng(tmp / RNG.format(rank=self.rank)))
        if self.sharded:  # a collective of every rank; DCP itself raises the same error on every rank
            import torch.distributed.checkpoint as dcp

            state = {"model": self.model_state(), "optim": self._optimizer_state(full=False)}
            together(f"{tmp / SHARDED}: writing the shards", lambda: dcp.save(state, checkpoint_id=str(tmp / SHARDED)))
        write = lambda: self._write_main_parts(tmp, final, step, sampler_state, train_state, meta, keep)  # noqa: E731
        together(f"{tmp}: writing the checkpoint", write if self.is_main else None)
        return final

    def _write_main_parts(self, tmp: Path, final: Path, step: int, sampler_state: dict, train_state: dict,
                          meta: dict, keep: int) -> None:
        """Rank 0 alone, no collective: the whole weights and optimizer (a whole student), the small
        parts, meta.json last, then the rename and the pruning of old checkpoints."""
        if not self.sharded:
            unique, aliases = _unique_tensors(self.model_state())
            safetensors.torch.save_file(unique, str(tmp / (ADAPTER if self.lora else MODEL)),
                                        metadata={"aliases": json.dumps(aliases)})
            torch.save(self._optimizer_state(full=True), tmp / OPTIMIZER)
        (tmp / LR_SCHEDULER).write_text(json.dumps(_jsonable(self.scheduler.state_dict())))
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
            for old in list_checkpoints(final.parent.parent)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)

    # -- load ---------------------------------------------------------------------------------------

    def load(self, folder: str | Path) -> dict[str, Any]:
        """Restore the student (and, with an optimizer, the optimizer, schedule and this rank's RNG)
        from the checkpoint ``folder``; return {"data": sampler position, "train": step state}
        ({} for a model-only load). Every file is read and checked before any weight moves."""
        folder = Path(folder)
        sharded_ckpt = is_sharded_checkpoint(folder)
        reads_whole = not sharded_ckpt and (self.is_main or not self.sharded)  # sharded student: rank 0 reads
        parts = together(f"{folder}: reading the checkpoint", lambda: self._read(folder, sharded_ckpt, reads_whole))
        if sharded_ckpt:
            self._load_sharded(folder / SHARDED)
        else:
            self._load_whole(parts)
        if self.optimizer is None:
            return {}
        sched = parts["scheduler"]
        sched.pop("lr_lambdas", None)  # rebuilt from the config
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **sched})
        if parts["rng"] is not None:
            load_rng(parts["rng"])
        else:
            log.warning("%s: no RNG state for rank %d (another world size?); RNG not restored", folder, self.rank)
        return {"data": parts["data"], "train": parts["train"]}

    def _read(self, folder: Path, sharded_ckpt: bool, reads_whole: bool) -> dict[str, Any]:
        """This rank's reads and checks, no collective: the listed parts, the shard index or the
        whole files (on the ranks that read them), the small JSON parts and this rank's RNG file."""
        listed = read_meta(folder).get("parts", [])
        missing = [p for p in listed if not p.startswith("rng-rank") and not (folder / p).exists()]
        if missing:
            raise CheckpointError(f"{folder}: a torn checkpoint; {', '.join(missing)} listed in {META} are missing")
        parts: dict[str, Any] = {"model": {}, "optim": {}}
        if sharded_ckpt:
            self._check_shard_index(folder / SHARDED)
        elif reads_whole:
            parts["model"] = self._read_model_file(folder / (ADAPTER if self.lora else MODEL))
            if self.optimizer is not None:
                parts["optim"] = self._read_optimizer_file(folder / OPTIMIZER)
        if self.optimizer is not None:
            for key, name in (("scheduler", LR_SCHEDULER), ("data", DATALOADER), ("train", TRAIN_STATE)):
                parts[key] = _read_json(folder / name)
            rng = folder / RNG.format(rank=self.rank)
            parts["rng"] = rng if rng.is_file() else None
        return parts

    def _check_keys(self, where: Path, shapes: dict[str, tuple[int, ...]]) -> None:
        want = {k: tuple(v.shape) for k, v in self.model_state().items()}
        missing, unexpected = sorted(set(want) - set(shapes)), sorted(set(shapes) - set(want))
        if missing or unexpected:
            raise CheckpointError(f"{where}: keys do not match the student: missing {missing[:6]}, "
                                  f"unexpected {unexpected[:6]}")
        for name, shape in want.items():
            if shapes[name] != shape:
                raise CheckpointError(f"{where}: {name} has shape {shapes[name]}, the student expects {shape}")

    def _read_model_file(self, file: Path) -> dict[str, torch.Tensor]:
        if not file.is_file():
            raise CheckpointError(f"{file}: missing; the checkpoint was written by a {'full' if self.lora else 'LoRA'}"
                                  f" run (check --recipe.tune)")
        try:
            with safetensors.safe_open(str(file), "pt") as f:
                aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"{file}: not a readable safetensors file ({exc})") from None
        self._check_keys(file, {**shapes, **{a: shapes[t] for a, t in aliases.items() if t in shapes}})
        state = safetensors.torch.load_file(str(file))
        return {name: state[aliases.get(name, name)].to(t.dtype) for name, t in self.model_state().items()}

    def _read_optimizer_file(self, file: Path) -> dict[str, Any]:
        """``optimizer.pt`` keyed by parameter name (a file of p4d before names: keyed by index in
        the order the same recipe builds its groups), its groups checked against the optimizer's."""
        try:
            saved = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for a bad file
            raise CheckpointError(f"{file}: unreadable optimizer state ({exc})") from None
        by_id = {id(p): n for n, p in self.model.named_parameters()}
        names = [[by_id[id(p)] for p in g["params"]] for g in self.optimizer.param_groups]
        counts = [len(g["params"]) for g in saved["param_groups"]]
        if counts != [len(g) for g in names]:
            raise CheckpointError(f"{file}: optimizer groups of {counts} parameters, this student's "
                                  f"{[len(g) for g in names]}")
        if all(isinstance(i, int) for g in saved["param_groups"] for i in g["params"]):
            flat = [n for g in names for n in g]
            groups = [{**g, "params": [flat[int(i)] for i in g["params"]]} for g in saved["param_groups"]]
            saved = {"state": {flat[int(i)]: v for i, v in saved["state"].items()}, "param_groups": groups}
        known = {n for n, _ in self.model.named_parameters(remove_duplicate=False)}  # a tied weight has two names
        unknown = sorted({n for g in saved["param_groups"] for n in g["params"]} - known)
        if unknown:
            raise CheckpointError(f"{file}: optimizer state of parameters this student lacks: {unknown[:6]}")
        return saved

    def _check_shard_index(self, folder: Path) -> None:
        """The DCP index (``.metadata``) is readable, every shard file is as long as it says, and the
        model part's names and whole shapes are the student's."""
        from torch.distributed.checkpoint import FileSystemReader

        unreadable = f"{folder}: not a readable sharded checkpoint for this student"
        try:
            index = FileSystemReader(str(folder)).read_metadata()
        except Exception as exc:  # noqa: BLE001 - a missing or cut .metadata raises several types
            raise CheckpointError(f"{unreadable} (.metadata: {type(exc).__name__} {exc})") from None
        needs: dict[str, int] = {}
        for info in index.storage_data.values():
            needs[info.relative_path] = max(needs.get(info.relative_path, 0), info.offset + info.length)
        for name, size in sorted(needs.items()):
            have = (folder / name).stat().st_size if (folder / name).is_file() else 0
            if have < size:
                raise CheckpointError(f"{unreadable} ({name}: {have} bytes, its index needs {size}; a torn copy?)")
        shapes = {k.removeprefix("model."): tuple(v.size) for k, v in index.state_dict_metadata.items()
                  if k.startswith("model.") and hasattr(v, "size")}
        self._check_keys(folder, shapes)

    def _load_sharded(self, folder: Path) -> None:
        """DCP reads each rank's slices (any world size; into a whole student too). A collective of
        every rank; DCP gathers a failure on any rank and raises it on all."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.api import CheckpointException
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, \
            set_optimizer_state_dict

        state: dict[str, Any] = {"model": self.model_state()}
        if self.optimizer is not None:
            state["optim"] = self._optimizer_state(full=False)
        try:
            with warnings.catch_warnings():  # one process without a process group is a supported DCP load
                warnings.filterwarnings("ignore", message="torch.distributed is disabled")
                dcp.load(state, checkpoint_id=str(folder))
        except (Exception, CheckpointException) as exc:  # noqa: BLE001 - CheckpointException is a BaseException
            root = [line for line in str(exc).splitlines() if line.strip()][-1:] or [type(exc).__name__]
            raise CheckpointError(f"{folder}: not a readable sharded checkpoint for this student ({root[0].strip()})") \
                from None
        # strict=False: D_m is not in the checkpoint, it comes from the cache
        set_model_state_dict(self.model, state["model"], options=StateDictOptions(strict=False))
        if self.optimizer is not None:
            set_optimizer_state_dict(self.model, self.optimizer, state["optim"])

    def _load_whole(self, parts: dict[str, Any]) -> None:
        """Full state dicts into the student: a whole student takes its own copy; a sharded one gets
        rank 0's broadcast, tensor by tensor, and keeps its shards (a collective of every rank)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, \
            set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=self.sharded, strict=False)
        set_model_state_dict(self.model, parts.pop("model"), options=options)
        if self.optimizer is not None:
            set_optimizer_state_dict(self.model, self.optimizer, parts.pop("optim"), options=options)


# ---- helpers --------------------------------------------------------------------------------------

def _fresh_folder(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: not a readable checkpoint part ({exc})") from None


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


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("p4d")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def load_checkpoint_model(folder: str | Path, *, cache: str | None = None, device: str | torch.device = "cpu"):
    """The student of a training checkpoint (its recipe rebuilt from meta.json, weights loaded):
    returns (model, TrainConfig). ``cache`` overrides the store recorded in the config (for D_m)."""
    from p4d.cache_schema import open_store
    from p4d.train.build import build_model
    from p4d.train.config import TrainConfig

    folder = find_checkpoint(folder)
    cfg = TrainConfig.from_dict(read_meta(folder)["config"], source=f"{folder / META}")
    model, _ = build_model(cfg, open_store(cache or cfg.data.cache), device=device)
    Checkpointer(model, lora=cfg.recipe.tune.endswith("-lora")).load(folder)
    return model, cfg
