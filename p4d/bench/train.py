"""``p4d bench train``: a training step from cached targets vs the same student with the teacher
run online in the same process.

Setup (in a temporary folder): synthetic H.264 videos → ``p4d precompute`` with the tiny teacher
(the cache) → conversations over them. The student is sized so that teacher : student parameters
are about the paper's L4P (~1.1 B) : NVILA-Lite-8B (~8 B) ratio, scaled down.

Rows:

- step time, cached vs online (goal ≤ 0.6): one optimizer step including the data (cached: read
  the clip's targets + decode its frames; online: decode the frames + the teacher's forward), both
  interleaved by :func:`~p4d.bench.harness.compare`, wall time and CPU time (``time.process_time``)
  per step; the cached step is first run with no teacher object alive (checked), and the resident
  parameter bytes of each path are given beside it. CPU runs flush denormals to zero.
- the measured cached/online ratio against the FLOP model's prediction at the same sizes
  (:func:`step_flops` on this student and the tiny teacher; goal: within 10 %), with what the model
  leaves out timed alone: the teacher input's decode, and the FLOP/s of the teacher forward vs the
  cached student step (the model assumes equal utilisation).
- peak memory per path (goal P5: the teacher's bytes never allocated): each path runs 2 steps in a
  fresh spawned process; the figure is the process's peak RSS (``ru_maxrss``) above its RSS after
  the imports (CUDA: ``max_memory_allocated`` beside it). Checked: the cached process never
  imports the teacher's code; online − cached and the teacher's parameter bytes are given beside.
- LD and ED losses after K steps from the same seed on the same batches, cached vs online (the
  cached targets went through the latent codec; no goal, the ratio shows the drift).
- notes: the same ratio predicted at paper sizes from FLOPs (:func:`paper_step_estimate`), term by term.
- data-wait fraction of step time in the real trainer with one spawned worker (goal ≤ 0.05), and
  loader clips/s with frames + targets, 2 workers vs 0.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from p4d.bench.harness import BenchResult, Goal, Row, compare, time_fn

log = logging.getLogger(__name__)

#: Paper sizes: L4P (ViT-g/14 encoder + DPT heads) ≈ 1.1 B parameters; NVILA-Lite-8B ≈ 8 B.
PAPER_RATIO = 1.1 / 8.0
#: size -> (videos, steps K for the loss rows, repeats, student overrides of the tiny preset)
_STUDENT = dict(llm=dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                         num_key_value_heads=2), vision=dict(hidden_size=64, intermediate_size=128))
SIZES = {"tiny": (4, 4, 3, _STUDENT), "small": (8, 10, 5, _STUDENT)}
GOAL_STEP = Goal("<=", 0.6)
GOAL_WAIT = Goal("<=", 0.05)
#: measured cached/online step ratio within 10 % of the FLOP model's prediction at the same sizes
GOAL_MODEL = Goal("within", 0.10)
#: P5: the cached path never allocates the teacher's bytes (checked: its code is never imported), so its
#: peak is at most the online one
GOAL_MEMORY = Goal("<=", 1.0)
#: the ED loss terms, one per map; ED = their sum
MAP_TERMS = ("depth", "flow", "motion", "camray")


def ed_sum(terms: dict) -> float:
    """ED of one step's (or a held-out evaluation's) loss terms: the sum of the map terms present."""
    return float(sum(terms.get(m, 0.0) for m in MAP_TERMS))


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
    from p4d.train.model import student_preset
    from p4d.train.demo import make_demo_conversations
    from p4d.video import write_synthetic_video

    vdir = tmp / "videos"
    for i in range(videos):
        write_synthetic_video(vdir / f"v{i}.mp4", num_frames=24, fps=12, size=(128, 96), seed=i)
    store = tmp / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(vdir), store=str(store), teacher="tiny", policy="uniform",
                                    clips_per_shard=4, workers=1, device="cpu", progress=False,
                                    student_size=student_preset("tiny").image_size))  # the trainer checks it
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
            "optim": {"max_steps": 1000, "lr_llm": 1e-3, "lr_projector": 1e-3, "lr_d4dp": 1e-3, "warmup_steps": 0,
                      "warmup_ratio": 0.0},  # full lr from step 1: the default warmup (3 % of 1000 steps) kept 4-10-step rows at lr ~0
            "log": {"progress": False, "tensorboard": False}})
        self.store = open_store(store_url)
        self.samples, _ = build_samples(conversations, self.store)
        self.dist = Dist(0, 1, 0, device, None)
        self.student = student
        self.teacher = None

    def fresh(self):
        """(model, optimizer, scheduler, dataset, collate) from the same seed."""
        from p4d.train.build import build_model
        from p4d.train.optim import build_optimizer, build_scheduler
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


@functools.lru_cache(maxsize=4)
def _teacher_flops(preset: str) -> dict:
    """FLOPs of one teacher forward per clip by part, its F_4D grid and frames (``p4d teacher info``;
    built on the meta device)."""
    from p4d.teacher.info import teacher_stats

    stats = teacher_stats(preset)
    p = stats["preset"]
    return {"flops": dict(stats["flops"]), "frames": p.num_frames, "taps": len(p.taps), "latent_grid": p.latent_grid}


def step_flops(student="nvila-lite-8b", teacher: str = "l4p", *, text_tokens: int = 64, lora: bool = False,
               modalities: tuple[str, ...] = ("depth", "flow", "motion", "camray"),
               gradient_checkpointing: bool | None = None) -> dict:
    """FLOPs of one training sample of ``student`` (a preset name or StudentConfig) vs the ``teacher``
    forward on its clip (N = the teacher's frames), for the default recipe (p4d, ld+ed, tune-p+llm).

    Student terms (TFLOP): E_v frozen forward, linear 2 x params x (N x patches) and attention
    4 x layers x N x patches^2 x D; E_p forward + backward 6 x params x visual tokens; LLM forward +
    backward 6 x params x T (4 x with LoRA: no weight gradients of the frozen LLM), T = N x (visual
    tokens per frame + 1) + text, plus attention 12 x layers x T^2 x c; D_4DP 6 x params x taps x
    N'h'w'; the frozen D_m heads of ``modalities`` on F̂_4D, forward + input-gradient backward =
    2 x their forward in ``p4d teacher info``. With gradient checkpointing (``gradient_checkpointing``,
    None: the preset's; on for NVILA) the backward recomputes the LLM's forward once more,
    2 x params x T + 4 x layers x T^2 x c (E_v is frozen and gets no backward, so nothing of it is
    recomputed). Teacher: its whole forward (encoder + heads).
    Predicted cached/online step ratio at equal utilisation = student / (student + teacher).
    """
    from p4d.train.model import StudentConfig, student_preset

    cfg = student if isinstance(student, StudentConfig) else student_preset(student)
    t = _teacher_flops(teacher)
    frames, taps = t["frames"], t["taps"]
    n4, h4, w4, c4 = t["latent_grid"]
    d, c, patches = cfg.vision_width, cfg.llm_width, cfg.patch_grid ** 2
    v_layers, llm_layers = int(cfg.vision["num_hidden_layers"]), int(cfg.llm["num_hidden_layers"])
    llm = _layer_params(cfg.llm, 3) * llm_layers
    visual = frames * cfg.token_grid[0] * cfg.token_grid[1]
    tokens = frames * cfg.tokens_per_frame + text_tokens  # tokens_per_frame counts the frame-end token
    d4dp = c * c4 if cfg.d4dp == "linear" else c * cfg.d4dp_hidden + cfg.d4dp_hidden * c4
    terms = {
        "E_v linear": 2 * _layer_params(cfg.vision, 2) * v_layers * frames * patches,
        "E_v attention": 4 * v_layers * frames * patches ** 2 * d,
        "E_p": 6 * (9 * d * 3 * d + 3 * d * c + c * c) * visual,
        "LLM linear": (4 if lora else 6) * llm * tokens,
        "LLM attention": 12 * llm_layers * tokens ** 2 * c,
        "D_4DP": 6 * d4dp * taps * n4 * h4 * w4,
        "D_m fwd+bwd": 2 * sum(t["flops"][f"heads.{m} convs"] for m in modalities),
    }
    if cfg.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing:
        terms["LLM recompute"] = 2 * llm * tokens + 4 * llm_layers * tokens ** 2 * c
    step, teacher_flops = sum(terms.values()), t["flops"]["total"]
    return {"student": getattr(cfg, "name", str(student)), "lora": lora, "tokens": tokens, "llm block params": llm,
            "terms TFLOP": {k: v / 1e12 for k, v in terms.items()}, "student TFLOP": step / 1e12,
            "teacher TFLOP": teacher_flops / 1e12, "ratio": step / (step + teacher_flops)}


def paper_step_estimate(student: str = "nvila-lite-8b", text_tokens: int = 64, lora: bool = False) -> dict:
    """:func:`step_flops` at paper size: the NVILA-Lite preset against the L4P teacher."""
    return step_flops(student, "l4p", text_tokens=text_tokens, lora=lora)


# ---- peak memory of each path, each in a fresh process -----------------------------------------

def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory_child(conn, mode: str, conversations: str, store_url: str, out: str, student: dict, steps: int) -> None:
    """One path (``cached`` | ``online``) in a fresh spawned process: build the student (+ the teacher
    for ``online``), run ``steps`` optimizer steps; send the peak above the post-import baseline."""
    import resource
    import sys

    torch.set_flush_denormal(True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import p4d.train.build  # noqa: F401  (imports before the baseline: code is not the path's memory)
    import p4d.train.trainer  # noqa: F401

    if mode == "online":
        from p4d.teacher.model import build_teacher
    base = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    paths = Paths(Path(conversations), store_url, Path(out), student, device)
    state = paths.fresh()
    if mode == "online":
        paths.teacher = build_teacher(paths.store.spec.teacher["preset"], device=device)
    make = paths.cached_batch if mode == "cached" else paths.online_batch
    pairs = [[i, i + 1] for i in range(0, len(paths.samples) - 1, 2)]
    for s in range(steps):
        paths.step(state, make(state[3], state[4], pairs[s % len(pairs)]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    conn.send({"peak MiB": peak - base, "baseline MiB": base,
               "device peak MiB": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
               "teacher imported": "p4d.teacher.model" in sys.modules,
               "teacher MiB": _bytes(paths.teacher) / 2**20 if paths.teacher is not None else 0.0})
    conn.close()


def peak_memory(mode: str, conversations, store_url: str, out: Path, student: dict, steps: int = 2) -> dict:
    """:func:`_memory_child` in a spawned process (its own heap and peak RSS); returns its report."""
    import multiprocessing as mp

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_memory_child, args=(send, mode, str(conversations), store_url, str(out), student, steps))
    proc.start()
    send.close()
    try:
        report = recv.recv()
    except EOFError:
        report = None
    finally:
        proc.join()
    if proc.exitcode != 0 or report is None:
        raise RuntimeError(f"p4d bench train: the {mode} memory process exited with {proc.exitcode} (its traceback is above)")
    return report


def _loader_rate(ds, samples, pad: int, workers: int) -> float:
    from p4d.train.loader import ShardBatchSampler, make_loader

    loader = make_loader(ds, ShardBatchSampler(samples, batch_size=2, seed=0), pad_id=pad, num_workers=workers)
    it = iter(loader)
    next(it)  # worker start-up is not counted
    t0, n = time.perf_counter(), 0
    for batch in it:
        n += batch["size"]
    return n / (time.perf_counter() - t0) if n else float("nan")


def _timed_cpu(fn, cpu: list):
    """``fn`` wrapped to add its CPU seconds (``time.process_time``: all threads of this process) to ``cpu``."""
    def call():
        t0 = time.process_time()
        out = fn()
        cpu.append(time.process_time() - t0)
        return out
    return call


def run(size: str) -> BenchResult:
    if size not in SIZES:
        return BenchResult(name="train", size=size, shapes={},
                           status=f"not run: --size {size} needs the real L4P and NVILA-Lite sizes on a GPU; "
                                  f"sizes here: {', '.join(SIZES)}")
    videos, k_steps, repeats, student = SIZES[size]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_flush_denormal(True)  # denormals made CPU step times swing 0.6-17 s
    result = BenchResult(name="train", size=size, shapes={})
    with tempfile.TemporaryDirectory(prefix="p4d-bench-train-") as tmp:
        tmp = Path(tmp)
        conversations, store = _setup(tmp, videos)
        student = _student_cfg(student)

        # --- peak memory of each path, each in a fresh process (the cached one first, no teacher) ----
        mem = {mode: peak_memory(mode, conversations, store, tmp / f"mem-{mode}" / "run", student)
               for mode in ("cached", "online")}

        paths = Paths(conversations, store, tmp / "run", student, device)
        pairs = [[i, i + 1] for i in range(0, len(paths.samples) - 1, 2)]

        # --- cached step, no teacher alive -------------------------------------------------------
        state = paths.fresh()
        model = state[0]
        first = paths.cached_batch(state[3], state[4], pairs[0])
        paths.step(state, first)  # warm-up
        teachers = _teachers_alive()
        student_bytes = _bytes(model)

        # --- the teacher, resident for the online baseline ---------------------------------------
        from p4d.teacher.model import build_teacher

        paths.teacher = build_teacher(paths.store.spec.teacher["preset"], device=device)
        ratio = _params(paths.teacher) / _params(model)
        k = iter(range(10**6))
        cpu_cached, cpu_online = [], []
        cand, base = compare(
            _timed_cpu(lambda: paths.step(state, paths.cached_batch(state[3], state[4], pairs[next(k) % len(pairs)])),
                       cpu_cached),
            _timed_cpu(lambda: paths.step(state, paths.online_batch(state[3], state[4], pairs[next(k) % len(pairs)])),
                       cpu_online),
            repeats=repeats)
        cpu = {"CPU s/step cached": float(np.median(cpu_cached)), "CPU s/step online": float(np.median(cpu_online))}
        result.rows.append(Row(
            "train step: cached targets vs teacher online", "s/step", cand.median, base.median, goal=GOAL_STEP,
            spread=cand.spread, checks={"teacher never resident (cached)": teachers == 0},
            extra={**cpu, "resident MB cached": student_bytes / 2**20,
                   "resident MB online": (student_bytes + _bytes(paths.teacher)) / 2**20,
                   "teacher:student params": ratio}))

        # --- the same ratio predicted by the FLOP model at these sizes ----------------------------
        frames = paths.store.spec.num_frames
        text = int(first["input_ids"].shape[1]) - frames * model.cfg.tokens_per_frame  # padded length, as run
        predicted = step_flops(model.cfg, paths.store.spec.teacher["preset"], text_tokens=max(text, 0))
        # what the model leaves out, timed alone on one batch: the teacher input's decode, and the
        # teacher forward's own rate (the model assumes the student's FLOP/s)
        decode = time_fn(lambda: paths.online_teacher_input(pairs[0]), warmup=0, repeats=2)
        x = paths.online_teacher_input(pairs[0]).to(device)
        with torch.no_grad():
            forward = time_fn(lambda: paths.teacher(x), warmup=1, repeats=2)
        clips = len(pairs[0])
        result.rows.append(Row(
            "cached/online step ratio: measured vs the FLOP model at these sizes", "ratio",
            cand.median / base.median, predicted["ratio"], goal=GOAL_MODEL,
            extra={"CPU-time ratio": cpu["CPU s/step cached"] / cpu["CPU s/step online"],
                   "student GFLOP/sample": predicted["student TFLOP"] * 1e3,
                   "teacher GFLOP/clip": predicted["teacher TFLOP"] * 1e3,
                   "student GFLOP/s (cached step)": clips * predicted["student TFLOP"] * 1e3 / cand.median,
                   "teacher GFLOP/s (forward alone)": clips * predicted["teacher TFLOP"] * 1e3 / forward.median,
                   "teacher-input decode s/batch": decode.median,
                   # the same ratio from the parts timed alone: student step / (it + teacher forward + decode)
                   "ratio from the timed parts": cand.median / (cand.median + forward.median + decode.median)}))

        # --- peak memory rows ----------------------------------------------------------------------
        c, o = mem["cached"], mem["online"]
        teacher_mib = o["teacher MiB"]
        result.rows.append(Row(
            "peak memory per process: cached vs online (2 steps, fresh process each)", "MiB", c["peak MiB"],
            o["peak MiB"], goal=GOAL_MEMORY,
            checks={"teacher code never imported (cached)": not c["teacher imported"]},
            extra={"measure": "peak RSS (ru_maxrss) above the RSS after imports",
                   "online - cached MiB": o["peak MiB"] - c["peak MiB"], "teacher params MiB": teacher_mib,
                   "baseline RSS MiB": c["baseline MiB"],
                   **({"CUDA peak MiB cached": c["device peak MiB"], "CUDA peak MiB online": o["device peak MiB"]}
                      if c["device peak MiB"] is not None else {})}))

        # --- losses after K steps, same seed and batches -----------------------------------------
        finals = {}
        for name, make in (("cached", paths.cached_batch), ("online", paths.online_batch)):
            state = paths.fresh()
            for s in range(k_steps):
                terms = paths.step(state, make(state[3], state[4], pairs[s % len(pairs)]))
            finals[name] = terms
        result.rows.append(Row(f"LD after {k_steps} steps: cached vs online", "loss", finals["cached"]["ld"],
                               finals["online"]["ld"]))
        result.rows.append(Row(f"ED (sum of map terms) after {k_steps} steps: cached vs online", "loss",
                               ed_sum(finals["cached"]), ed_sum(finals["online"])))
        del paths.teacher
        paths.teacher = None
        gc.collect()

        # --- the real trainer: data-wait fraction; loader throughput ------------------------------
        from p4d.train.logs import read_log
        from p4d.train.trainer import main

        cfg = paths.cfg
        cfg.out = str(tmp / "trainer")
        cfg.optim.max_steps = max(10, k_steps)  # enough steps that one slow batch does not decide the row
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
            parts = ", ".join(f"{k} {v:.1f}" for k, v in e["terms TFLOP"].items())
            result.notes.append(
                f"paper-size estimate, {name}{' + LoRA' if lora else ''}: student {e['student TFLOP']:.1f} TFLOP per "
                f"sample ({e['tokens']} tokens: {parts}) vs L4P forward {e['teacher TFLOP']:.1f} TFLOP per clip -> "
                f"cached/online step ~{e['ratio']:.2f} at equal utilisation")
    result.notes.append(f"teacher:student parameters {ratio:.3f} here vs {PAPER_RATIO:.3f} in the paper "
                        "(L4P ~1.1 B : NVILA-Lite-8B ~8 B); both models randomly initialised")
    return result
