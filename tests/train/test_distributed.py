"""DDP: 2 CPU processes (torchrun, gloo) of batch 1 give the step-1 gradient of 1 process of batch 2."""

import os
import subprocess
import sys

import safetensors.torch
import torch

from p4d.train.trainer import main
from tests.train.conftest import small_config

#: Float32 sums in another order (per-rank means averaged by all-reduce vs one batch mean).
RTOL, ATOL = 1e-4, 1e-6


def test_two_gloo_processes_match_one_process_with_the_doubled_batch(train_cache, conversations, tmp_path):
    common = ["--data", str(conversations), "--cache", train_cache.store, "--student", "tiny", "--steps", "1",
              "--runtime.dump-grads-at", "1", "--checkpoint.export", "false", "--log.progress", "false",
              "--log.tensorboard", "false", "--recipe.loss", "ld+d"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "p4d.train", "--out", str(tmp_path / "ddp"), "--batch-size", "1", "--runtime.parallel", "ddp", *common]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    single = small_config(train_cache, tmp_path / "one", optim={"max_steps": 1}, data={"batch_size": 2},
                          recipe={"loss": "ld+d"}, runtime={"dump_grads_at": 1})
    main(single)

    ddp = safetensors.torch.load_file(str(tmp_path / "ddp" / "grads-step-1.safetensors"))
    one = safetensors.torch.load_file(str(tmp_path / "one" / "grads-step-1.safetensors"))
    assert set(ddp) == set(one) and len(one) > 10
    assert any(k.startswith("d4dp.") for k in one) and any(k.startswith("llm.") for k in one)
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=RTOL, atol=ATOL, msg=name)
    # the gradient is not trivially zero
    assert sum(float(g.abs().sum()) for g in one.values()) > 0
    # both ranks wrote their RNG state into the one checkpoint folder
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints" / "step-000001").glob("rng-*")) == [
        "rng-rank00000.safetensors", "rng-rank00001.safetensors"]


# ---- --runtime.dist-timeout and rank 0's progress lines (issue 22, defect 2) -----------------------

def test_dist_timeout_reaches_the_process_group(monkeypatch):
    """The gloo group of one that ``init_distributed`` starts reads back the timeout it was given."""
    from datetime import timedelta

    from p4d.train.distributed import close_distributed, group_timeout, init_distributed

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    d = init_distributed("cpu", group=True, timeout_min=77)
    try:
        assert d.backend == "gloo"
        assert group_timeout("cpu") == timedelta(minutes=77)
    finally:
        close_distributed(d)


def test_dist_timeout_defaults_to_an_hour_and_is_validated():
    import pytest

    from p4d.errors import ConfigError
    from p4d.train.config import resolve_config

    required = {"data": {"conversations": "c.jsonl", "cache": "s.zarr"}, "out": "run", "model": {"preset": "tiny"}}
    assert resolve_config(overrides=required).runtime.dist_timeout >= 60
    assert resolve_config(overrides={**required, "runtime": {"dist_timeout": "90"}}).runtime.dist_timeout == 90
    for bad in (0, -5, float("nan"), "soon"):
        with pytest.raises(ConfigError, match=r"--runtime\.dist-timeout"):
            resolve_config(overrides={**required, "runtime": {"dist_timeout": bad}})


def test_heartbeat_logs_progress_until_the_block_ends(caplog):
    """Rank 0's progress lines while the others wait: repeated while the block runs (the block
    waits for two of them, not for a time), then one closing line; nothing when disabled."""
    import logging
    import threading

    from p4d.train.distributed import heartbeat

    seen = threading.Event()

    class Two(logging.Handler):
        def emit(self, record):
            if sum("so far" in r.getMessage() for r in caplog.records) >= 2:
                seen.set()

    handler = Two()
    logger = logging.getLogger("p4d.train.distributed")
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="p4d.train.distributed"):
            with heartbeat("rank 0: building", every_s=0.01, timeout_min=60):
                assert seen.wait(30), "no progress line"
            lines = [r.getMessage() for r in caplog.records]
            caplog.clear()
            with heartbeat("rank 1: building", every_s=0.01, enabled=False):
                pass
            assert caplog.records == []
    finally:
        logger.removeHandler(handler)
    assert lines[0] == "rank 0: building; the other ranks wait up to --runtime.dist-timeout 60 min"
    beats = [m for m in lines if "so far" in m]
    assert len(beats) >= 2 and all(m.startswith("rank 0: building: ") for m in beats)
    assert lines[-1].startswith("rank 0: building: done in ")
