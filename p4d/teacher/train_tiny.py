"""Train the ``tiny`` teacher on synthetic scenes against their analytic 4D truth; regenerates
the weights of ``p4d/teacher/weights/tiny.safetensors`` bit for bit.

    PYTHONPATH=. nice python -m p4d.teacher.train_tiny [--steps 210] [--out p4d/teacher/weights/tiny.safetensors]

What it learns: clips of 16 frames (random start, stride 1-5) from fresh synthetic scenes
(:func:`p4d.video.synthetic.synthetic_clip`, 160×120, scene seeds 100000 + step, i.e. never the demo's
or the tests' seeds 0-20), squashed to 112×112 (torch bilinear, antialiased) like the cache's teacher
input, against the scenes' analytic maps resized the same way (flow rescaled to 112×112 pixels):
log-depth L1, backward-flow L1 / 4 px (frame 0 left out), motion BCE on the logits (moving pixels
weighted 3), camray L1 on the
8×8 per-patch Plücker rays relative to frame 0. Each step trains the camray head and one of the
three full-resolution heads in turn (depth, flow, motion: they cost ~95 % of a step). Batch 1, AdamW (lr 1.5e-3, weight decay 1e-4,
30 warm-up steps, cosine to 0), gradients clipped at 1. Start from the seeded random init
(``build_teacher("tiny-random", seed=0)``); the weights are stored in float16 (3.8 MB).

Determinism: one CPU thread, ``torch.use_deterministic_algorithms(True)``, every random draw from
seeded generators; the same torch build gives the same tensors, bit for bit (tested across two processes).
The file's bytes can differ: safetensors writes its metadata keys in no fixed order, so compare tensors, not sha256.

Measured on the run that wrote the shipped file (torch 2.13.0 CPU, one thread, nice, on a 2-core
machine shared with ~8 jobs): 210 steps, 318 CPU-s (22 min wall at that load), file sha256
3cd7a1790c1d6ad7ad437a39e7f16784c5610ecdd0b7507ffc725ce481493647 (see above: the tensors are what repeats). Losses, mean of the first / last 30
steps: depth 2.17 / 0.40, flow 0.79 / 0.52, motion 0.89 / 0.67, camray 0.216 / 0.075.
On 6 held-out scenes (seeds 0-5, strides 2-4) against their truth: log-depth r 0.74, motion r 0.37 and
IoU 0.24 (σ > 0.5), camray r 0.96, flow EPE 4.01 px = predicting no flow. That is mostly the layout all
scenes share: < 0.1 % of the depth maps' variance and 5 % of the motion maps' is specific to one video
(random init: 11 % / 2 %, meaningless). More steps (``--steps``) are the lever; 5 CPU-minutes was the budget.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).parent / "weights" / "tiny.safetensors"
SCENE_SEED0 = 100_000
SOURCE_SIZE = (160, 120)  # (W, H) of the rendered scenes, the demo videos' size
FLOW_SCALE = 4.0  # px: flow L1 is divided by this
MOTION_POS_WEIGHT = 3.0  # moving pixels are ~1/5 of a frame: BCE weighs them up
STEPS = 210


def training_clip(step: int, preset) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(x (1, 3, N, S, S) normalised teacher input, targets) of training step ``step``."""
    from p4d.video.synthetic import synthetic_clip

    rng = np.random.default_rng(SCENE_SEED0 + step)
    n, s = preset.num_frames, preset.img_size
    stride = int(rng.integers(1, 6))
    start = int(rng.integers(0, 120))
    clip = synthetic_clip(range(start, start + n * stride, stride), size=SOURCE_SIZE, seed=SCENE_SEED0 + step,
                          ray_grid=preset.ray_grid)
    w, h = SOURCE_SIZE

    def squash(a: np.ndarray) -> torch.Tensor:  # (N, H, W, C) -> (N, C, S, S)
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(0, 3, 1, 2)
        return F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False, antialias=True)

    x = squash(clip["frames"]) / 255.0
    mean = torch.tensor(preset.mean).view(1, 3, 1, 1)
    std = torch.tensor(preset.std).view(1, 3, 1, 1)
    x = ((x - mean) / std).permute(1, 0, 2, 3)[None]  # (1, 3, N, S, S)
    flow = squash(clip["flow"]) * torch.tensor([s / w, s / h]).view(1, 2, 1, 1)
    targets = {
        "log_depth": squash(np.log(clip["depth"])).permute(0, 2, 3, 1)[None],  # (1, N, S, S, 1)
        "flow": flow.permute(0, 2, 3, 1)[None],  # (1, N, S, S, 2)
        "motion": squash(clip["motion"]).permute(0, 2, 3, 1)[None],
        "camray": torch.from_numpy(clip["camray"])[None],  # (1, N, h_p, w_p, 6)
    }
    return x, targets


DENSE = ("depth", "flow", "motion")


def losses(model, x: torch.Tensor, targets: dict[str, torch.Tensor],
           modalities: tuple[str, ...] = ("depth", "flow", "motion", "camray")) -> dict[str, torch.Tensor]:
    """Per-modality losses of one clip (see the module docstring), for the heads in ``modalities``."""
    taps = model.encoder.forward_intermediates(x, model.preset.taps)
    out = model.heads(taps, modalities=modalities, raw=True)
    terms = {
        "depth": lambda: (out["depth"] - targets["log_depth"]).abs().mean(),
        "flow": lambda: (out["flow"][:, 1:] - targets["flow"][:, 1:]).abs().mean() / FLOW_SCALE,
        "motion": lambda: F.binary_cross_entropy_with_logits(out["motion"], targets["motion"],
                                                             pos_weight=torch.tensor(MOTION_POS_WEIGHT)),
        "camray": lambda: (out["camray"] - targets["camray"]).abs().mean(),
    }
    return {m: terms[m]() for m in modalities}


def train(steps: int, out: Path, *, lr: float = 1.5e-3, warmup: int = 30, log_every: int = 15) -> dict:
    """Train and write ``out``; returns {"sha256", "cpu_s", "wall_s", "final": {loss: mean of the last 20 steps}}.
    Runs with one CPU thread and deterministic algorithms, then restores the caller's settings."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(steps, out, lr=lr, warmup=warmup, log_every=log_every)
    finally:  # a caller's process (a test, a notebook) keeps its own settings
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(steps: int, out: Path, *, lr: float, warmup: int, log_every: int) -> dict:
    from p4d.teacher.checkpoint import export_safetensors
    from p4d.teacher.model import build_teacher

    torch.manual_seed(0)
    model = build_teacher("tiny-random", seed=0)
    model.requires_grad_(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    history: list[dict[str, float]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for step in range(steps):
        x, targets = training_clip(step, model.preset)
        parts = losses(model, x, targets, (DENSE[step % len(DENSE)], "camray"))
        total = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        history.append({k: float(v.detach()) for k, v in parts.items()})
        if step % log_every == 0 or step == steps - 1:
            recent = _means(history[-log_every:])
            log.warning("step %d/%d  %s  (%.0f CPU-s)", step + 1, steps,
                        "  ".join(f"{k} {v:.4f}" for k, v in recent.items()), time.process_time() - cpu0)
    model.eval()
    model.requires_grad_(False)
    export_safetensors(model.half(), out)
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    first, final = _means(history[:30]), _means(history[-30:])
    return {"sha256": digest, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
            "first": first, "final": final, "bytes": Path(out).stat().st_size}


def _means(history: list[dict[str, float]]) -> dict[str, float]:
    """Per-loss mean over the steps in ``history`` that have that loss."""
    names = sorted({k for h in history for k in h})
    return {k: round(float(np.mean([h[k] for h in history if k in h])), 4) for k in names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps (clips), default {STEPS}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"weights file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    result = train(args.steps, args.out)
    print(result)


if __name__ == "__main__":
    main()
