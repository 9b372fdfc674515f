"""The checkpoint interface on a small stand-in student (two linear layers): every rank raises the
same error when one rank's files are bad, instead of one rank raising and the others waiting in a
collective (issue 22 defect 8); torn folders, wrong shapes and index-keyed optimizer files."""

from __future__ import annotations

import datetime
import json
import queue
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from p4d.errors import CheckpointError
from p4d.train import checkpoint as ckpt

#: A rank that has not answered by then is stuck in a collective (a healthy load takes ~1 s; the
#: process group gives up on a collective after RANK_TIMEOUT, so a stuck rank ends with another error).
TEST_TIMEOUT_S = 90
RANK_TIMEOUT_S = 30


def _student(width: int = 8) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, width), nn.Linear(width, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    return model, optimizer, scheduler


def _trained_checkpoint(out: Path) -> Path:
    """One AdamW step of the stand-in, saved whole at step 1 (one process, no process group)."""
    model, optimizer, scheduler = _student()
    model(torch.ones(2, 4)).square().sum().backward()
    optimizer.step()
    scheduler.step()
    return ckpt.Checkpointer(model, optimizer, scheduler).save(
        out, step=1, sampler_state={"epoch": 0, "batch": 1}, train_state={"step": 1, "samples": 2, "epoch": 0},
        meta={"config": {}})


def _rank(rank: int, world: int, port: int, folders: list[str], shard: bool, answers) -> None:
    """One rank (a spawned process): join the gloo group, build the stand-in (FSDP2-sharded when
    ``shard``), load ``folders[rank]`` and report (rank, outcome, message)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=RANK_TIMEOUT_S))
    try:
        model, optimizer, scheduler = _student()
        if shard:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            fully_shard(model, mesh=init_device_mesh("cpu", (world,)))
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
        ckpt.Checkpointer(model, optimizer, scheduler).load(folders[rank])
        answers.put((rank, "loaded", ""))
    except BaseException as exc:  # noqa: BLE001 - reported to the test, whatever it is
        answers.put((rank, type(exc).__name__, str(exc)))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("shard", [True, False], ids=["sharded-student-rank0-reads", "whole-student-every-rank-reads"])
def test_a_bad_file_on_rank_0_raises_the_same_error_on_every_rank(tmp_path, shard):
    """Rank 0 sees a cut ``model.safetensors``, rank 1 the intact file (or, sharded, reads none):
    both ranks raise the same CheckpointError naming the file, none waits in a broadcast."""
    import torch.multiprocessing as mp

    good = _trained_checkpoint(tmp_path / "run")
    bad = tmp_path / "copy" / good.name
    shutil.copytree(good, bad)
    weights = bad / ckpt.MODEL
    weights.write_bytes(weights.read_bytes()[:100])
    folders = [str(bad), str(bad if shard else good)]

    ctx = mp.get_context("spawn")
    answers = ctx.Queue()
    port = _free_port()
    ranks = [ctx.Process(target=_rank, args=(r, 2, port, folders, shard, answers)) for r in range(2)]
    for p in ranks:
        p.start()
    got = {}
    try:
        for _ in ranks:
            rank, outcome, message = answers.get(timeout=TEST_TIMEOUT_S)
            got[rank] = (outcome, message)
    except queue.Empty:
        pass
    finally:
        for p in ranks:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    assert set(got) == {0, 1}, f"ranks without an answer after {TEST_TIMEOUT_S} s (stuck): {sorted({0, 1} - set(got))}"
    assert got[0][0] == got[1][0] == "CheckpointError", got
    assert got[0][1] == got[1][1], got
    assert got[0][1].startswith(f"{weights}: not a readable safetensors file") and "(rank 0 of 2)" in got[0][1], got


def test_the_stand_in_round_trips_model_optimizer_schedule_and_position(tmp_path):
    folder = _trained_checkpoint(tmp_path / "run")
    model, optimizer, scheduler = _student()
    state = ckpt.Checkpointer(model, optimizer, scheduler).load(folder)
    assert state == {"data": {"epoch": 0, "batch": 1}, "train": {"step": 1, "samples": 2, "epoch": 0}}
    assert scheduler.last_epoch == 1 and optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 2)
    # the weights and moments are the trained ones: one AdamW step moved every entry by ~lr from the seeded init
    fresh, _, _ = _student()
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        assert 0.5e-2 < float((p - q).detach().abs().max()) <= 1.01e-2 * (1 + 1e-2), name
        assert float(optimizer.state[p]["exp_avg"].abs().sum()) > 0 and int(optimizer.state[p]["step"]) == 1
    saved = torch.load(folder / ckpt.OPTIMIZER, weights_only=True)
    assert sorted(saved["state"]) == ["0.bias", "0.weight", "1.bias", "1.weight"]   # keyed by name


def test_an_index_keyed_optimizer_file_of_earlier_p4d_still_loads(tmp_path):
    folder = _trained_checkpoint(tmp_path / "run")
    model, optimizer, scheduler = _student()
    ckpt.Checkpointer(model, optimizer, scheduler).load(folder)
    torch.save(optimizer.state_dict(), folder / ckpt.OPTIMIZER)          # torch's own layout: keyed 0, 1, 2, 3
    again, again_opt, again_sched = _student()
    ckpt.Checkpointer(again, again_opt, again_sched).load(folder)
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(optimizer.state[p]["exp_avg_sq"], again_opt.state[q]["exp_avg_sq"])


def test_a_torn_folder_and_another_shape_are_refused_before_loading(tmp_path):
    torn = _trained_checkpoint(tmp_path / "torn")
    (torn / ckpt.LR_SCHEDULER).unlink()
    with pytest.raises(CheckpointError, match=r"a torn checkpoint; scheduler.json listed in meta.json are missing"):
        ckpt.Checkpointer(*_student()).load(torn)
    folder = _trained_checkpoint(tmp_path / "run")
    model, _, _ = _student(width=6)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match=r"model.safetensors: 0.weight has shape \(8, 4\), the student expects "
                                              r"\(6, 4\)"):
        ckpt.Checkpointer(model, lora=False).load(folder)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # nothing half-loaded
    assert "scheduler.json" in json.loads((folder / ckpt.META).read_text())["parts"]


def test_a_resumed_optimizer_keeps_the_checkpoints_learning_rate(tmp_path):
    """Why ``check_resumable`` refuses another ``--optim.lr-*`` (tests/train/test_resume_optim.py):
    the restored param groups and scheduler carry the saved lr, whatever the new optimizer was built with."""
    folder = _trained_checkpoint(tmp_path / "run")                     # lr 1e-2, one step of 1/(1+s)
    model, _, _ = _student()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.5)           # a "new" --optim.lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    ckpt.Checkpointer(model, optimizer, scheduler).load(folder)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 2) and scheduler.base_lrs == [pytest.approx(1e-2)]
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 3)
