"""``p4d precompute``: run the frozen teacher once over every video into the cache.

Reads top to bottom: validate the config -> connect to a cluster -> learn the teacher's identity
from a worker -> plan a new store or check the existing one -> save the D_m heads -> submit one
task per shard still to do -> record results as they complete.

Resumable and idempotent: a rerun skips shards whose clips are all terminal (done or failed) and
redoes every other shard from scratch; ``--retry-failed`` also redoes shards holding failed clips;
``--force`` redoes all. A store made with another teacher, config or sampling policy is refused.
A shard whose task keeps failing (its worker died, dask gave up after ``--retries``) is recorded
failed with the reason. Ctrl-C stops cleanly: shards already written stay done, nothing is
half-marked done (a clip turns done only after its whole shard is written).

Example::

    p4d precompute videos/ cache.zarr --teacher l4p --weights l4p.ckpt --dtype bf16
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

from p4d.cache_schema import CacheStore, open_store, write_shard
from p4d.errors import CacheNotFoundError, CacheSchemaError
from p4d.precompute.cluster import connect
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.plan import build_spec, plan_cache
from p4d.precompute.worker import (TeacherJob, empty_shard_arrays, process_shard, resolve_device, resolve_dtype,
                                  save_heads_to_store, teacher_identity)

log = logging.getLogger(__name__)


@dataclass
class PrecomputeReport:
    shards_total: int = 0
    shards_skipped: int = 0
    shards_written: int = 0
    shards_lost: dict[int, str] = field(default_factory=dict)   # shard -> why its task never succeeded
    clips_done: int = 0
    clips_failed: int = 0
    interrupted: bool = False

    def headline(self) -> str:
        lost = f", {len(self.shards_lost)} shards recorded failed after retries" if self.shards_lost else ""
        stop = " (interrupted: rerun the same command to resume)" if self.interrupted else ""
        return (f"{self.shards_written} shards written ({self.clips_done} clips done, {self.clips_failed} failed), "
                f"{self.shards_skipped} of {self.shards_total} skipped as already complete{lost}{stop}")


def _open_or_plan(cfg: PrecomputeConfig, weights_hash: str) -> CacheStore:
    spec = build_spec(teacher=cfg.teacher, num_frames=cfg.num_frames, policy=cfg.policy,
                      frame_stride=cfg.frame_stride, modalities=cfg.modalities, codec=cfg.codec,
                      clips_per_shard=cfg.clips_per_shard, weights_hash=weights_hash)
    try:
        store = open_store(cfg.store, mode="r+")
    except CacheNotFoundError:
        return plan_cache(cfg.videos, cfg.store, teacher=cfg.teacher, num_frames=cfg.num_frames, policy=cfg.policy,
                          frame_stride=cfg.frame_stride, modalities=cfg.modalities, codec=cfg.codec,
                          clips_per_shard=cfg.clips_per_shard, weights_hash=weights_hash, progress=cfg.progress,
                          video_root=cfg.video_root, max_pixels=cfg.max_pixels)
    diffs = store.spec.compatible_with(spec)
    if diffs:
        raise CacheSchemaError(
            f"store {cfg.store} was made with another teacher, config or sampling policy ({'; '.join(diffs)}); "
            f"use a new STORE path, or rerun with the store's own settings"
        )
    return store


def _record_lost_shard(store: CacheStore, shard: int, reason: str) -> None:
    """Mark every clip of a shard whose task never succeeded as failed (the driver owns it now)."""
    clips = store.shard_clips(shard)
    write_shard(store, shard, empty_shard_arrays(store, len(clips)), {i: reason for i in clips})


def run_precompute(cfg: PrecomputeConfig, *, shard_fn: Callable = process_shard) -> PrecomputeReport:
    """Run the batch job described by ``cfg``; see the module docstring.

    ``shard_fn(url, shard_id, job) -> {"done": n, "failed": n}`` is the per-shard task
    (:func:`~p4d.precompute.worker.process_shard`; tests inject faults through it).
    """
    from distributed import as_completed

    cfg.validate()
    device = resolve_device(cfg.device)
    job = TeacherJob(preset=cfg.teacher, weights=cfg.weights, seed=cfg.seed, device=device,
                     dtype=resolve_dtype(cfg.dtype, device), batch_size=cfg.batch_size, max_pixels=cfg.max_pixels)
    report = PrecomputeReport()
    with connect(cfg.scheduler, workers=cfg.workers, device=cfg.device,
                 threads_per_worker=cfg.threads_per_worker) as client:
        # --- the teacher's identity, from a worker (the driver never loads the teacher) ---
        identity = client.submit(teacher_identity, job, pure=False).result()
        # --- a new plan, or the existing store checked against this run ---
        store = _open_or_plan(cfg, identity["weights_hash"])
        client.submit(save_heads_to_store, store.url, job, pure=False).result()
        todo = store.shards_to_do(retry_failed=cfg.retry_failed, force=cfg.force)
        report.shards_total = store.num_shards
        report.shards_skipped = store.num_shards - len(todo)
        log.info("%d of %d shards to do", len(todo), store.num_shards)
        # --- one task per shard; results recorded as they complete ---
        futures = {client.submit(shard_fn, store.url, s, job, retries=cfg.retries, pure=False,
                                 key=f"p4d-shard-{s}-{client.id}"): s for s in todo}
        bar = tqdm(total=len(todo), desc="shards", unit="shard", disable=not cfg.progress)
        try:
            for fut in as_completed(futures):
                shard = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a lost shard is recorded, the job goes on
                    reason = f"shard task failed after {cfg.retries} retries: {type(exc).__name__}: {exc}"
                    log.error("shard %d: %s", shard, reason)
                    _record_lost_shard(store, shard, reason)
                    report.shards_lost[shard] = reason
                    report.clips_failed += len(store.shard_clips(shard))
                else:
                    report.shards_written += 1
                    report.clips_done += res["done"]
                    report.clips_failed += res["failed"]
                bar.update(1)
                bar.set_postfix(done=report.clips_done, failed=report.clips_failed)
        except KeyboardInterrupt:
            report.interrupted = True
            client.cancel(list(futures))
            log.warning("interrupted: cancelled the remaining shards; completed shards are kept")
        finally:
            bar.close()
    return report
