"""``p4d train``: the student trainer. Reads the cache, never loads the teacher.

Run it::

    p4d train --data convs.jsonl --cache cache.zarr --out runs/p4d              # one process
    p4d train --config recipe.yaml --out runs/p4d --optim.lr-llm 1e-5         # YAML + flag overrides
    torchrun --nproc-per-node 8 -m p4d.train --config recipe.yaml --out runs/p4d   # FSDP2 or DDP (nccl on GPU)
    p4d train --resume runs/p4d                                               # continue exactly

:func:`main` reads top to bottom: config and cache checks (before any process group) → process
group → data → student → optimizer and schedule → resume → loop → export. The loop body is
:func:`train_step`; factories live in :mod:`~p4d.train.build`, :mod:`~p4d.train.loader`,
:mod:`~p4d.train.checkpoint` and :mod:`~p4d.train.logs`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from p4d.cache_schema import open_store
from p4d.errors import CacheSchemaError, CheckpointError, ConfigError
from p4d.train.runfolder import TrainInterrupted
from p4d.train import checkpoint as ckpt
from p4d.train.build import build_model, build_sharded_model, check_store, d4dp_ceiling, student_config
from p4d.train.config import TrainConfig
from p4d.train.data import build_samples
from p4d.train.distributed import (Dist, barrier, close_distributed, heartbeat, init_distributed, mean_across,
                                   sum_across, world_size)
from p4d.train.export import export_trained
from p4d.train.device_decode import decode_target_parts
from p4d.train.loader import ClipDataset, ShardBatchSampler, make_loader
from p4d.train.optim import build_optimizer, build_scheduler
from p4d.train.logs import RunLog, peak_memory_mb, truncate_log
from p4d.train.loss_watch import NegligibleTerms
from p4d.train.precision import autocast, resolve_precision
from p4d.train.probe import copy_source_student, freeze_for_probe, resolve_probe
from p4d.train.recipes import resolve_run_length
from p4d.train.sharding import full_tensor, gather_student, is_sharded, resolve_parallel

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
DATA_REPORT = "data_report.json"


@dataclass
class TrainResult:
    out: Path
    steps: int
    last: dict[str, Any] = field(default_factory=dict)   # the last logged record
    checkpoint: Path | None = None
    export: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)   # DataReport.to_dict()


def needed_targets(cfg: TrainConfig, modalities: Sequence[str] | None = None) -> tuple[str, ...]:
    """Cache targets the recipe's losses read: F_4D for LD and every map of the loss preset, a term
    with weight 0 included (it is logged, not trained, as the release logs every modality's ED: the
    student's ``LossConfig.log_all``, on for every run ``p4d train`` builds) and, for a map, when the
    cache holds it (``modalities``: the store's; None: all)."""
    out = []
    for t in cfg.loss_terms:
        weight = getattr(cfg.loss, f"{t}_weight")
        if t == "ld":  # F_4D does not mirror: at weight 0 it is not read when frames may be flipped
            if weight is None or weight > 0 or not cfg.augment.hflip:
                out.append("f4d")
        elif (weight is None or weight > 0) or modalities is None or t in modalities:
            out.append(t)
    return tuple(out)


def forward_batch(model: nn.Module, batch: dict[str, Any], device: torch.device, *,
                  log_untrained: bool = True) -> dict[str, Any]:
    """The student's loss dict for one collated batch (``log_untrained``: also the weight-0 terms)."""
    move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
    targets = {k: move(v) for k, v in batch["targets"].items()} or None
    if targets and batch.get("target_codec"):  # stored parts: decode on the device (p4d.train.device_decode)
        targets = decode_target_parts(batch["target_codec"], targets)
    return model(frames=move(batch["frames"]), timestamps=move(batch["timestamps"]), input_ids=move(batch["input_ids"]),
                 attention_mask=move(batch["attention_mask"]), labels=move(batch["labels"]), targets=targets,
                 f4d=move(batch["f4d"]) if batch.get("f4d") is not None else None, tpe=batch["tpe"],
                 log_untrained=log_untrained)


def train_step(model: nn.Module, batches: list[dict], *, optimizer, scheduler, cfg: TrainConfig, dist: Dist,
               dump_grads: Path | None = None, log_untrained: bool = True) -> dict[str, float]:
    """One optimizer step over ``grad_accum`` micro-batches; returns the step's mean loss terms
    (the weight-0 ones only with ``log_untrained``: the trainer asks for them on logged steps)."""
    model.train()
    sums: dict[str, float] = {}
    for k, batch in enumerate(batches):  # DDP skips the all-reduce but on the last; FSDP reduce-scatters each
        sync = k == len(batches) - 1 or not hasattr(model, "no_sync")
        with (contextlib.nullcontext() if sync else model.no_sync()), autocast(cfg.runtime.precision, dist.device):
            out = forward_batch(model, batch, dist.device, log_untrained=log_untrained)
        (out["loss"] / len(batches)).backward()
        sums["loss"] = sums.get("loss", 0.0) + float(out["loss"].detach())
        for name, value in out["losses"].items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
    if dump_grads is not None and (dist.is_main or is_sharded(model)):
        import safetensors.torch

        inner = model.module if hasattr(model, "module") else model
        grads = {n: full_tensor(p.grad.detach()).cpu().contiguous() for n, p in inner.named_parameters()
                 if p.grad is not None}  # sharded: every rank gathers
        if dist.is_main:
            safetensors.torch.save_file(grads, str(dump_grads))
    terms = {k: v / len(batches) for k, v in sums.items()}
    terms.update({f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups})  # the lrs this step used
    if cfg.optim.grad_clip > 0:
        params = [p for p in model.parameters() if p.grad is not None]
        terms["grad_norm"] = float(full_tensor(torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return terms


def loss_term_weights(model: nn.Module) -> dict[str, float]:
    """{term: weight in the total loss} of a student: SFT 1, LD and each head's λ_m from its LossConfig."""
    inner = model.module if hasattr(model, "module") else model
    lc = inner.cfg.loss
    heads = getattr(inner, "heads", None)
    return {"sft": 1.0, "ld": float(lc.ld_weight),
            **{m: lc.weight(m) for m in (heads.heads if heads is not None else ())}}


class BatchStream:
    """Micro-batches across epochs from a loader over a :class:`ShardBatchSampler`; tracks the
    resumable position (epoch, next batch) and the samples that failed to load. With an
    ``endless`` sampler one loader iterator serves every epoch.

    Ranks stay in step: after each micro-batch the ranks all-reduce (its good samples, whether it
    came back empty). A micro-batch that failed entirely on any rank is skipped by every rank
    together, so each rank's sampler advances by the same global batches and the position rank 0
    saves is every rank's; ``batch["global_size"]`` is the good samples over all ranks."""

    def __init__(self, loader, sampler: ShardBatchSampler, dist: Dist | None = None):
        self.loader, self.sampler, self.dist = loader, sampler, dist
        self.dropped = 0   # samples that failed to load (this rank)
        self.skipped = 0   # global batches every rank skipped because one rank's micro-batch failed entirely
        self._it = None
        if len(sampler.epoch_batches(sampler.epoch)) == 0:
            raise ConfigError(f"--data.batch-size: {len(sampler.samples)} usable samples make no global batch of "
                              f"{sampler.global_batch} (batch size × processes); lower --batch-size")

    def next(self) -> dict[str, Any]:
        while True:
            if self._it is None:
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:  # a one-epoch sampler ran out (its position already moved on)
                self._it = None
                continue
            self.sampler.advance()
            for message in batch["errors"]:
                log.warning("dropped a sample that failed to load: %s", message)
            self.dropped += len(batch["errors"])
            good, empty_ranks = sum_across((batch["size"], int(batch["size"] == 0)), self.dist)
            if empty_ranks == 0:
                batch["global_size"] = good
                return batch
            self.skipped += 1
            if batch["size"]:
                log.warning("skipped a micro-batch of %d good samples: every sample of %d rank(s) failed to load, "
                            "and every rank skips that global batch together", batch["size"], empty_ranks)

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()


def main(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) one training run as configured."""
    # --- config and cache: every fail-fast fires here, before any process group --------------
    cfg.validate()
    probe_source = resolve_probe(cfg) if cfg.probe_from else None  # the source's student, before any build
    cfg.runtime.parallel = resolve_parallel(cfg.runtime.parallel, cfg.recipe.tune, world_size())  # recorded resolved
    fsdp = cfg.runtime.parallel == "fsdp"
    out = Path(cfg.out)
    store = open_store(cfg.data.cache)
    check_store(cfg, store)
    if not cfg.model.init_from:  # the checkpoint's size is known once built (checked again below)
        check_student_size(store, student_config(cfg).image_size)
    resume_from = None
    if cfg.resume:
        run_dir, resume_from = ckpt.find_resume(cfg.resume)
        if out.resolve() != run_dir.resolve():
            raise CheckpointError(
                f"--out {out}: --resume {cfg.resume} continues the run folder {run_dir}, and a resumed run writes only "
                f"there; drop --out (or pass --out {run_dir}). To branch a run, copy its folder and resume the copy")
        if resume_from is None:
            log.warning("--resume %s: no complete checkpoint yet; training from step 0 in that folder", run_dir)
        else:
            meta = ckpt.read_meta(resume_from)
            check_resumable(cfg, meta)
            check_same_cache(cfg, meta, store, resume_from)

    # --- engine & topology ---------------------------------------------------------------------
    dist = init_distributed(cfg.runtime.device, cfg.runtime.backend, group=fsdp, timeout_min=cfg.runtime.dist_timeout)
    cfg.runtime.precision = resolve_precision(cfg.runtime.precision, dist.device)  # config.yaml records the policy
    runlog = None
    try:
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            cfg.save(out / CONFIG_FILE)

        # --- data: conversations joined with the cache ------------------------------------------
        samples, report = build_samples(cfg.data.conversations, store, video_root=cfg.data.video_root,
                                        allow_missing_targets=cfg.data.allow_missing_targets)
        if dist.is_main:
            (out / DATA_REPORT).write_text(json.dumps(report.to_dict(), indent=1))
            log.info("data: %s", report.summary())
        if not samples:
            raise ConfigError(f"--data {cfg.data.conversations}: no usable record ({report.summary()})")

        resolved = resolve_run_length(cfg, samples, dist.world_size)  # --optim.epochs / --optim.global-batch
        if resolved and dist.is_main:
            log.info("run length: %s", ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in resolved.items()))

        # --- student, optimizer, schedule -------------------------------------------------------
        if fsdp:  # sharded before the optimizer sees its parameters; rank 0 builds on the host, the others wait
            with heartbeat("rank 0: building the student on the host and broadcasting its shards",
                           timeout_min=cfg.runtime.dist_timeout, enabled=dist.is_main and dist.world_size > 1):
                model, counts = build_sharded_model(cfg, store, dist)
        else:
            model, counts = build_model(cfg, store, device=dist.device)
        if probe_source is not None:  # D_4DP alone trains; a resumed probe reloads its own checkpoint below
            if resume_from is None:
                copy_source_student(model, probe_source, cache=cfg.data.cache, device=dist.device)
            counts = freeze_for_probe(model)
        check_student_size(store, model.cfg.image_size)  # every rank the same verdict: no rank waits alone
        lora = cfg.recipe.tune.endswith("-lora")
        optimizer = build_optimizer(model, cfg)
        scheduler = build_scheduler(optimizer, cfg)
        dataset = ClipDataset(samples, store, student=model.cfg, tokenizer=model.tokenizer,
                              targets=needed_targets(cfg, store.spec.modalities), f4d_input=model.cfg.needs_f4d_input,
                              hflip=cfg.augment.hflip, seed=cfg.runtime.seed,
                              decode_on_device=dist.device.type == "cuda", max_length=cfg.data.max_length)
        sampler = ShardBatchSampler(samples, batch_size=cfg.data.batch_size, world_size=dist.world_size,
                                    rank=dist.rank, seed=cfg.runtime.seed, endless=True)
        check_first_sample(dataset, samples)
        if dist.is_main and (ceiling := d4dp_ceiling(model.cfg, store, samples)):
            log.info(ceiling)

        # --- resume -----------------------------------------------------------------------------
        checkpointer = ckpt.Checkpointer(model, optimizer, scheduler, lora=lora)  # every rank saves and loads
        step, seen = 0, 0
        if resume_from is not None:
            state = checkpointer.load(resume_from)
            sampler.load_state_dict(state["data"])
            step, seen = int(state["train"]["step"]), int(state["train"]["samples"])
            log.info("resumed from %s at step %d (epoch %d, batch %d)", resume_from, step, sampler.epoch,
                     sampler.start)
        wrapped = model
        if cfg.runtime.parallel == "ddp" and dist.backend is not None:
            ids = [dist.device.index] if dist.device.type == "cuda" else None
            wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
        loader = make_loader(dataset, sampler, pad_id=model.ids.pad, num_workers=cfg.data.num_workers,
                             pin_memory=dist.device.type == "cuda", prefetch_factor=cfg.data.prefetch_factor)
        stream = BatchStream(loader, sampler, dist)
        meta = {"config": cfg.to_dict(), "student": model.cfg.to_dict(), "world_size": dist.world_size,
                "parallel": cfg.runtime.parallel,
                "trainable": counts, "cache": {"url": store.url, "schema_version": store.attrs.get("schema_version"),
                                               "teacher": store.spec.teacher.get("preset"),
                                               "teacher_hash": store.spec.teacher.get("weights_hash")}}

        # --- loop -------------------------------------------------------------------------------
        if cfg.resume and dist.is_main:
            dropped = truncate_log(out, step)   # steps logged after the checkpoint are logged again
            if dropped:
                log.info("log.jsonl: dropped %d records after step %d (they are trained again)", dropped, step)
        runlog = RunLog(out, total_steps=cfg.optim.max_steps, start_step=step, enabled=dist.is_main,
                        progress=cfg.log.progress, tensorboard=cfg.log.tensorboard)
        last: dict[str, Any] = {}
        saved = None
        watch = NegligibleTerms(loss_term_weights(model))
        if dist.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dist.device)
        done = {"step": step, "samples": seen, "epoch": sampler.epoch, "position": stream.state_dict()}
        try:  # Ctrl-C: save the last completed step (unless just saved), say how to resume
            while step < cfg.optim.max_steps:
                t0 = time.perf_counter()
                dropped0, skipped0 = stream.dropped, stream.skipped
                batches = [stream.next() for _ in range(cfg.optim.grad_accum)]
                wait = time.perf_counter() - t0
                dump = out / f"grads-step-{step + 1}.safetensors" if cfg.runtime.dump_grads_at == step + 1 else None
                logged = (step + 1) % cfg.log.every == 0 or step + 1 == cfg.optim.max_steps
                terms = train_step(wrapped, batches, optimizer=optimizer, scheduler=scheduler, cfg=cfg, dist=dist,
                                   dump_grads=dump, log_untrained=logged)
                step += 1
                if dist.is_main:
                    watch.update(terms, step)
                n = sum(b["global_size"] for b in batches)  # good samples over every rank
                seen += n
                done = {"step": step, "samples": seen, "epoch": sampler.epoch, "position": stream.state_dict()}
                elapsed = time.perf_counter() - t0
                if step % cfg.log.every == 0 or step == cfg.optim.max_steps:
                    terms = mean_across(terms, dist)
                    dropped, = sum_across((stream.dropped - dropped0,), dist)   # failed samples over every rank
                    last = {"step": step, "epoch": sampler.epoch, **terms,
                            "step_time": elapsed, "data_wait": wait, "data_wait_frac": wait / elapsed if elapsed else 0.0,
                            "samples_per_s": n / elapsed if elapsed else 0.0,
                            "peak_mem_mb": peak_memory_mb(dist.device), "samples": seen,
                            "dropped": dropped, "skipped_batches": stream.skipped - skipped0}
                    runlog.write(last)
                runlog.step()
                if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or step == cfg.optim.max_steps:
                    saved = checkpointer.save(
                        out, step=step, sampler_state=stream.state_dict(),
                        train_state={"step": step, "samples": seen, "epoch": sampler.epoch}, meta=meta,
                        keep=cfg.checkpoint.keep)
        except KeyboardInterrupt:
            if done["step"] > 0 and saved != ckpt.step_dir(out, done["step"]):
                saved = checkpointer.save(
                    out, step=done["step"], sampler_state=done["position"],
                    train_state={k: done[k] for k in ("step", "samples", "epoch")}, meta=meta,
                    keep=cfg.checkpoint.keep)
            raise TrainInterrupted(out, done["step"], saved) from None

        # --- export -----------------------------------------------------------------------------
        exported = None
        if cfg.checkpoint.export:
            plain = gather_student(model, dist.is_main) if fsdp else model  # sharded: every rank gathers
            if dist.is_main:
                exported = export_trained(plain, out / "export", cfg.preset_record, lora=lora,
                                          dtype=cfg.checkpoint.export_dtype)
        barrier(dist)
        return TrainResult(out=out, steps=step, last=last, checkpoint=saved, export=exported, data=report.to_dict())
    finally:
        if runlog is not None:
            runlog.close()
        close_distributed(dist)


#: ``--optim.*`` a resume refuses to change. The restored optimizer state carries the checkpoint's
#: learning rates, betas and weight decay in its param groups (and the scheduler its base lrs), so a
#: new value would be silently ignored; the micro-batches per optimizer step are the batch layout.
RESUME_RESTORED_OPTIM = ("lr_projector", "lr_llm", "lr_d4dp", "lr_vision", "weight_decay", "betas")
RESUME_BATCH_OPTIM = ("grad_accum", "global_batch")
#: ``--optim.*`` a resume may change (logged): the warmup + cosine schedule is rebuilt from the config
#: on resume, from the checkpoint's step on, and clipping is applied per step.
RESUME_MAY_CHANGE_OPTIM = ("max_steps", "warmup_steps", "warmup_ratio", "min_lr_ratio", "epochs", "grad_clip")


def check_resumable(cfg: TrainConfig, meta: dict[str, Any]) -> None:
    """Refuse to resume with a recipe, model, optimizer or batch layout that differs from the
    checkpoint's; allow (and log) a change of the LR schedule's length and shape or of clipping."""
    saved = meta.get("config", {})
    now = cfg.to_dict()
    for section in ("model", "recipe", "loss", "lora", "optim"):
        for key, value in now.get(section, {}).items():
            before = saved.get(section, {}).get(key)
            flag = f"--{section}.{key.replace('_', '-')}"
            if before == value or (section == "optim" and key == "grad_accum" and cfg.optim.global_batch is not None):
                continue  # grad_accum follows --optim.global-batch (compared itself) when that is set
            if section == "optim" and key in RESUME_MAY_CHANGE_OPTIM:
                log.warning("%s: the checkpoint's run used %r, this run %r; the LR schedule (or clipping) follows "
                            "the new value from the checkpoint's step on", flag, before, value)
                continue
            why = (" (the checkpoint's optimizer state restores it: a new value would be ignored)"
                   if section == "optim" and key in RESUME_RESTORED_OPTIM else
                   " (the samples per optimizer step would change)" if section == "optim" else "")
            raise CheckpointError(f"{flag}: the checkpoint was trained with {before!r}, this run asks for {value!r}"
                                  f"{why}; resume with the same setting")
    # the global batch (per process × processes) must stay; another world size resumes with the
    # per-process batch that keeps it (DCP reshards a sharded checkpoint to the new world size)
    before, world = saved.get("data", {}).get("batch_size"), int(meta.get("world_size", 1))
    now_world = world_size()
    if before is None or before * world != cfg.data.batch_size * now_world:
        raise CheckpointError(
            f"--data.batch-size: the checkpoint used {before!r} per process × {world} processes, this run "
            f"{cfg.data.batch_size} × {now_world}; the data position would not line up. Resume with a global batch "
            f"of {before * world if before else '?'} clips")


def check_same_cache(cfg: TrainConfig, meta: dict[str, Any], store, checkpoint: Path) -> None:
    """Refuse to resume on a cache of another schema version or teacher weights than the checkpoint
    trained on (its targets would change mid-run), unless ``--allow-teacher-change``."""
    saved = meta.get("cache", {})
    now = {"schema_version": store.attrs.get("schema_version"), "teacher_hash": store.spec.teacher.get("weights_hash")}
    for key, value in now.items():
        before = saved.get(key)
        if before != value:
            if cfg.allow_teacher_change:
                log.warning("--allow-teacher-change: resuming %s (%s %r) on --cache %s (%s %r)", checkpoint, key,
                            before, store.url, key, value)
                continue
            raise CheckpointError(
                f"--cache {store.url}: {key} {value!r}, but the checkpoint {checkpoint / ckpt.META} trained on "
                f"{before!r}; resume with the cache it trained on, or pass --allow-teacher-change to continue anyway")


def check_student_size(store, image_size: int) -> None:
    """Refuse a cache whose teacher input was made (``teacher_input release``) from frames squashed
    to another S×S than the student's: the teacher would have seen other pixels than the student."""
    cached = store.spec.spatial.get("student_size")
    if cached is not None and int(cached) != int(image_size):
        raise CacheSchemaError(
            f"--cache {store.url}: its teacher input was made from frames squashed to {cached}×{cached} "
            f"(`p4d precompute --student-size {cached}`), but the student's image size is {image_size}; precompute "
            f"the cache with --student-size {image_size}, or train a student of image size {cached}")


def check_first_sample(dataset: ClipDataset, samples) -> None:
    """Before the first step: the frames decoded at a cached clip's stored indices must carry the
    stored timestamps (else the video changed since precompute and frames and targets disagree)."""
    import numpy as np

    from p4d.cache_schema import read_clip
    from p4d.video import decode_frames

    first = next((s for s in samples if s.kind == "video"), None)
    if first is None:
        return
    clip = read_clip(dataset.store, first.clip, fields=("frame_index", "timestamp"))
    decoded = decode_frames(first.media[0], clip["frame_index"])
    if not np.allclose(decoded.timestamp, clip["timestamp"], atol=1e-3):
        raise CacheSchemaError(
            f"--cache {dataset.store.url}: clip {first.clip} of {first.media[0]} decodes at timestamps "
            f"{decoded.timestamp[:4].tolist()}..., the cache stored {clip['timestamp'][:4].tolist()}...: the video "
            "changed since precompute; rebuild the cache (`p4d precompute --force`)")
