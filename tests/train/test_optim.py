"""AdamW and its schedule (issue 22, item 8): the schedule equals transformers'
``get_cosine_schedule_with_warmup`` (the release's HF Trainer) step for step, and the fused AdamW
kernel is chosen exactly when every parameter is a CUDA floating tensor."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from p4d.train.config import resolve_config
from p4d.train.optim import adamw_options, build_scheduler, warmup_steps

REQUIRED = {"data": {"conversations": "c.jsonl", "cache": "s.zarr"}, "out": "run", "model": {"preset": "tiny"}}


def _lrs(scheduler_of, steps: int) -> list[float]:
    """The lr each of ``steps`` optimizer steps runs at."""
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1e-5)
    sched = scheduler_of(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize(("optim", "hf_warmup"), [
    ({"max_steps": 10, "warmup_steps": 2}, 2),
    ({"max_steps": 100, "warmup_ratio": 0.03}, 3),          # the release: ceil(0.03 × steps), as the HF Trainer
    ({"max_steps": 7, "warmup_steps": 0, "warmup_ratio": 0.0}, 0),
    ({"max_steps": 333, "warmup_ratio": 0.03}, 10),
])
def test_schedule_equals_transformers_cosine_with_warmup(optim, hf_warmup):
    from transformers import get_cosine_schedule_with_warmup

    cfg = resolve_config(overrides={**REQUIRED, "optim": {**optim, "lr_llm": 1e-5}})
    assert warmup_steps(cfg) == hf_warmup
    total = cfg.optim.max_steps
    ours = _lrs(lambda opt: build_scheduler(opt, cfg), total)
    theirs = _lrs(lambda opt: get_cosine_schedule_with_warmup(opt, hf_warmup, total), total)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-20)
    if hf_warmup:
        assert ours[0] == 0.0 and ours[hf_warmup] == pytest.approx(1e-5)


def test_schedule_floor_equals_transformers_min_lr_rate():
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    cfg = resolve_config(overrides={**REQUIRED, "optim": {"max_steps": 20, "warmup_steps": 3, "min_lr_ratio": 0.1}})
    ours = _lrs(lambda opt: build_scheduler(opt, cfg), 20)
    theirs = _lrs(lambda opt: get_cosine_with_min_lr_schedule_with_warmup(opt, 3, 20, min_lr_rate=0.1), 20)
    assert ours == pytest.approx(theirs, rel=1e-12)


def _param(device: str, dtype=torch.float32):
    return SimpleNamespace(device=torch.device(device), is_floating_point=lambda: dtype.is_floating_point)


def test_fused_adamw_exactly_when_every_parameter_is_a_cuda_float():
    assert adamw_options([_param("cuda"), _param("cuda", torch.bfloat16)]) == {"fused": True}
    assert adamw_options([_param("cuda"), _param("cpu")]) == {}
    assert adamw_options([_param("cuda", torch.int64)]) == {}
    assert adamw_options([_param("cpu")]) == {} and adamw_options([]) == {}
    # on the CPU the optimizer is torch's default (neither fused nor foreach asked for)
    from p4d.train.optim import build_optimizer

    model = torch.nn.Module()
    model.llm = torch.nn.Linear(2, 2)
    cfg = resolve_config(overrides=REQUIRED)
    opt = build_optimizer(model, cfg)
    assert all(not g["fused"] and not g["foreach"] for g in opt.param_groups)
