"""Which benchmarks exist, which issue adds the missing ones, and running them by name."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable

from p4d.bench.harness import BenchResult
from p4d.errors import ConfigError

log = logging.getLogger(__name__)

SIZES = ("tiny", "small", "paper")

# name -> module with `run(size: str, **options) -> BenchResult`, or the issue that adds it.
BENCHMARKS: dict[str, str] = {
    "cache": "p4d.bench.cache",
    "loader": "p4d.bench.loader",
    "teacher": "p4d.bench.teacher",
    "precompute": "p4d.bench.precompute",
    "train": "p4d.bench.train",
    "gpu-precompute": "p4d.bench.gpu_precompute",
    "gpu-train": "p4d.bench.gpu_train",
    "cost": "p4d.bench.cost",
    "fidelity": "p4d.bench.fidelity",
    "distill": "p4d.bench.distill",
}


def _runner(name: str) -> Callable[[str], BenchResult] | None:
    target = BENCHMARKS[name]
    if not target.startswith("p4d."):
        return None
    return importlib.import_module(target).run


def run_benchmarks(name: str, size: str, **options) -> list[BenchResult]:
    """Run one benchmark by name, or every benchmark with ``name='all'``."""
    if size not in SIZES:
        raise ConfigError(f"--size {size!r}: choose one of {', '.join(SIZES)}")
    if name != "all" and name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}, all")
    names = list(BENCHMARKS) if name == "all" else [name]
    results = []
    for n in names:
        run = _runner(n)
        if run is None:
            results.append(BenchResult(name=n, size=size, shapes={}, status=f"not built yet: {BENCHMARKS[n]} adds it"))
            continue
        log.info("running bench %s --size %s", n, size)
        accepted = inspect.signature(run).parameters  # each option goes to the benchmarks that take it
        results.append(run(size, **{k: v for k, v in options.items() if k in accepted}))
    return results
