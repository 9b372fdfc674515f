"""``p4d bench gpu-train``: the FSDP2 training step of a 2B-sized student on a lent GPU, in under
5 minutes.

``--device cuda`` (``bench/gpu_train_check.sh``): the ``nvila-lite-2b`` preset (SigLIP so400m 27
layers + Qwen2-1.5B 28 layers, all layers; random weights), recipe ``tune-p+llm`` (E_v frozen in
bf16), ``bf16-mixed`` (fp32 sharded masters, ``MixedPrecisionPolicy(bf16, fp32)``), FSDP2 in a
process group of one (:mod:`p4d.train.sharding`), one clip of 16 frames at 448 px per step, loss
SFT + LD (the cached F_4D target of the L4P taps; the D_m heads are not run: no cache here).
``--device cpu``: the same code with the tiny preset in fp32 and 4 frames, the dry run the test
suite runs so this check cannot rot.

The student is built on the meta device, sharded, then given random weights on the device (no
host copy). :func:`p4d.train.trainer.train_step` runs the steps (autocast, clipping, AdamW), first
with gradient checkpointing (the presets' default) and then without it, side by side. One table:
step time, peak memory and tokens/s, checkpointing on vs off; peak memory against the model
states the table in docs/train.md predicts (16 B per trainable parameter + 2 B per frozen bf16 one).
"""

from __future__ import annotations

import resource
import time

from p4d.bench.harness import BenchResult, Row, time_fn

#: device -> (student preset, precision, frames per clip, (taps, N', h', w', c') of F_4D)
PRESETS = {"cuda": ("nvila-lite-2b", "bf16-mixed", 16, (4, 8, 16, 16, 1408)),
           "cpu": ("tiny", "fp32", 4, (4, 2, 2, 2, 16))}
STEPS = 4


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device) -> float:
    """GPU: max allocated; CPU: the process's peak RSS (not resettable: an upper bound for both rows)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _random_init(model) -> None:
    """Weights of a trained scale, on the device, shard by shard: N(0, 0.02) matrices, unit norms, zero biases."""
    import torch
    from torch.distributed.tensor import DTensor

    g = torch.Generator(device=model.device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = p.to_local() if isinstance(p, DTensor) else p
            if p.ndim >= 2:
                t.normal_(0.0, 0.02, generator=g)
            elif "norm" in name and name.endswith("weight"):
                t.fill_(1.0)
            else:
                t.zero_()


def _batch(model, frames: int, f4d_shape) -> dict:
    import torch

    from p4d.train.model import encode_chat, pad_batch

    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    size = cfg.image_size
    times = [i * 0.5 for i in range(frames)]
    ids = encode_chat(model.tokenizer, cfg, [("Which object moves faster, and how far is it from the camera?",
                                             "The red car; about twelve metres.")], num_frames=frames, timestamps=times)
    padded = pad_batch([ids], pad_id=model.ids.pad)
    return {"frames": torch.randint(0, 256, (1, frames, size, size, 3), dtype=torch.uint8, generator=g),
            "timestamps": torch.tensor([times], dtype=torch.float32), **padded,
            "targets": {"f4d": torch.randn(1, *f4d_shape, generator=g)}, "f4d": None, "tpe": True}


def _steps(model, batch, optimizer, scheduler, cfg, dist, steps: int):
    from p4d.train.trainer import train_step

    losses = []

    def step():
        losses.append(train_step(model, [batch], optimizer=optimizer, scheduler=scheduler, cfg=cfg, dist=dist)["loss"])
        _sync(dist.device)

    _reset_peak(dist.device)
    timing = time_fn(step, warmup=1, repeats=steps)
    return timing, _peak_gib(dist.device), losses


def run(size: str, *, device: str = "auto", repeats: int = STEPS) -> BenchResult:
    import torch
    from torch.distributed.tensor import DTensor

    from p4d.train.optim import build_optimizer, build_scheduler
    from p4d.train.config import TrainConfig
    from p4d.train.distributed import close_distributed, init_distributed
    from p4d.train.meta_device import materialize, parameters_on_meta
    from p4d.train.model import apply_trainability, build_student, student_preset
    from p4d.train.precision import apply_precision
    from p4d.train.sharding import local_parameter_bytes, shard_student

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "none"
    if device not in PRESETS:
        return BenchResult(name="gpu-train", size=size, shapes={},
                           status="skipped: no CUDA device here; `p4d bench gpu-train --device cpu` runs the dry "
                                  "run (tiny student), bench/gpu_train_check.sh the GPU check")
    torch.set_flush_denormal(True)
    preset, precision, frames, f4d_shape = PRESETS[device]
    t0 = time.perf_counter()
    dist = init_distributed(device, group=True)           # FSDP2 needs a process group: one of one here
    try:
        cfg = TrainConfig()
        cfg.runtime.precision, cfg.runtime.parallel, cfg.recipe.tune = precision, "fsdp", "tune-p+llm"
        scfg = student_preset(preset).replace(strategy="p4d")
        torch.manual_seed(0)
        with parameters_on_meta():
            model = build_student(scfg, f4d_shape=f4d_shape)
        apply_trainability(model, cfg.recipe.tune)
        apply_precision(model, precision)
        shard_student(model, precision=precision, device=dist.device)
        materialize(model, dist.device)
        _random_init(model)
        model.place_attention(dist.device)
        build_s = time.perf_counter() - t0
        sharded = all(isinstance(p, DTensor) for p in model.parameters() if p.requires_grad)
        trainable, _ = local_parameter_bytes(model)
        frozen, _ = local_parameter_bytes(model, trainable=False)
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        predicted = (16 * n_trainable + frozen) / 2**30     # fp32 master + fp32 grad + AdamW m, v; frozen as held
        optimizer = build_optimizer(model, cfg)
        scheduler = build_scheduler(optimizer, cfg)
        batch = _batch(model, frames, f4d_shape)
        tokens = int(batch["input_ids"].numel())
        ckpt = model.cfg.gradient_checkpointing
        if not ckpt:
            model.gradient_checkpointing_enable()
        on, on_peak, on_losses = _steps(model, batch, optimizer, scheduler, cfg, dist, repeats)
        for part in (model.vision_tower, model.llm):   # transformers 5 renamed it; both names work there
            (getattr(part, "activation_checkpointing_disable", None) or part.gradient_checkpointing_disable)()
        off, off_peak, off_losses = _steps(model, batch, optimizer, scheduler, cfg, dist, repeats)
        finite = all(map(lambda x: x == x and abs(x) < float("inf"), on_losses + off_losses))
        gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none"
        result = BenchResult(
            name="gpu-train", size=size,
            shapes={"student": f"{preset} (random weights, all layers)", "device": device, "gpu": gpu,
                    "precision": precision, "parallel": "fsdp2 (world 1)", "tune": cfg.recipe.tune,
                    "clip": f"1 x {frames} frames @ {model.cfg.image_size}px", "tokens/step": tokens,
                    "trainable": f"{n_trainable / 1e6:.1f} M", "attn": model.llm.config._attn_implementation})
        checks = {"trainable parameters are DTensors": sharded, "losses finite": finite}
        result.rows += [
            Row("step time, gradient checkpointing on vs off", "s/step", on.median, off.median, spread=on.spread,
                extra={"off_spread": off.spread}, checks=checks),
            Row(f"peak {'GPU' if device == 'cuda' else 'process'} memory, checkpointing on vs off", "GiB",
                on_peak, off_peak),
            Row("peak memory (checkpointing on) vs the predicted model states", "GiB", on_peak, predicted,
                extra={"trainable_GiB_held": trainable / 2**30, "frozen_GiB_held": frozen / 2**30}),
            Row("tokens/s, checkpointing on vs off", "tokens/s", tokens / on.median, tokens / off.median),
        ]
        result.notes.append(f"whole check {time.perf_counter() - t0:.0f} s (build + shard + init {build_s:.0f} s); "
                            f"{repeats} timed steps after 1 warm-up per row; losses {on_losses[0]:.4g} -> "
                            f"{off_losses[-1]:.4g}")
        result.notes.append("not run: the frozen D_m heads on F̂_4D (no cache on this machine; ≈ 17.6 TFLOP per "
                            "clip at paper sizes, issue #14); the data loader (batches are device-resident)")
        if device == "cpu":
            result.notes.append("CPU dry run: peak memory is the peak RSS of the process (not resettable between rows)")
        return result
    finally:
        close_distributed(dist)
