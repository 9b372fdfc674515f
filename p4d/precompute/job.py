"""``p4d precompute``: run the frozen teacher once over every video into the cache.

Reads top to bottom: validate the config -> connect to a cluster -> learn the teacher's identity
from a worker -> plan a new store (probing the videos as tasks on the cluster, journaled so a
killed plan resumes) or check the existing one -> save the D_m heads -> submit one task per shard
still to do -> record results as they complete.

Resumable and idempotent: a rerun skips shards whose clips are all terminal (done or failed) and
redoes every other shard from scratch; ``--retry-failed`` also redoes shards holding failed clips;
``--force`` redoes all. A store made with another teacher, config or sampling policy is refused,
and so is one computed with another teacher dtype or device class (cpu/cuda) as the workers
resolve them, unless ``--allow-mixed-precision`` (:mod:`p4d.precompute.runtime`).
A shard whose task keeps failing (its worker died, dask gave up after ``--retries``) is recorded
failed with the reason. Ctrl-C stops cleanly: shards already written stay done, nothing is
half-marked done (a clip turns done only after its whole shard is written).

Example::

    p4d precompute videos/ cache.zarr --teacher l4p --teacher-weights l4p.ckpt --dtype bf16
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from p4d.cache_schema import CacheStore, bind_teacher, mark_shard_failed, open_store
from p4d.cache_schema.labels import RANDOM_WEIGHTS_KEY
from p4d.cache_schema.summary import human_bytes  # the units of `p4d cache summary`
from p4d.cache_schema.summary import padded_line, store_bytes
from p4d.errors import CacheNotFoundError, CacheSchemaError, P4DError
from p4d.precompute.cluster import connect
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.plan import build_spec, check_num_frames, plan_store, resolve_teacher
from p4d.precompute.progress import ClipProgress, display_mode, progress_topic, subscribe, unsubscribe
from p4d.precompute.runtime import MixedRuntimeError, check_runtime, record_runtimes, recorded_runtimes, runtime_of
from p4d.precompute.sources import list_videos
from p4d.teacher.presets import TeacherPreset
from p4d.precompute.worker import TeacherJob, process_shard, save_heads_to_store, store_identity, teacher_identity

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
    phase: str = ""                   # what the job was doing (named when it is interrupted)
    wall_s: float = 0.0
    store_bytes: int = 0
    heads_bytes: int = 0    # of store_bytes: heads.safetensors (the D_m weights, once per store)
    completions: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, clips) per shard
    worker_peak_rss_mib: float = 0.0  # the largest worker's peak RSS (sampled every 0.5 s)
    shard_runs: dict[int, dict] = field(default_factory=dict)  # shard -> its task's result: device, dtype, gpu, stage CPU-s
    in_flight: int = 1                # shards the cluster runs at once (its worker threads)
    clip_events: int = 0              # clip-progress events the driver received (one per clip processed)
    clips_counted: int = 0            # clips the progress display ended at, skipped shards' clips included

    def placements(self) -> dict[tuple[str, str, str], int]:
        """(device, dtype, GPU name) -> shards computed there, as each worker resolved them."""
        out: dict[tuple[str, str, str], int] = {}
        for run in self.shard_runs.values():
            key = (run.get("device", "?"), run.get("dtype", "?"), run.get("gpu", "?"))
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def steady_clips_per_s(self) -> float:
        """Clips/s after start-up: the clips of the completions after the first ``k`` = ``in_flight``
        over the time from the k-th completion to the last. The first k shards all started at once
        and ran partly before the k-th completed, so counting them would overstate the rate (with
        k shards in flight and completions every d seconds, the rate is S / d exactly)."""
        k = max(1, min(self.in_flight, len(self.completions) - 1))
        if len(self.completions) < 2:
            return 0.0
        (t0, _), (t1, _) = self.completions[k - 1], self.completions[-1]
        return sum(n for _, n in self.completions[k:]) / (t1 - t0) if t1 > t0 else 0.0

    def headline(self) -> str:
        lost = f", {len(self.shards_lost)} shards recorded failed after retries" if self.shards_lost else ""
        stop = (f" (interrupted while {self.phase}: rerun the same command to resume)" if self.interrupted else "")
        rate = (self.clips_done + self.clips_failed) / self.wall_s if self.wall_s else 0.0
        where = "; ".join(f"{n} on {d} {t}" + (f" ({g})" if g != "none" else "")
                          for (d, t, g), n in self.placements().items())
        return (f"{self.shards_written} shards written ({self.clips_done} clips done, {self.clips_failed} failed), "
                f"{self.shards_skipped} of {self.shards_total} skipped as already complete{lost}; "
                f"{self.wall_s:.1f} s, {rate:.2f} clips/s, store {human_bytes(self.store_bytes)} "
                f"(heads file {human_bytes(self.heads_bytes)}, arrays and side files "
                f"{human_bytes(self.store_bytes - self.heads_bytes)})"
                f"{'; shards ' + where if where else ''}{stop}")


def _random_weights(cfg: PrecomputeConfig, preset: TeacherPreset) -> bool:
    """Whether the teacher runs a random init: no --teacher-weights and no weights shipped with the preset."""
    return cfg.weights is None and preset.packaged_weights is None


def _requested_spec(cfg: PrecomputeConfig, preset: TeacherPreset, weights_hash: str, *, random_weights: bool):
    """The CacheSpec this run asks for."""
    return build_spec(teacher=preset, num_frames=cfg.num_frames, policy=cfg.policy,
                      frame_stride=cfg.frame_stride, modalities=cfg.modalities, codec=cfg.codec, map_codec=cfg.map_codec,
                      clips_per_shard=cfg.clips_per_shard, weights_hash=weights_hash, random_weights=random_weights,
                      teacher_input=cfg.teacher_input, student_size=cfg.student_size)


def _refuse_other_settings(cfg: PrecomputeConfig, store: CacheStore, spec) -> None:
    """One line naming only the differing keys, unless the only differences are the teacher weights a
    store planned by ``p4d cache init`` has not been bound to yet."""
    diffs = store.spec.compatible_with(spec)
    if cfg.map_codec is None:  # no --map-codec: the store's own (a store made before map codecs: float16)
        diffs = [d for d in diffs if not d.startswith("map_codec:")]
    if not store.spec.teacher.get("weights_hash"):  # bound later (bind_teacher): not a difference
        diffs = [d for d in diffs if not d.startswith(("teacher.weights_hash:", f"teacher.{RANDOM_WEIGHTS_KEY}:"))]
    if diffs:
        raise CacheSchemaError(
            f"store {cfg.store} was made with other settings ({'; '.join(diffs)}); "
            f"use a new STORE path, or rerun with the store's own settings"
        )


def _open_or_plan(cfg: PrecomputeConfig, preset: TeacherPreset, weights_hash: str, *,
                  random_weights: bool, client=None) -> CacheStore:
    """The store to fill: opened, or planned and created (atomically; of several runs creating the
    same new store one creates, the others join it), then checked against this run. Planning probes
    the videos as tasks on ``client``'s cluster, journaled, so a killed plan resumes. A store
    planned by ``p4d cache init`` (no weights hash yet) is bound to this run's teacher weights."""
    spec = _requested_spec(cfg, preset, weights_hash, random_weights=random_weights)
    try:
        store = open_store(cfg.store, mode="r+")
    except CacheNotFoundError:  # none, or its creation was killed: (re)create it
        store = plan_store(cfg.videos, cfg.store, spec, video_root=cfg.video_root, max_pixels=cfg.max_pixels,
                           progress=cfg.progress, join=True, client=client, retries=cfg.retries)
    _refuse_other_settings(cfg, store, spec)
    if cfg.map_codec is None:
        spec = dataclasses.replace(spec, map_codec=store.spec.map_codec)
    if store.spec.compatible_with(spec):  # only the weights of a `p4d cache init` store differ
        log.warning("%s was planned without teacher weights (`p4d cache init`); binding it to weights %s",
                    cfg.store, weights_hash)
        return bind_teacher(store, weights_hash, random_weights=random_weights)
    return store


def _record_lost_shard(store: CacheStore, shard: int, reason: str) -> None:
    """Mark every clip of a shard whose task never succeeded as failed (the driver owns it now);
    no data is encoded or written for it."""
    mark_shard_failed(store, shard, {i: reason for i in store.shard_clips(shard)})


def _peak_rss_mib(dask_worker) -> float:
    """The worker's peak RSS as sampled by dask's system monitor (every 0.5 s), and now.

    Not ``ru_maxrss``: a spawned worker inherits the high-water mark of the process it was forked from.
    """
    import psutil

    samples = list(dask_worker.monitor.quantities.get("memory", ()))
    return max([psutil.Process().memory_info().rss, *samples]) / 2**20


def _dashboard(client) -> str:
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001 - no bokeh: no dashboard
        return ""
    return link or ""


def run_precompute(cfg: PrecomputeConfig, *, shard_fn: Callable = process_shard) -> PrecomputeReport:
    """Run the batch job described by ``cfg``; see the module docstring.

    ``shard_fn(url, shard_id, job) -> {"done": n, "failed": n}`` is the per-shard task
    (:func:`~p4d.precompute.worker.process_shard`; tests inject faults through it).
    """
    # --- config: every check fires here, before a cluster starts ---
    cfg.validate()
    preset = resolve_teacher(cfg.teacher, cfg.taps)
    check_num_frames(preset, cfg.num_frames)
    # device and dtype travel as given ("auto" included): each worker resolves them from its own environment
    job = TeacherJob(preset=preset, weights=cfg.weights, seed=cfg.seed, device=cfg.device, dtype=cfg.dtype,
                     batch_size=cfg.batch_size, max_pixels=cfg.max_pixels, stand_in_rate=cfg.stand_in_rate,
                     fidelity=cfg.fidelity_policy(), decoder=cfg.decoder)
    try:
        existing = open_store(cfg.store)
    except CacheNotFoundError:
        list_videos(cfg.videos, video_root=cfg.video_root)  # a bad VIDEOS fails here, before a cluster starts
    else:  # everything but the weights hash (only a worker loads the teacher) is checked before a cluster starts
        _refuse_other_settings(cfg, existing, _requested_spec(cfg, preset, existing.spec.teacher.get("weights_hash", ""),
                                                              random_weights=_random_weights(cfg, preset)))
    report = PrecomputeReport()
    t0 = time.perf_counter()
    report.phase = "starting the dask cluster"
    try:
        with connect(cfg.scheduler, workers=cfg.workers, device=cfg.device,
                     threads_per_worker=cfg.threads_per_worker) as client:
            try:
                _run_on(client, cfg, preset, job, shard_fn, report, t0)
            except KeyboardInterrupt:
                report.interrupted = True
                quiet_dask()
    except KeyboardInterrupt:  # while the cluster started or closed
        report.interrupted = True
        quiet_dask()
    if report.interrupted:
        log.info("interrupted while %s; completed shards are kept, rerun the same command to resume", report.phase)
    report.wall_s = time.perf_counter() - t0
    report.store_bytes, report.heads_bytes = store_bytes(cfg.store)
    return report


def teacher_status(job: TeacherJob, random_weights: bool) -> str:
    """One line saying what the workers are about to build: preset, parameters, weights, device, dtype."""
    from p4d.teacher.info import teacher_stats

    params = teacher_stats(job.preset)["params"]["total"]  # the dict also holds each part: count once
    weights = (f"RANDOM weights (seed {job.seed})" if random_weights
               else f"weights {job.weights or job.preset.packaged_weights}")
    return (f"building the {job.preset.name} teacher in each worker: {params:,d} parameters ({params / 1e6:.1f} M), "
            f"{weights}, "
            f"device {job.device}, dtype {job.dtype} as each worker resolves them (the l4p preset takes 1-4 min on a CPU)")


def _run_on(client, cfg: PrecomputeConfig, preset: TeacherPreset, job: TeacherJob, shard_fn: Callable,
            report: PrecomputeReport, t0: float) -> None:
    from distributed import as_completed

    if _dashboard(client):
        log.warning("dask dashboard: %s", _dashboard(client))
    random_weights = _random_weights(cfg, preset)
    # --- the teacher's identity, from a worker (the driver never loads the teacher) ---
    report.phase = "building the teacher"
    log.warning("%s", teacher_status(job, random_weights))
    identity = wait_result(client.submit(_teacher_identity_or_error, job, pure=False))
    if isinstance(identity, P4DError):  # bad weights: one clean line, not dask's "Compute Failed" block
        raise identity
    log.info("a worker runs the teacher on %s, %s (GPU: %s), decoding with %s", identity["device"], identity["dtype"],
             identity["gpu"], "NVDEC on the GPU" if identity.get("decoder") == "gpu" else "PyAV on the CPU")
    # --- a new plan, or the existing store checked against this run ---
    report.phase = "planning the store"
    store = _open_or_plan(cfg, preset, identity["weights_hash"], random_weights=random_weights, client=client)
    # --- the resolved runtime (device class + dtype) is part of what the store was made with ---
    resolved = runtime_of(identity)
    check_runtime(cfg.store, recorded_runtimes(store), resolved, allow_mixed=cfg.allow_mixed_precision)
    record_runtimes(store, [resolved])  # before any shard is written
    padded = padded_line(store)
    if padded:
        log.warning("%s", padded)
    job = dataclasses.replace(job, runtime=resolved, allow_mixed=cfg.allow_mixed_precision)
    wait_result(client.submit(save_heads_to_store, store.url, job, pure=False))  # same bytes on every run
    todo = store.shards_to_do(retry_failed=cfg.retry_failed, force=cfg.force)
    if cfg.shards is not None:
        todo = [s for s in todo if cfg.shards[0] <= s < cfg.shards[1]]
    report.shards_total = store.num_shards if cfg.shards is None else \
        len(range(cfg.shards[0], min(cfg.shards[1], store.num_shards)))
    report.shards_skipped = report.shards_total - len(todo)
    log.info("%d of %d shards to do", len(todo), report.shards_total)
    # --- one task per shard; results recorded as they complete ---
    report.phase = "running shards"
    report.in_flight = max(1, sum(client.nthreads().values()))
    extra = {"identity": store_identity(store)} if shard_fn is process_shard else {}
    in_range = range(*cfg.shards) if cfg.shards is not None else range(store.num_shards)
    todo_set = set(todo)
    skipped = [s for s in in_range if s < store.num_shards and s not in todo_set]  # complete: done at start
    progress = ClipProgress(total=sum(len(store.shard_clips(s)) for s in (*todo, *skipped)),
                            initial=sum(len(store.shard_clips(s)) for s in skipped),
                            show=display_mode(cfg.progress))
    topic = progress_topic(client.id)
    if subscribe(client, topic, progress):  # before any shard is submitted: no event is missed
        job = dataclasses.replace(job, progress_topic=topic)
    futures = {client.submit(shard_fn, store.url, s, job, retries=cfg.retries, pure=False,
                             key=f"p4d-shard-{s}-{client.id}", **extra): s for s in todo}
    try:
        for fut in as_completed(futures):
            shard = futures[fut]
            try:
                res = fut.result()
            except MixedRuntimeError:  # a worker resolved another runtime: refused, nothing of it written
                client.cancel(list(futures))
                raise
            except Exception as exc:  # noqa: BLE001 - a lost shard is recorded, the job goes on
                reason = f"shard task failed after {cfg.retries} retries: {type(exc).__name__}: {exc}"
                log.error("shard %d: %s", shard, reason)
                _record_lost_shard(store, shard, reason)
                report.shards_lost[shard] = reason
                res = {"done": 0, "failed": len(store.shard_clips(shard))}
            else:
                report.shards_written += 1
                report.shard_runs[shard] = res
            report.clips_done += res["done"]
            report.clips_failed += res["failed"]
            report.completions.append((time.perf_counter() - t0, res["done"] + res["failed"]))
            progress.on_shard(shard, store.shard_clips(shard), res["failed"])
    except KeyboardInterrupt:
        quiet_dask()
        client.cancel(list(futures))
        raise
    finally:
        unsubscribe(client, topic)
        progress.close()
        report.clip_events, report.clips_counted = progress.events, progress.count
    if cfg.allow_mixed_precision:  # every runtime a shard ran on, in the store's record
        record_runtimes(store, list(report.shard_runs.values()))
    if cfg.scheduler is None:
        report.worker_peak_rss_mib = max(client.run(_peak_rss_mib).values(), default=0.0)


def _teacher_identity_or_error(job: TeacherJob):
    """:func:`teacher_identity` in a worker, a p4d error (e.g. refused weights) returned rather than
    raised, so dask does not log it as a failed task before the driver reports it."""
    try:
        return teacher_identity(job)
    except P4DError as exc:
        return exc


def wait_result(future, poll_s: float = 0.1):
    """``future.result()``, waiting in this thread: a Ctrl-C then lands here, not inside dask's
    event-loop bridge (where it logs a tornado traceback)."""
    while not future.done():
        time.sleep(poll_s)
    return future.result()


def quiet_dask() -> None:
    """After Ctrl-C: silence distributed's shutdown noise (CancelledError, closing comms, and the
    "Exception ignored in Future.__del__" of a Future the interrupt cut off half-built); p4d says what
    happened. Errors raised while deleting other objects are still printed."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    shown = sys.unraisablehook

    def hook(unraisable) -> None:
        if not (getattr(unraisable.object, "__module__", None) or "").startswith("distributed"):
            shown(unraisable)

    sys.unraisablehook = hook
