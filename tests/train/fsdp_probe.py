"""Run under torchrun by tests/train/test_fsdp.py (not a test itself): build the student of a
config as the trainer does (sharded under ``--runtime.parallel fsdp``, else whole) and write
``OUT/rank-R.json``: the trainable bytes this rank holds and in all, and the memory the build took
(peak resident set during the build minus the resident set before it, from /proc/self/status)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def warm_up() -> None:
    """Import and touch what the build uses (transformers model classes, FSDP, DCP) on a tiny
    student first, so that the measured growth is the weights, not the imports."""
    import torch.distributed.checkpoint.state_dict  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401

    from p4d.train.model import build_student

    build_student("tiny", training_modules=False)


def main(config_json: str, out: str) -> None:
    from p4d.cache_schema import open_store
    from p4d.train.build import build_model
    from p4d.train.config import resolve_config
    from p4d.train.distributed import close_distributed, init_distributed, world_size
    from p4d.train.build import build_sharded_model
    from p4d.train.sharding import local_parameter_bytes, resolve_parallel

    cfg = resolve_config(overrides=json.loads(config_json))
    cfg.runtime.parallel = resolve_parallel(cfg.runtime.parallel, cfg.recipe.tune, world_size())
    dist = init_distributed("cpu", None, group=cfg.runtime.parallel == "fsdp")
    store = open_store(cfg.data.cache)
    import torch.distributed

    warm_up()
    if dist.backend is not None:
        torch.distributed.barrier()
    rss0 = status_kb("VmRSS")
    peak_reset = reset_peak()
    if cfg.runtime.parallel == "fsdp":
        model, _ = build_sharded_model(cfg, store, dist)
    else:
        model, _ = build_model(cfg, store, device=dist.device)
    here, total = local_parameter_bytes(model)
    record = {"rank": dist.rank, "world": dist.world_size, "parallel": cfg.runtime.parallel, "here": here,
              "total": total, "rss_before_kb": rss0, "peak_kb": status_kb("VmHWM"), "peak_reset": peak_reset}
    Path(out, f"rank-{dist.rank}.json").write_text(json.dumps(record))
    close_distributed(dist)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
