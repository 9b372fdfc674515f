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
