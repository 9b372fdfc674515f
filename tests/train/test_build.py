"""Factories: the warmup + cosine schedule (hand values), per-part learning rates, cache checks,
gradient accumulation."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch

from p4d.cache_schema import open_store
from p4d.errors import CacheSchemaError, ConfigError
from p4d.train.build import build_model, check_store
from p4d.train.optim import build_optimizer, build_scheduler, lr_factor
from p4d.train.trainer import main
from tests.train.conftest import small_config


def test_lr_factor_hand_values():
    # warmup 2 of 10 steps: 0, 1/2 (HF: the first step runs at lr 0), then cosine from 1 over 8 steps to 0
    got = [lr_factor(s, warmup=2, total=10) for s in range(11)]
    want = [0.0, 0.5] + [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)]
    assert got == pytest.approx(want)
    assert got[6] == pytest.approx(0.5) and got[10] == pytest.approx(0.0)
    assert lr_factor(10, warmup=0, total=10, floor=0.1) == pytest.approx(0.1)


def test_per_part_learning_rates_and_schedule(train_cache, conversations, tmp_path):
    cfg = small_config(train_cache, tmp_path, optim={"lr_projector": 3e-3, "lr_llm": 1e-4, "lr_d4dp": 5e-4,
                                                     "weight_decay": 0.1, "warmup_steps": 2, "max_steps": 10})
    model, _ = build_model(cfg, open_store(train_cache.store))
    opt = build_optimizer(model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"mm_projector", "mm_projector.no_decay", "llm", "llm.no_decay", "d4dp", "d4dp.no_decay"}
    assert groups["mm_projector"]["lr"] == 3e-3 and groups["llm.no_decay"]["lr"] == 1e-4 and groups["d4dp"]["lr"] == 5e-4
    assert groups["llm"]["weight_decay"] == 0.1 and groups["llm.no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim < 2 for p in groups["llm.no_decay"]["params"])
    counted = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert counted == sum(p.numel() for p in model.parameters() if p.requires_grad)
    sched = build_scheduler(opt, cfg)
    assert groups["llm"]["lr"] == 0.0                            # warmup step 1 of 2 (HF: lr 0)
    opt.step(), sched.step()
    assert groups["llm"]["lr"] == pytest.approx(0.5e-4)
    opt.step(), sched.step()
    assert groups["llm"]["lr"] == pytest.approx(1e-4)


def test_check_store_refuses_maps_the_loss_needs(train_cache, tmp_path):
    store = open_store(train_cache.store)
    depth_only = SimpleNamespace(url=store.url, attrs=store.attrs,
                                 spec=dataclasses.replace(store.spec, modalities=("depth",)))
    check_store(small_config(train_cache, tmp_path, recipe={"loss": "ld+d"}), depth_only)   # fine
    with pytest.raises(ConfigError, match=r"--loss ld\+d\+f: needs the flow map"):
        check_store(small_config(train_cache, tmp_path, recipe={"loss": "ld+d+f"}), depth_only)
    moved = SimpleNamespace(url=store.url, attrs=store.attrs,
                            spec=dataclasses.replace(store.spec, spatial={**store.spec.spatial, "resize": "crop"}))
    with pytest.raises(CacheSchemaError, match="spatial transform resize='crop'"):
        check_store(small_config(train_cache, tmp_path), moved)


def test_gradient_accumulation_equals_the_larger_batch(train_cache, conversations, tmp_path):
    grads = {}
    for name, batch, accum in (("accum", 1, 2), ("batch", 2, 1)):
        main(small_config(train_cache, tmp_path / name, optim={"max_steps": 1, "grad_accum": accum},
                          data={"batch_size": batch}, recipe={"loss": "ld-only"}, runtime={"dump_grads_at": 1}))
        grads[name] = safetensors.torch.load_file(str(tmp_path / name / "grads-step-1.safetensors"))
    assert set(grads["accum"]) == set(grads["batch"])
    for k in grads["batch"]:
        torch.testing.assert_close(grads["accum"][k], grads["batch"][k], rtol=1e-4, atol=1e-6, msg=k)


def test_d4dp_ceiling_line_on_the_tiny_cache(train_cache, conversations):
    """The line ``p4d train`` logs at start: the tiny student's 2×2 tokens per frame cannot hold the
    tiny teacher's latent grid (ceiling < 1); a student whose grid covers it (vision 3·14·h' px: 3·h'
    patches → h'×h' tokens, config only) reaches 1; a student without D_4DP gets no line."""
    from p4d.cache_schema import read_clips
    from p4d.train.build import d4dp_ceiling
    from p4d.train.data import build_samples
    from p4d.train.model.config import TINY
    from p4d.train.model.d4dp import grid_cosine_ceiling

    store = open_store(train_cache.store)
    samples, _ = build_samples(str(conversations), store)
    spec = store.spec
    tiny = TINY.replace(strategy="p4d", f4d_shape=spec.latent_shape)
    line = d4dp_ceiling(tiny, store, samples)
    n = samples[0].num_frames
    assert f"N×h×w = {n}×2×2" in line and f"{spec.latent_frames}×{spec.latent_height}×{spec.latent_width}" in line
    clips = sorted({s.clip for s in samples})[:4]
    f4d = torch.from_numpy(read_clips(store, clips, fields=("f4d",))["f4d"])
    ceiling = grid_cosine_ceiling(f4d, (n, 2, 2), tiny.d4dp_time)
    assert 0 < ceiling < 0.99 and f"{ceiling:.3f} at most" in line and "capacity limit" in line
    holds = tiny.replace(vision={**tiny.vision, "image_size": 14 * spec.latent_height * 3})
    assert holds.token_grid == (spec.latent_height, spec.latent_width)
    assert "1.000 at most" in d4dp_ceiling(holds, store, samples)
    assert d4dp_ceiling(TINY.replace(strategy="4d-sft"), store, samples) is None
