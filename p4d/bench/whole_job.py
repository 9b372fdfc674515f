"""The CPU a ``p4d precompute`` job costs on the host, every process of it counted.

:func:`measure_job` runs :func:`p4d.precompute.job.run_precompute` as a user runs it (a local
dask cluster: driver, scheduler, nanny, worker processes and their decode threads) in a child
process, and reads ``getrusage(RUSAGE_CHILDREN)`` before and after it in this process: the child
and every descendant it reaped (the cluster's worker processes are joined when it closes, so
their CPU is included). :func:`marginal` turns two such jobs at different video counts into CPU-s
per clip with start-up (imports, cluster, teacher, planning) cancelled out.

The child also reports what the job itself says (clips, the per-shard stage CPU its workers
counted, peak worker RSS), so the caller can put the whole figure beside the stage breakdown of
the same runs and show the part no stage accounts for.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field

#: Per-shard stage CPU the worker counts (:func:`p4d.precompute.worker.process_shard`'s result):
#: decode (+RGB) and resize in the decode threads, the teacher-input tensor, encode and write.
STAGES = ("decode_cpu_s", "resize_cpu_s", "input_cpu_s", "encode_cpu_s", "write_cpu_s")


@dataclass
class JobCost:
    """One job's host cost: CPU seconds of every process (user, system), the job's own figures."""

    clips: int
    user_s: float
    sys_s: float
    wall_s: float
    stages: dict[str, float]           # summed over shards: STAGES' CPU-s
    peak_rss_mib: float                # the largest process of the job (ru_maxrss of the child's children)
    worker_peak_rss_mib: float         # the job's own figure (dask's sampled worker RSS)
    steady_clips_per_s: float = 0.0    # the job's own steady-state rate (PrecomputeReport.steady_clips_per_s)
    driver_cpu_s: float = 0.0          # of cpu_s: the driver process (with the local scheduler and nanny in it)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before / after
    decoders: list = field(default_factory=list)  # the decoders the shards ran with (runs/shard-*.json)
    decode_fallbacks: int = 0          # videos the GPU decoder handed to PyAV

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def stage_sum(self) -> float:
        return sum(self.stages.values())


def measure_job(cfg, *, timeout: float = 3600) -> JobCost:
    """Run ``run_precompute(cfg)`` in a child process; its CPU and every descendant's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_root(), os.environ.get("PYTHONPATH")) if p)}
    load0 = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "p4d.bench.whole_job", json.dumps(cfg.to_dict())],
                          capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"bench job failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return JobCost(clips=got["clips"], user_s=after.ru_utime - before.ru_utime, sys_s=after.ru_stime - before.ru_stime,
                   wall_s=wall, stages=got["stages"], peak_rss_mib=got["peak_rss_mib"],
                   worker_peak_rss_mib=got["worker_peak_rss_mib"], steady_clips_per_s=got["steady_clips_per_s"],
                   driver_cpu_s=got["driver_cpu_s"],
                   load=(load0, os.getloadavg()[0]),
                   decoders=got["decoders"], decode_fallbacks=got["decode_fallbacks"])


@dataclass(frozen=True)
class Marginal:
    """CPU-s per clip between two jobs: (big - small) / (clips_big - clips_small)."""

    cpu: float
    user: float
    sys: float
    stages: dict[str, float]
    driver: float = 0.0  # of cpu: the driver process (scheduler and nanny run in it)

    @property
    def stage_sum(self) -> float:
        return sum(self.stages.values())

    @property
    def unaccounted(self) -> float:
        return self.cpu - self.stage_sum


def marginal(small: JobCost, big: JobCost) -> Marginal:
    n = big.clips - small.clips
    if n <= 0:
        raise ValueError(f"marginal cost needs more clips in the big job ({big.clips}) than the small one ({small.clips})")
    return Marginal(cpu=(big.cpu_s - small.cpu_s) / n, user=(big.user_s - small.user_s) / n,
                    sys=(big.sys_s - small.sys_s) / n, driver=(big.driver_cpu_s - small.driver_cpu_s) / n,
                    stages={k: (big.stages[k] - small.stages[k]) / n for k in STAGES})


def _root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])


def _child(cfg_json: str) -> None:
    """In the child: run the job, print one JSON line of what it reported."""
    import logging

    logging.disable(logging.WARNING)
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    d = json.loads(cfg_json)
    for key in ("taps", "modalities", "shards"):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    report = run_precompute(PrecomputeConfig(**d))
    if report.shards_lost or report.interrupted:
        raise SystemExit(f"bench job lost shards: {report.shards_lost}")
    stages = {k: sum(r.get(k, 0.0) for r in report.shard_runs.values()) for k in STAGES}
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"clips": report.clips_done + report.clips_failed, "stages": stages,
                      "peak_rss_mib": max(kids.ru_maxrss, me.ru_maxrss) / 1024,
                      "worker_peak_rss_mib": report.worker_peak_rss_mib,
                      "steady_clips_per_s": report.steady_clips_per_s,
                      "driver_cpu_s": me.ru_utime + me.ru_stime,
                      "decoders": sorted({r.get("decoder", "cpu") for r in report.shard_runs.values()}),
                      "decode_fallbacks": sum(r.get("decode_fallbacks", 0) for r in report.shard_runs.values())}))


if __name__ == "__main__":
    _child(sys.argv[1])
