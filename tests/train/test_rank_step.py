"""Ranks stay in step when a sample fails to load (issue 22, defect 3).

Two gloo processes run :class:`p4d.train.trainer.BatchStream` over one :class:`ShardBatchSampler`
each; one sample "vanished" (its load fails) and lands on rank 1 alone. Every rank must skip that
global batch together: equal sampler positions on both ranks after every micro-batch, the same
global batches drawn, and ``global_size`` the good samples of both ranks. The end-to-end run
(torchrun, a damaged cache clip, resume) is ``test_a_failed_sample_on_one_rank_resumes_like_an_
uninterrupted_run`` below."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from p4d.train.data import Sample
from p4d.train.loader import ShardBatchSampler

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _samples(n: int) -> list[Sample]:
    return [Sample(kind="video", record_id=f"r{i}", turns=(("q", "a"),), media=(f"v{i}.mp4",), clip=i, shard=i // 2,
                   num_frames=4) for i in range(n)]


def _loader(sampler: ShardBatchSampler, vanished: int):
    """What :class:`~p4d.train.loader.Collate` returns for each of this rank's batches: the
    vanished sample comes back as an error record, the others as good samples."""
    for keys in sampler:
        indices = [i for i, _ in keys]
        errors = [f"sample {i}: video vanished" for i in indices if i == vanished]
        yield {"errors": errors, "size": len(indices) - len(errors), "indices": [i for i in indices if i != vanished]}


def _first_batch_on_rank1(samples, seed: int = 0) -> tuple[int, int]:
    """(seed, the sample in rank 1's slot of epoch 0's first global batch at batch size 1)."""
    return seed, ShardBatchSampler(samples, batch_size=1, world_size=2, seed=seed).epoch_batches(0)[0][1]


def _rank(rank: int, world: int, port: int, out: str, vanished: int, seed: int, micro: int) -> None:
    from p4d.train.distributed import Dist
    from p4d.train.trainer import BatchStream

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        d = Dist(rank, world, 0, torch.device("cpu"), "gloo")
        sampler = ShardBatchSampler(_samples(10), batch_size=1, world_size=world, rank=rank, seed=seed, endless=True)
        stream = BatchStream(_loader(sampler, vanished), sampler, d)
        trace = []
        for _ in range(micro):
            batch = stream.next()
            trace.append({"position": stream.state_dict(), "indices": batch["indices"],
                          "global_size": batch["global_size"]})
        Path(out, f"rank-{rank}.json").write_text(json.dumps({"trace": trace, "dropped": stream.dropped,
                                                              "skipped": stream.skipped}))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sample_failing_on_one_rank_keeps_every_rank_in_step(tmp_path):
    samples = _samples(10)
    seed, vanished = _first_batch_on_rank1(samples)
    micro = 6
    mp.start_processes(_rank, args=(2, _free_port(), str(tmp_path), vanished, seed, micro), nprocs=2,
                       start_method="spawn")
    r0, r1 = (json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2))
    assert r1["dropped"] == 1 and r0["dropped"] == 0            # the sample failed on rank 1 only
    assert r0["skipped"] == r1["skipped"] == 1                  # ... and both ranks skipped its global batch
    reference = ShardBatchSampler(samples, batch_size=1, world_size=2, seed=seed)
    batches = [b for e in range(3) for b in reference.epoch_batches(e)]
    for k, (a, b) in enumerate(zip(r0["trace"], r1["trace"])):
        assert a["position"] == b["position"], k                # equal positions after every micro-batch
        g = batches[k + 1]                                      # global batch 0 was skipped by both
        assert a["indices"] == [g[0]] and b["indices"] == [g[1]], k
        assert a["global_size"] == b["global_size"] == 2, k
    assert r0["trace"][-1]["position"]["batch"] + r0["trace"][-1]["position"]["epoch"] * len(
        reference.epoch_batches(0)) == micro + 1


# ---- end to end: torchrun, a damaged cache clip on one rank, resume ---------------------------------

def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "p4d.train",
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_a_failed_sample_on_one_rank_resumes_like_an_uninterrupted_run(train_cache, conversations, tmp_path):
    """DDP, 2 ranks × batch 1: clip 5 (v4.mp4) is damaged (one byte of its depth chunk flipped, so
    its load fails) and the seed puts it on rank 1 in the first global batch. Run 4 steps with a
    checkpoint each; resume a copy from step 2. Steps 3-4 must log the same losses as the
    uninterrupted run (before the fix rank 1 ran one batch ahead, rank 0's position was saved for
    both, and the resumed rank 1 trained other samples)."""
    from p4d.cache_schema import open_store
    from p4d.train import checkpoint as ckpt
    from p4d.train.data import build_samples
    from p4d.train.logs import read_log

    store = tmp_path / "cache.zarr"
    shutil.copytree(train_cache.store, store)
    depth = store / "maps" / "depth" / "c" / "2" / "0" / "0" / "0" / "0"   # shard 2 = clips 4, 5
    data = bytearray(depth.read_bytes())
    data[len(data) - 200] ^= 0x01                                         # inside clip 5's chunk
    depth.write_bytes(bytes(data))
    samples, _ = build_samples(conversations, open_store(str(store)))
    victim = next(k for k, s in enumerate(samples) if s.clip == 5)
    seed = next(s for s in range(200) if ShardBatchSampler(samples, batch_size=1, world_size=2, seed=s)
                .epoch_batches(0)[0][1] == victim)

    flags = ["--student", "tiny", "--data", str(conversations), "--cache", str(store), "--batch-size", "1",
             "--runtime.parallel", "ddp", "--recipe.loss", "ld+d", "--seed", str(seed), "--log.progress", "false",
             "--log.tensorboard", "false", "--checkpoint.export", "false", "--checkpoint.every", "1",
             "--optim.lr-llm", "2e-3", "--optim.lr-projector", "2e-3", "--optim.lr-d4dp", "2e-3",
             "--optim.warmup-steps", "1"]
    run = tmp_path / "run"
    _torchrun(["--out", str(run), "--steps", "4", *flags])
    full = read_log(run)
    assert [r["step"] for r in full] == [1, 2, 3, 4]
    assert full[0]["dropped"] == 1 and full[0]["skipped_batches"] == 1   # the failed sample, seen on rank 1
    assert [r["samples"] for r in full] == [2, 4, 6, 8]                  # good samples over both ranks

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    for later in ckpt.list_checkpoints(copy)[2:]:
        shutil.rmtree(later)
    _torchrun(["--resume", str(copy)])
    resumed = read_log(copy)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(resumed[2:], full[2:]):
        for term in ("loss", "sft", "ld", "depth"):
            assert a[term] == pytest.approx(b[term], rel=1e-5), (a["step"], term)
        assert a["samples"] == b["samples"]
