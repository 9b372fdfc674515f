"""``--resume`` and ``--optim.*`` (issue 22 defect 8): the settings the restored optimizer state
overrides (learning rates, betas, weight decay) and the micro-batches per step are refused when
changed; the schedule's length and shape (max steps, warmup, floor, epochs) and clipping may change,
with a warning."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from p4d.errors import CheckpointError
from p4d.train.config import OptimConfig, resolve_config
from p4d.train.trainer import RESUME_BATCH_OPTIM, RESUME_MAY_CHANGE_OPTIM, RESUME_RESTORED_OPTIM, check_resumable


def _config(tmp_path, **optim):
    return resolve_config(overrides={"out": str(tmp_path / "run"), "model": {"preset": "tiny"}, "optim": optim,
                                     "data": {"conversations": "convs.jsonl", "cache": "cache.zarr"}})


def _meta(cfg) -> dict:
    return {"config": cfg.to_dict(), "world_size": 1}


def test_every_optim_setting_has_a_resume_rule():
    rules = [*RESUME_RESTORED_OPTIM, *RESUME_BATCH_OPTIM, *RESUME_MAY_CHANGE_OPTIM]
    assert sorted(rules) == sorted(f.name for f in dataclasses.fields(OptimConfig))   # each once, none left out


@pytest.mark.parametrize("change, flag", [({"lr_llm": 1e-5}, "--optim.lr-llm"),
                                          ({"betas": (0.9, 0.95)}, "--optim.betas"),
                                          ({"weight_decay": 0.1}, "--optim.weight-decay")])
def test_a_setting_the_optimizer_state_restores_is_refused(tmp_path, change, flag):
    meta = _meta(_config(tmp_path))
    with pytest.raises(CheckpointError, match=f"{flag}: the checkpoint was trained with .*optimizer state restores it"):
        check_resumable(_config(tmp_path, **change), meta)


def test_another_number_of_micro_batches_per_step_is_refused(tmp_path):
    meta = _meta(_config(tmp_path))
    with pytest.raises(CheckpointError, match="--optim.grad-accum: the checkpoint was trained with 1, this run asks "
                                              "for 2 .the samples per optimizer step would change"):
        check_resumable(_config(tmp_path, grad_accum=2), meta)


def test_a_longer_or_reshaped_schedule_resumes_with_a_warning(tmp_path, caplog):
    meta = _meta(_config(tmp_path, max_steps=100, warmup_steps=0))
    with caplog.at_level(logging.WARNING, logger="p4d.train.trainer"):
        check_resumable(_config(tmp_path, max_steps=300, warmup_steps=10, min_lr_ratio=0.1, grad_clip=0.5), meta)
    warned = " ".join(r.getMessage() for r in caplog.records)
    for flag in ("--optim.max-steps: the checkpoint's run used 100, this run 300", "--optim.warmup-steps",
                 "--optim.min-lr-ratio", "--optim.grad-clip"):
        assert flag in warned, warned
    caplog.clear()
    check_resumable(_config(tmp_path, max_steps=100, warmup_steps=0), meta)   # unchanged: silent
    assert not caplog.records
