"""``p4d bench train``: a training step from cached targets vs the same student with the teacher
run online in the same process.

Setup (in a temporary folder): synthetic H.264 videos → ``p4d precompute`` with the tiny teacher
(the cache) → conversations over them. The student is sized so that teacher : student parameters
are about the paper's L4P (~1.1 B) : NVILA-Lite-8B (~8 B) ratio, scaled down.

Rows:

- step time, cached vs online (goal ≤ 0.6): one optimizer step including the data (cached: read
  the clip's targets + decode its frames; online: decode the frames + the teacher's forward), both
  interleaved by :func:`~p4d.bench.harness.compare`; the cached step is first run with no teacher
  object alive (checked), and the resident parameter bytes of each path are given beside it
  (CUDA: peak allocated memory per path instead).
- LD and ED losses after K steps from the same seed on the same batches, cached vs online (the
  cached targets went through the latent codec; no goal, the ratio shows the drift).
- notes: the same ratio predicted at paper sizes from FLOPs (:func:`paper_step_estimate`).
- data-wait fraction of step time in the real trainer with one spawned worker (goal ≤ 0.05), and
  loader clips/s with frames + targets, 2 workers vs 0.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from p4d.bench.harness import BenchResult, Goal, Row, compare

log = logging.getLogger(__name__)

#: Paper sizes: L4P (ViT-g/14 encoder + DPT heads) ≈ 1.1 B parameters; NVILA-Lite-8B ≈ 8 B.
PAPER_RATIO = 1.1 / 8.0
#: size -> (videos, steps K for the loss rows, repeats, student overrides of the tiny preset)
_STUDENT = dict(llm=dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                         num_key_value_heads=2), vision=dict(hidden_size=64, intermediate_size=128))
SIZES = {"tiny": (4, 4, 3, _STUDENT), "small": (8, 10, 5, _STUDENT)}
GOAL_STEP = Goal("<=", 0.6)
GOAL_WAIT = Goal("<=", 0.05)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _teachers_alive() -> int:
    from p4d.teacher.model import L4PTeacher

    gc.collect()  # teachers of earlier benchmarks in this process are garbage, not resident
    return sum(1 for obj in gc.get_objects() if isinstance(obj, L4PTeacher))


def _student_cfg(overrides: dict):
    from p4d.train.model import TINY

    return {"vision": {**TINY.vision, **overrides["vision"]}, "llm": {**TINY.llm, **overrides["llm"]}}


def _setup(tmp: Path, videos: int):
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute
    from p4d.train.demo import make_demo_conversations
    from p4d.video import write_synthetic_video

    vdir = tmp / "videos"
    for i in range(videos):
        write_synthetic_video(vdir / f"v{i}.mp4", num_frames=24, fps=12, size=(128, 96), seed=i)
    store = tmp / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(vdir), store=str(store), teacher="tiny", policy="uniform",
                                    clips_per_shard=4, workers=1, device="cpu", progress=False))
    return make_demo_conversations(vdir, tmp / "conv.jsonl"), str(store)


class Paths:
    """The cached and the online step on one student recipe and one batch order."""

    def __init__(self, conversations, store_url: str, out: Path, student: dict, device: torch.device):
        from p4d.cache_schema import open_store
        from p4d.train.config import resolve_config
        from p4d.train.data import build_samples
        from p4d.train.distributed import Dist
        from p4d.train.model import student_preset

        student_file = out.parent / "student.json"
        student_file.write_text(json.dumps(student_preset("tiny", **student).to_dict()))
        self.cfg = resolve_config(overrides={
            "out": str(out), "model": {"config_file": str(student_file)}, "data": {"conversations": str(conversations), "cache": store_url, "batch_size": 2},
            "optim": {"max_steps": 1000, "lr_llm": 1e-3, "lr_projector": 1e-3, "lr_d4dp": 1e-3, "warmup_steps": 0},
            "log": {"progress": False, "tensorboard": False}})
        self.store = open_store(store_url)
        self.samples, _ = build_samples(conversations, self.store)
        self.dist = Dist(0, 1, 0, device, None)
        self.student = student
        self.teacher = None

    def fresh(self):
        """(model, optimizer, scheduler, dataset, collate) from the same seed."""
        from p4d.train.build import build_model, build_optimizer, build_scheduler
        from p4d.train.loader import ClipDataset, Collate
        from p4d.train.trainer import needed_targets

        model, _ = build_model(self.cfg, self.store, device=self.dist.device)
        opt = build_optimizer(model, self.cfg)
        sched = build_scheduler(opt, self.cfg)
        ds = ClipDataset(self.samples, self.store, student=model.cfg, tokenizer=model.tokenizer,
                         targets=needed_targets(self.cfg))
        return model, opt, sched, ds, Collate(model.ids.pad)

    def cached_batch(self, ds, collate, indices):
        return collate([ds[(i, 0)] for i in indices])

    def online_teacher_input(self, indices) -> torch.Tensor:
        """The teacher's input for these samples, built as precompute builds it: frames decoded at the
        stored indices to :func:`p4d.video.decode_size`, then :func:`p4d.video.teacher_input`."""
        from p4d.cache_schema import read_clips
        from p4d.video import decode_frames, decode_size, teacher_input

        spec = self.store.spec
        index = read_clips(self.store, [self.samples[i].clip for i in indices], fields=("frame_index",))["frame_index"]
        size, filter_ = decode_size(spec.spatial)
        frames = np.stack([decode_frames(self.samples[i].media[0], idx, size=size, filter=filter_).frames
                           for i, idx in zip(indices, index)])
        return teacher_input(frames, spec.spatial, spec.normalisation)

    def online_batch(self, ds, collate, indices):
        """Frames decoded once at the stored indices, the teacher's targets computed now."""
        plain = ds.targets
        ds.targets = ()
        batch = collate([ds[(i, 0)] for i in indices])  # frames + token ids, no cached targets
        ds.targets = plain
        x = self.online_teacher_input(indices)
        with torch.no_grad():
            out = self.teacher(x.to(self.dist.device))
        batch["targets"] = {k: out[k].float().cpu() for k in plain}
        return batch

    def step(self, state, batch):
        from p4d.train.trainer import train_step

        model, opt, sched = state[:3]
        return train_step(model, [batch], optimizer=opt, scheduler=sched, cfg=self.cfg, dist=self.dist)


def _layer_params(cfg: dict, mlp_mats: int) -> int:
    """Weights of one transformer block (attention + MLP; norms and biases left out)."""
    h, inner = int(cfg["hidden_size"]), int(cfg["intermediate_size"])
    head = h // int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads", cfg["num_attention_heads"])) * head
    return 2 * h * h + 2 * h * kv + mlp_mats * h * inner


@functools.lru_cache(maxsize=1)
def _l4p_forward_flops() -> int:
    """FLOPs of one L4P forward per clip (``p4d teacher info``; builds the model on the meta device)."""
    from p4d.teacher.info import teacher_stats

    return teacher_stats("l4p")["flops"]["total"]


def paper_step_estimate(student: str = "nvila-lite-8b", text_tokens: int = 64, lora: bool = False) -> dict:
    """FLOPs of one training sample at paper size vs the L4P teacher forward on its clip.

    Student, per sample: frozen SigLIP forward 2 x params x (N x patches); LLM forward + backward
    6 x params x T (4 x with LoRA: no weight gradients of the frozen LLM), T = N x (visual tokens per
    frame + 1) + text, plus attention 12 x layers x T^2 x hidden (forward + backward). Teacher:
    ``p4d teacher info`` on the l4p preset. Predicted cached/online step ratio at equal
    utilisation = student / (student + teacher).
    """
    from p4d.teacher import get_preset
    from p4d.train.model import student_preset

    cfg = student_preset(student)
    frames = get_preset("l4p").num_frames
    vision = _layer_params(cfg.vision, 2) * int(cfg.vision["num_hidden_layers"])
    llm_layers = int(cfg.llm["num_hidden_layers"])
    llm = _layer_params(cfg.llm, 3) * llm_layers
    tokens = frames * cfg.tokens_per_frame + text_tokens  # tokens_per_frame counts the frame-end token
    vision_flops = 2 * vision * frames * cfg.patch_grid ** 2
    llm_flops = (4 if lora else 6) * llm * tokens + 12 * llm_layers * tokens ** 2 * int(cfg.llm["hidden_size"])
    teacher = _l4p_forward_flops()
    step = vision_flops + llm_flops
    return {"student": student, "lora": lora, "tokens": tokens, "llm block params": llm, "student TFLOP": step / 1e12,
            "teacher TFLOP": teacher / 1e12, "ratio": step / (step + teacher)}


def _loader_rate(ds, samples, pad: int, workers: int) -> float:
    from p4d.train.loader import ShardBatchSampler, make_loader

    loader = make_loader(ds, ShardBatchSampler(samples, batch_size=2, seed=0), pad_id=pad, num_workers=workers)
    it = iter(loader)
    next(it)  # worker start-up is not counted
    t0, n = time.perf_counter(), 0
    for batch in it:
        n += batch["size"]
    return n / (time.perf_counter() - t0) if n else float("nan")


def run(size: str) -> BenchResult:
    if size not in SIZES:
        return BenchResult(name="train", size=size, shapes={},
                           status=f"not run: --size {size} needs the real L4P and NVILA-Lite sizes on a GPU; "
                                  f"sizes here: {', '.join(SIZES)}")
    videos, k_steps, repeats, student = SIZES[size]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = BenchResult(name="train", size=size, shapes={})
    with tempfile.TemporaryDirectory(prefix="p4d-bench-train-") as tmp:
        tmp = Path(tmp)
        conversations, store = _setup(tmp, videos)
        paths = Paths(conversations, store, tmp / "run", _student_cfg(student), device)
        pairs = [[i, i + 1] for i in range(0, len(paths.samples) - 1, 2)]

        # --- cached step, no teacher alive -------------------------------------------------------
        state = paths.fresh()
        model = state[0]
        paths.step(state, paths.cached_batch(state[3], state[4], pairs[0]))  # warm-up
        teachers = _teachers_alive()
        student_bytes = _bytes(model)

        # --- the teacher, resident for the online baseline ---------------------------------------
        from p4d.teacher.model import build_teacher

        paths.teacher = build_teacher(paths.store.spec.teacher["preset"], device=device)
        ratio = _params(paths.teacher) / _params(model)
        k = iter(range(10**6))
        cand, base = compare(lambda: paths.step(state, paths.cached_batch(state[3], state[4], pairs[next(k) % len(pairs)])),
                             lambda: paths.step(state, paths.online_batch(state[3], state[4], pairs[next(k) % len(pairs)])),
                             repeats=repeats)
        result.rows.append(Row(
            "train step: cached targets vs teacher online", "s/step", cand.median, base.median, goal=GOAL_STEP,
            spread=cand.spread, checks={"teacher never resident (cached)": teachers == 0},
            extra={"resident MB cached": student_bytes / 2**20,
                   "resident MB online": (student_bytes + _bytes(paths.teacher)) / 2**20,
                   "teacher:student params": ratio}))

        # --- losses after K steps, same seed and batches -----------------------------------------
        finals = {}
        for name, make in (("cached", paths.cached_batch), ("online", paths.online_batch)):
            state = paths.fresh()
            for s in range(k_steps):
                terms = paths.step(state, make(state[3], state[4], pairs[s % len(pairs)]))
            finals[name] = terms
        ed = lambda t: sum(t.get(m, 0.0) for m in ("depth", "flow", "motion", "camray"))  # noqa: E731
        result.rows.append(Row(f"LD after {k_steps} steps: cached vs online", "loss", finals["cached"]["ld"],
                               finals["online"]["ld"]))
        result.rows.append(Row(f"ED (sum of map terms) after {k_steps} steps: cached vs online", "loss",
                               ed(finals["cached"]), ed(finals["online"])))
        del paths.teacher
        paths.teacher = None
        gc.collect()

        # --- the real trainer: data-wait fraction; loader throughput ------------------------------
        from p4d.train.logs import read_log
        from p4d.train.trainer import main

        cfg = paths.cfg
        cfg.out = str(tmp / "trainer")
        cfg.optim.max_steps = max(16, k_steps)  # enough steps that one slow batch does not decide the row
        cfg.data.num_workers = 1
        cfg.checkpoint.export = False
        main(cfg)
        records = read_log(cfg.out)[1:]  # the first step waits for the worker to start
        wait = float(np.sum([r["data_wait"] for r in records]))
        total = float(np.sum([r["step_time"] for r in records]))
        result.rows.append(Row("data wait vs step time (trainer, 1 spawned worker)", "s", wait, total,
                               goal=GOAL_WAIT, extra={"steps": len(records),
                                                      "waits ms": [round(r["data_wait"] * 1e3) for r in records]}))
        state = paths.fresh()
        pad = state[0].ids.pad
        two, zero = _loader_rate(state[3], paths.samples, pad, 2), _loader_rate(state[3], paths.samples, pad, 0)
        result.rows.append(Row("loader with frames + targets: 2 workers vs 0", "clips/s", two, zero))
    result.shapes = {"teacher": "tiny", "student llm hidden": student["llm"]["hidden_size"],
                     "teacher:student params": round(ratio, 3), "paper ratio": round(PAPER_RATIO, 3),
                     "device": str(device), "clips": len(paths.samples)}
    for name in ("nvila-lite-8b", "nvila-lite-2b"):
        for lora in (False, True):
            e = paper_step_estimate(name, lora=lora)
            result.notes.append(
                f"paper-size estimate, {name}{' + LoRA' if lora else ''}: student {e['student TFLOP']:.1f} TFLOP per "
                f"sample ({e['tokens']} tokens) vs L4P forward {e['teacher TFLOP']:.1f} TFLOP per clip -> cached/online "
                f"step ~{e['ratio']:.2f} at equal utilisation")
    result.notes.append(f"teacher:student parameters {ratio:.3f} here vs {PAPER_RATIO:.3f} in the paper "
                        "(L4P ~1.1 B : NVILA-Lite-8B ~8 B); both models randomly initialised")
    return result
