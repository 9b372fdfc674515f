"""Train the ``tiny`` teacher on synthetic scenes against their analytic 4D truth; regenerates
``p4d/teacher/weights/tiny.safetensors`` bit for bit (the file's bytes, not only its tensors).

    PYTHONPATH=. nice python -m p4d.teacher.train_tiny [--flow-steps 3000] [--steps 500] [--out WEIGHTS]
    PYTHONPATH=. nice python -m p4d.teacher.train_tiny --score WEIGHTS   # held-out scores only

What it learns: clips of 16 frames (random start 0-119, stride 1-5) from fresh synthetic scenes
(:func:`p4d.video.synthetic.synthetic_clip`, 160×120, scene seeds 100000 + step, i.e. never the demo's
or the tests' seeds 0-20), squashed to 112×112 (torch bilinear, antialiased) like the cache's teacher
input, against the scenes' analytic maps resized the same way (flow rescaled to 112×112 pixels). The
scenes differ by video where a teacher can see it: horizon row (sky over a ground plane), ground
distance, object distance = size constant / apparent radius, object paths, camera pan.

Two phases, from the seeded random init (``build_teacher("tiny-random", seed=0)``; the token-flow readout
``Linear(4·64, 16)`` is drawn next, from ``torch.manual_seed(0)``):

1. ``--flow-steps`` (3000) cheap encoder steps (no DPT head: ~0.07 CPU-s a step): the encoder and a
   linear readout of its four concatenated taps learn token-level backward flow
   (:func:`token_flow_loss`: per token, the mean flow of each 7×7-pixel quarter of its 14×14 patch in
   both frames of its tubelet; L1 / 2 px, frame 0 left out), on clips of stride 1-2 (scene seeds
   100000 + step), AdamW lr 1.5e-3, 20 linear warm-up steps then constant, gradients clipped at 1.
   Without it the encoder learns no motion features within phase 2 and the flow head collapses
   (below).
2. ``--steps`` (500) steps of all heads. Losses, each scaled to about its target's spread: log-depth
   L1 / 0.5, backward-flow L1 / 2 px (frame 0 left out), motion BCE on the logits (moving pixels weighted
   3), camray L1 on the 8×8 per-patch Plücker rays relative to frame 0, plus phase 1's token-flow L1
   (the readout keeps training). Each step trains the camray head and one of the three full-resolution
   heads in turn (depth, flow, motion: they cost ~95 % of a step). Batch 1, AdamW (lr 1.5e-3, weight
   decay 1e-4, 40 warm-up steps, cosine to 0.05×), gradients clipped at 1.

The weights are stored in float16 (3.8 MB; the readout is not stored) with metadata naming the preset
(``tiny``), the init, both phases' recipe and the data (:func:`recipe`).

Determinism: one CPU thread, ``torch.use_deterministic_algorithms(True)``, every random draw from
seeded generators, and a canonical safetensors header (sorted keys): the same torch build writes the
same file, byte for byte (tested across two processes).

Measured on the run that wrote the shipped file (torch 2.13.0 CPU, one thread, nice, on a 2-core
machine shared with ~7 jobs): 3000 + 500 steps, 900 CPU-s (phase 1: 201; 20 min wall at a load of 3-5),
file sha256 b34c9d982e17977acb6be9729f30fad855ddf34ff45af6226b3406ea7e85656d; its tensors equal those
of the out-of-tree script that first ran this recipe (929 CPU-s there). Token-flow loss, mean of the
first / last 500 phase-1 steps: 0.50 / 0.38 (predicting 0 scored 0.46 on steps 4501-5000 of a
5000-step phase 1). Phase-2 losses (scaled as above), mean of the first / last 30 steps: depth
5.13 / 0.93, flow 1.08 / 0.62, motion 0.94 / 0.48, camray 0.239 / 0.047, token flow 0.82 / 0.78.
Held out (:func:`held_out_scores`: 8 scenes, seeds 0-7, strides 2-4, train mean of 32 training clips),
residual r / plain r / spread, this recipe against the previous one (500 steps, no phase 1; sha256
6f58f070…):

    flow       0.47 / 0.50 / 0.42   (was 0.16 / 0.01 / 0.016: collapsed; the random init 0.13 / -0.09 / 0.09)
    log-depth  0.43 / 0.83 / 0.90   (was 0.41 / 0.83 / 0.91)
    motion     0.67 / 0.74 / 0.89, IoU 0.57   (was 0.42 / 0.58 / 0.78, IoU 0.41)
    camray     0.57 / 0.99 / 0.98   (was 0.18 / 0.98 / 0.99)

The goal of residual r >= 0.7 for depth and motion is not met: ``--steps`` / ``--flow-steps`` (more
CPU) are the levers. Older weights (210 steps on the old scenes, one shared background and pan): depth
-0.02, motion 0.04 (IoU 0.24), camray 0.11, flow 0.15 on these scenes.

Why phase 1 (issue 29; experiments of 75 to 5000 steps, one thread): with phase 2 alone the flow head
collapsed to a near-constant map (std 0.03-0.06 px against the truth's 1.6-2.2 px on held-out scenes; 6 of
its 8 ``head2`` ReLU units fire on < 1 % of a held-out clip's pixels, one on all), i.e. to the L1 optimum
of a head that cannot see motion: predicting 0 scores a flow loss of 1.05 on training clips (a per-frame
constant pan, 0.56). Its residual r of 0.16 came from the subtracted train mean alone (``spread`` shows
it). Not the cause: the target (sampling frame t−1 at p + flow reproduces frame t: mean error 2-9 grey
levels, against 8-33 with zero flow and worse with negated or (v, u)-swapped flow; the 112×112 input's
best global shift matches the pan), nor the 1/3 share of the steps (75 flow-only steps of the full model
stay at the zero loss). The cause is upstream of the head: the encoder learns no motion features within
500 steps. The token-flow readout trained with the encoder (no DPT: 0.07 CPU-s a step) stays at or above
the zero-prediction loss (strides 1-2: after 1250 steps at lr 1.5e-3, 1000 at 4e-4, 500 with half the
patch-embedding channels initialised as temporal differences; strides 1-5: after 500 steps), and so does
a readout of the per-frame mean (pan) flow after 800 steps, while the same readout learns log-depth within
100 steps (L1 0.29, then 0.15 at 700 steps, against 0.40 for the per-clip median). Motion features do
come, later: the strides-1-2 flow readout at lr 1.5e-3 leaves the zero loss between 1500 and 2000 steps
and reaches L1 0.33 against zero's 0.46 (mean of steps 4501-5000) after 5000 steps, 382 CPU-s in all.
Hence phase 1's 3000 steps; the token-flow L1 stays in phase 2 as in the one run tried (phase 2
without it, after phase 1, was not measured).
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
# per-map loss normalisation: each L1 is divided by roughly its target's spread across videos
DEPTH_SCALE = 0.5  # log-depth units
FLOW_SCALE = 2.0  # px at 112x112
MOTION_POS_WEIGHT = 3.0  # moving pixels are ~1/5 of a frame: BCE weighs them up
STEPS = 500
LR, WARMUP, MIN_LR_RATIO = 1.5e-3, 40, 0.05
MAX_STRIDE = 5  # phase 2 clips: stride 1-5
# phase 1 (encoder + linear readout against token-level flow, before the 500 steps):
FLOW_STEPS = 3000
FLOW_LR, FLOW_WARMUP = 1.5e-3, 20  # linear warm-up, then constant
FLOW_MAX_STRIDE = 2  # phase 1 clips: stride 1-2 (small motions first)
SUB = 2  # token-flow target: SUB×SUB sub-patches per patch, each the mean flow of its (patch/SUB)² pixels


def training_clip(step: int, preset, max_stride: int = MAX_STRIDE) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(x (1, 3, N, S, S) normalised teacher input, targets) of training step ``step``: scene seed
    ``SCENE_SEED0 + step``, random stride 1-``max_stride`` and start 0-119 drawn from the same seed."""
    rng = np.random.default_rng(SCENE_SEED0 + step)
    stride = int(rng.integers(1, max_stride + 1))
    start = int(rng.integers(0, 120))
    return scene_clip(SCENE_SEED0 + step, start, stride, preset)


def scene_clip(seed: int, start: int, stride: int, preset) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(x (1, 3, N, S, S) normalised teacher input, targets) of the N frames ``start, start + stride, ...``
    of scene ``seed``: log_depth, flow (px at S×S), motion (1, N, S, S, C) and camray (1, N, h_p, w_p, 6)."""
    from p4d.video.synthetic import synthetic_clip

    n, s = preset.num_frames, preset.img_size
    clip = synthetic_clip(range(start, start + n * stride, stride), size=SOURCE_SIZE, seed=seed,
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


#: Held-out scenes of :func:`held_out_scores`: (seed, start, stride); seeds 0-7 are never training scenes.
HELD_OUT = tuple((seed, 0, 2 + seed % 3) for seed in range(8))


def held_out_scores(model, *, held_out=HELD_OUT, baseline_steps: int = 32) -> dict[str, dict[str, float]]:
    """The teacher's maps against the analytic truth of held-out scenes, per map (log-depth, flow
    frames 1..N−1 in px, motion σ(logit), camray): ``r`` (Pearson), ``residual_r`` and ``r2`` against the
    video-blind baseline (the per-element mean of the targets of training steps 0..``baseline_steps``−1;
    :class:`p4d.eval.distill.ResidualFit`), and ``video_specific``: the share of the truth's variance the
    baseline leaves (1 − SS(baseline)/SS(total)), ``spread`` (:func:`prediction_spread`: ~0 for a collapsed head);
    motion also ``iou`` (σ > 0.5)."""
    from p4d.eval.distill import ResidualFit

    def comparable(t: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {"depth": t["log_depth"][0].double().numpy(), "flow": t["flow"][0, 1:].double().numpy(),
                "motion": t["motion"][0].double().numpy(), "camray": t["camray"][0].double().numpy()}

    preset = model.preset
    sums: dict[str, np.ndarray] = {}
    for step in range(baseline_steps):
        for k, v in comparable(training_clip(step, preset)[1]).items():
            sums[k] = sums.get(k, 0.0) + v
    mean = {k: v / baseline_steps for k, v in sums.items()}
    fits = {k: ResidualFit() for k in mean}
    raw = {k: ResidualFit() for k in mean}  # r against a zero "mean": plain Pearson r over all elements
    inter = union = 0.0
    for seed, start, stride in held_out:
        x, targets = scene_clip(seed, start, stride, preset)
        with torch.no_grad():
            out = model.heads(model.encoder.forward_intermediates(x, preset.taps), raw=True)
        pred = comparable({"log_depth": out["depth"], "flow": out["flow"],
                           "motion": torch.sigmoid(out["motion"]), "camray": out["camray"]})
        truth = comparable(targets)
        for k in fits:
            fits[k].add(pred[k], truth[k], mean[k])
            raw[k].add(pred[k], truth[k], np.zeros_like(mean[k]))
        hit, moving = pred["motion"] > 0.5, truth["motion"] > 0.5
        inter, union = inter + float((hit & moving).sum()), union + float((hit | moving).sum())
    scores: dict[str, dict[str, float]] = {}
    for k, fit in fits.items():
        total = raw[k].syy - raw[k].sy ** 2 / raw[k].n  # SS of the truth about its scalar mean
        scores[k] = {"r": round(raw[k].r, 4), "residual_r": round(fit.r, 4), "r2": round(fit.r2, 4),
                     "video_specific": round(fit.sse_base / total, 4), "spread": round(prediction_spread(raw[k]), 4)}
    scores["motion"]["iou"] = round(inter / max(union, 1.0), 4)
    return scores


def prediction_spread(fit) -> float:
    """std of the prediction over std of the truth, each about its own scalar mean (a ``ResidualFit``
    fed a zero baseline): near 0 when a head has collapsed to a constant map, which residual r hides
    (a constant prediction minus the train mean still correlates with the truth minus the train mean)."""
    cxx = fit.sxx - fit.sx ** 2 / fit.n
    cyy = fit.syy - fit.sy ** 2 / fit.n
    return math.sqrt(max(cxx, 0.0) / cyy) if cyy > 0 else float("nan")


DENSE = ("depth", "flow", "motion")


def token_flow_readout(preset) -> torch.nn.Linear:
    """The phase-1 linear readout: the T concatenated tap features of a token (T·c') -> its
    tubelet × 2 × SUB × SUB flow values (:func:`token_flow_target`'s layout); init from the global torch RNG."""
    return torch.nn.Linear(preset.embed_dim * len(preset.taps), preset.tubelet * SUB * SUB * 2)


def token_flow_target(flow: torch.Tensor, preset) -> torch.Tensor:
    """Token-level backward flow: flow (1, N, S, S, 2) px -> (N', h', w', tubelet, 2, SUB, SUB), each
    value the mean flow of a (patch/SUB)² sub-patch of one frame of the token's tubelet."""
    n_t, g, sub_px = preset.num_frames // preset.tubelet, preset.img_size // preset.patch_size, preset.patch_size // SUB
    f = F.avg_pool2d(flow[0].permute(0, 3, 1, 2), sub_px)  # (N, 2, h'·SUB, w'·SUB)
    return f.reshape(n_t, preset.tubelet, 2, g, SUB, g, SUB).permute(0, 3, 5, 1, 2, 4, 6)


def token_flow_loss(readout: torch.nn.Linear, taps, flow: torch.Tensor, preset) -> torch.Tensor:
    """L1 / FLOW_SCALE of ``readout`` applied to the taps (T tensors (1, N', h', w', c'), concatenated to T·c')
    against :func:`token_flow_target` of flow (1, N, S, S, 2), frame 0 (no backward flow) left out."""
    n_t, g = preset.num_frames // preset.tubelet, preset.img_size // preset.patch_size
    shape = (n_t, g, g, preset.tubelet, 2, SUB, SUB)  # token_flow_target's layout
    valid = torch.ones(shape)
    valid[0, :, :, 0] = 0  # frame 0 = tubelet 0's first frame
    z = torch.cat(list(taps), -1)[0]
    err = (readout(z).reshape(shape) - token_flow_target(flow, preset)).abs()
    return (err * valid).sum() / valid.sum() / FLOW_SCALE


def losses(model, x: torch.Tensor, targets: dict[str, torch.Tensor],
           modalities: tuple[str, ...] = ("depth", "flow", "motion", "camray"),
           readout: torch.nn.Linear | None = None) -> dict[str, torch.Tensor]:
    """Per-modality losses of one clip (see the module docstring), for the heads in ``modalities``;
    with a token-flow ``readout`` also ``tokflow`` (:func:`token_flow_loss`) on the same taps."""
    taps = model.encoder.forward_intermediates(x, model.preset.taps)
    out = model.heads(taps, modalities=modalities, raw=True)
    terms = {
        "depth": lambda: (out["depth"] - targets["log_depth"]).abs().mean() / DEPTH_SCALE,
        "flow": lambda: (out["flow"][:, 1:] - targets["flow"][:, 1:]).abs().mean() / FLOW_SCALE,
        "motion": lambda: F.binary_cross_entropy_with_logits(out["motion"], targets["motion"],
                                                             pos_weight=torch.tensor(MOTION_POS_WEIGHT)),
        "camray": lambda: (out["camray"] - targets["camray"]).abs().mean(),
    }
    parts = {m: terms[m]() for m in modalities}
    if readout is not None:
        parts["tokflow"] = token_flow_loss(readout, taps, targets["flow"], model.preset)
    return parts


def train(steps: int, out: Path, *, flow_steps: int = FLOW_STEPS, lr: float = LR, warmup: int = WARMUP,
          log_every: int = 25) -> dict:
    """Train (phase 1: ``flow_steps`` token-flow encoder steps; phase 2: ``steps`` steps of all heads)
    and write ``out``; returns {"sha256", "cpu_s", "wall_s", "flow_phase", "first", "final" (loss means
    of the first / last 30 phase-2 steps), "bytes"}.
    Runs with one CPU thread and deterministic algorithms, then restores the caller's settings."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(steps, out, flow_steps=flow_steps, lr=lr, warmup=warmup, log_every=log_every)
    finally:  # a caller's process (a test, a notebook) keeps its own settings
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _flow_phase(model, readout: torch.nn.Linear, flow_steps: int, *, log_every: int, cpu0: float) -> list[float]:
    """Phase 1: the encoder and ``readout`` trained on :func:`token_flow_loss` alone (clips of stride
    1-FLOW_MAX_STRIDE, scene seeds SCENE_SEED0 + step; AdamW FLOW_LR, FLOW_WARMUP linear warm-up, then
    constant; clip 1); the heads are untouched. Returns the per-step losses."""
    enc, preset = model.encoder, model.preset
    params = list(enc.parameters()) + list(readout.parameters())
    opt = torch.optim.AdamW(params, lr=FLOW_LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / FLOW_WARMUP))
    enc.requires_grad_(True)
    enc.train()
    history: list[float] = []
    for step in range(flow_steps):
        x, targets = training_clip(step, preset, max_stride=FLOW_MAX_STRIDE)
        loss = token_flow_loss(readout, enc.forward_intermediates(x, preset.taps), targets["flow"], preset)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        history.append(float(loss.detach()))
        if step % log_every == 0 or step == flow_steps - 1:
            log.warning("flow step %d/%d  tokflow %.4f  (%.0f CPU-s)", step + 1, flow_steps,
                        np.mean(history[-log_every:]), time.process_time() - cpu0)
    return history


def _train(steps: int, out: Path, *, flow_steps: int, lr: float, warmup: int, log_every: int) -> dict:
    from p4d.teacher.checkpoint import export_safetensors
    from p4d.teacher.model import build_teacher

    torch.manual_seed(0)
    model = build_teacher("tiny-random", seed=0)  # its own forked RNG: the global one stays at seed 0
    readout = token_flow_readout(model.preset)  # init drawn here, from the global seed-0 RNG
    cpu0, wall0 = time.process_time(), time.perf_counter()
    flow_history = _flow_phase(model, readout, flow_steps, log_every=log_every, cpu0=cpu0)
    model.requires_grad_(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad] + list(readout.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * (
            MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))))
    history: list[dict[str, float]] = []
    for step in range(steps):
        x, targets = training_clip(step, model.preset)
        parts = losses(model, x, targets, (DENSE[step % len(DENSE)], "camray"), readout=readout)
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
    export_safetensors(model.half(), out, metadata=recipe(steps, flow_steps=flow_steps, lr=lr, warmup=warmup))
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    first, final = _means(history[:30]), _means(history[-30:])
    flow_phase = {"first": round(float(np.mean(flow_history[:500])), 4) if flow_history else None,
                  "final": round(float(np.mean(flow_history[-500:])), 4) if flow_history else None}
    return {"sha256": digest, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
            "flow_phase": flow_phase, "first": first, "final": final, "bytes": Path(out).stat().st_size}


def recipe(steps: int, *, flow_steps: int = FLOW_STEPS, lr: float = LR, warmup: int = WARMUP) -> dict[str, str]:
    """The safetensors metadata naming the preset and how the weights were made, both phases (fixed
    content: the same run writes the same bytes)."""
    return {"p4d_teacher_preset": "tiny", "p4d_init": "tiny-random seed 0",
            "p4d_recipe": (f"p4d.teacher.train_tiny: {steps} steps after {flow_steps} token-flow steps. "
                           f"Phase 1: encoder + linear readout of the {SUB}x{SUB}-sub-patch token flow "
                           f"(L1/{FLOW_SCALE:g} px, frame 0 left out), stride 1-{FLOW_MAX_STRIDE}, "
                           f"AdamW lr {FLOW_LR:g} wd 1e-4, warmup {FLOW_WARMUP} then constant, clip 1. "
                           f"Phase 2: batch 1, AdamW lr {lr:g} wd 1e-4, warmup {warmup}, cosine to {MIN_LR_RATIO:g}x, "
                           f"clip 1; losses log-depth L1/{DEPTH_SCALE:g}, flow L1/{FLOW_SCALE:g} px, "
                           f"motion BCE pos_weight {MOTION_POS_WEIGHT:g}, camray L1, plus the phase-1 token-flow L1"),
            "p4d_data": (f"synthetic_clip scenes {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]}, seeds {SCENE_SEED0}+step, "
                         f"16 frames, stride 1-{MAX_STRIDE} (phase 1: 1-{FLOW_MAX_STRIDE}), start 0-119, "
                         "squashed to 112x112"),
            "p4d_torch": torch.__version__}


def _means(history: list[dict[str, float]]) -> dict[str, float]:
    """Per-loss mean over the steps in ``history`` that have that loss."""
    names = sorted({k for h in history for k in h})
    return {k: round(float(np.mean([h[k] for h in history if k in h])), 4) for k in names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"phase-2 training steps (clips, all heads), default {STEPS}")
    parser.add_argument("--flow-steps", type=int, default=FLOW_STEPS,
                        help=f"phase-1 token-flow encoder steps (clips) run first, default {FLOW_STEPS}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"weights file (default {DEFAULT_OUT})")
    parser.add_argument("--score", type=Path, metavar="WEIGHTS", default=None,
                        help="train nothing: print the held-out scores of this tiny-teacher .safetensors file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.score is not None:
        from p4d.teacher.model import build_teacher

        print(json.dumps(held_out_scores(build_teacher("tiny", weights=args.score, dtype=torch.float32)), indent=1))
        return
    result = train(args.steps, args.out, flow_steps=args.flow_steps)
    print(result)


if __name__ == "__main__":
    main()
