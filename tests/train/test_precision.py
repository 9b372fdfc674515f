"""The precision policy: fp32 master weights keep small AdamW updates that bf16 weights lose.

The figure of issue #14: 10 AdamW steps at lr 2e-5 on weights of scale ~0.02 (the student's LLM
at its init) under ``bf16-mixed`` change >= 99 % of entries and follow a float64 AdamW written out
here; the old pure-bf16 path leaves most entries bit-identical.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from p4d.cache_schema import open_store
from p4d.train.build import build_model
from p4d.train.optim import build_optimizer
from p4d.train.trainer import main
from tests.train.conftest import small_config

LR, STEPS, BETAS, EPS = 2e-5, 10, (0.9, 0.999), 1e-8


def reference_adamw(w0: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    """AdamW (no weight decay) in float64, written out from the paper's update rule."""
    w = w0.double().clone()
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        m_hat = m / (1 - BETAS[0] ** t)
        v_hat = v / (1 - BETAS[1] ** t)
        w = w - LR * m_hat / (v_hat.sqrt() + EPS)
    return w


def _ten_steps(train_cache, tmp_path, precision: str):
    """The LLM's 2-D weights before and after 10 AdamW steps with seeded random gradients, and
    the float64 reference from the same start."""
    cfg = small_config(train_cache, tmp_path, model={"dtype": "bfloat16"}, runtime={"precision": precision},
                       optim={"lr_llm": LR, "lr_projector": LR, "lr_d4dp": LR, "weight_decay": 0.0})
    model, _ = build_model(cfg, open_store(cfg.data.cache))
    optimizer = build_optimizer(model, cfg)
    params = {n: p for n, p in model.named_parameters() if n.startswith("llm.") and p.requires_grad and p.dim() == 2}
    before = {n: p.detach().clone() for n, p in params.items()}
    gen = torch.Generator().manual_seed(0)
    grads = {n: [torch.randn(p.shape, generator=gen) * 1e-3 for _ in range(STEPS)] for n, p in params.items()}
    for step in range(STEPS):
        for p in model.parameters():
            p.grad = None
        for n, p in params.items():
            p.grad = grads[n][step].to(p.dtype)
        optimizer.step()
    after = {n: p.detach().clone() for n, p in params.items()}
    reference = {n: reference_adamw(before[n], grads[n]) for n in params}
    return before, after, reference


def _changed(before, after) -> float:
    total = sum(b.numel() for b in before.values())
    return sum(int((before[n] != after[n]).sum()) for n in before) / total


def test_bf16_mixed_keeps_small_updates_and_matches_a_float64_adamw(train_cache, tmp_path):
    before, after, reference = _ten_steps(train_cache, tmp_path, "bf16-mixed")
    assert all(p.dtype == torch.float32 for p in after.values())          # the master weights
    scale = math.sqrt(sum(float((b.double() ** 2).sum()) for b in before.values()) /
                      sum(b.numel() for b in before.values()))
    assert 0.01 < scale < 0.04, scale                                      # weights of scale ~0.02
    changed = _changed(before, after)
    print(f"bf16-mixed: {changed:.4%} of {sum(b.numel() for b in before.values())} LLM entries changed")
    assert changed >= 0.99
    for n in after:
        # the 10 steps move a weight by ~6e-5; each fp32 step rounds by at most half an ulp of the
        # weight (|w| < 0.125: 3.7e-9), so 10 steps stay within 4e-8 of the float64 path
        assert float((before[n] - reference[n]).abs().max()) > 1e-5
        torch.testing.assert_close(after[n].double(), reference[n], rtol=0, atol=4e-8, msg=n)


def test_pure_bf16_loses_most_updates(train_cache, tmp_path):
    before, after, reference = _ten_steps(train_cache, tmp_path, "bf16-pure")
    assert all(p.dtype == torch.bfloat16 for p in after.values())
    unchanged = 1 - _changed(before, after)
    moved = sum(float((reference[n] - before[n].double()).abs().mean()) for n in before) / len(before)
    print(f"bf16-pure: {unchanged:.1%} of LLM entries bit-identical after {STEPS} steps "
          f"(the float64 AdamW moved them by {moved:.2e} on average)")
    assert unchanged > 0.5        # issue #14 measured 71 %: the update is below half a bf16 ulp of 0.02
    worst = max(float((after[n].double() - reference[n]).abs().max()) for n in after)
    assert worst > 1e-5           # far off the float64 AdamW (bf16-mixed stays within 4e-8)


def test_bf16_mixed_step_trains_fp32_masters_beside_frozen_bf16_modules(train_cache, conversations, tmp_path):
    cfg = small_config(train_cache, tmp_path / "run", model={"dtype": "bfloat16"},
                       runtime={"precision": "bf16-mixed"}, optim={"max_steps": 1})
    result = main(cfg)
    assert math.isfinite(result.last["loss"])
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["runtime"]["precision"] == "bf16-mixed"
    model, _ = build_model(cfg, open_store(cfg.data.cache))
    dtypes = {(p.requires_grad, p.dtype) for n, p in model.named_parameters() if not n.startswith("heads.")}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}   # E_v frozen in bf16 (tune-p+llm)


@pytest.mark.parametrize("device,want", [("cpu", "fp32")])
def test_auto_resolves_and_is_recorded(train_cache, conversations, tmp_path, device, want):
    cfg = small_config(train_cache, tmp_path / "run", optim={"max_steps": 1}, runtime={"device": device})
    main(cfg)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["runtime"]["precision"] == want
