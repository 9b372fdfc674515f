"""``p4d bench distill``: does distillation teach the student the teacher's 4D perception, and does TPE
teach it time? Issue 29's goals at toy scale, on the tiny teacher (its shipped weights) and the tiny
student, split by video.

Setup (a temporary folder): synthetic H.264 videos of random duration (2-8 s) and frame rate (8-24 fps,
drawn independently, so neither the frame count nor the motion per frame gives the duration away) →
``p4d precompute`` with the ``tiny`` teacher (one uniform clip of N frames per video) → the numeric
temporal question of :mod:`p4d.eval.temporal` ("How many seconds have passed in the input video?",
answered with the duration to 0.1 s) over the *train* videos. The held-out videos are never trained on.
Every student is a real ``p4d train`` run (tiny preset, same seed, same data order).

(a) held-out clips, scored by :func:`p4d.eval.distill.run_distill` (train clips give the video-blind
    baseline's mean): 64 train + 16 held-out videos cached with the student at 224 px (6×6 tokens per
    frame against the teacher's 8×8; the tiny preset's 56 px gives 2×2, which left every map's residual r
    near 0). The P4D student (``--strategy p4d``, ``--loss ld+ed`` weighted by :data:`LOSS_WEIGHTS`,
    TPE) vs the probe control (``--strategy 4d-sft`` for the same steps, then ``--probe-from`` it: D_4DP
    alone on the frozen SFT-only student, as many steps, the same loss and weights) vs the video-blind
    baseline (residual r 0 by construction), 300 steps each. Per row: residual r for depth and motion,
    R² and token cosine of F_4D. Goals (issue 29): the P4D student's held-out residual r >= 0.5 for
    depth and motion, and >= the probe control's + 0.3.
(b) the numeric temporal task on its own videos and cache (:func:`temporal_scores`): 96 train + 32
    held-out videos with durations log-uniform in 1-16 s (a constant answer scores MRA ~21 %, against
    ~49 % on 2-8 s uniform, where 16 videos x 80 steps taught every student one answer), fps as above;
    SFT-only students (``--strategy 4d-sft``, 1,000 steps of 2 clips, lr 2e-3, tiny preset at 56 px) with time cue
    ``none`` | ``mark`` | ``prompt`` | ``tpe``, scored by MRA on the held-out ``make-temporal --numeric``
    items, beside the best constant (the train durations' median). Goal: TPE MRA >= 1.5x no-cue. The
    no-cue student is not blind: the frame count (d·fps, seen in the motion, maybe in the frames' index
    code) correlates with d over a 16x range of d and a 3x range of fps (docs/eval.md has the figures).
(c) cached vs online teacher: the same student, seed and batches trained from the cache and with the
    tiny teacher run online on the same frames (:class:`p4d.bench.train.Paths`; the trainer itself reads
    only the cache); the LD and ED curves step by step, their largest relative gap and the final ratio.

Each stage's wall and CPU time (``time.process_time``, every thread of this process) is in the notes.
CPU runs flush denormals to zero. Nothing downloads; ``--steps`` sets the training steps of (a) and (b)
(default: the plan's, 300 and 1,000).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from p4d.bench.harness import BenchResult, Goal, Row
from p4d.bench.train import ed_sum
from p4d.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    train_videos: int
    held_videos: int
    steps: int          # optimizer steps of every student of (a), and of the probe
    curve_steps: int    # (c): steps of the cached and of the online run
    image_size: int     # (a): the student's frames (px): 224 -> 6x6 tokens per frame against the teacher's 8x8
    temporal_train: int  # (b): its own train videos (durations log-uniform in TEMPORAL_DURATION_S)
    temporal_held: int   # (b): its held-out videos (the scored items)
    temporal_steps: int  # (b): optimizer steps of each time-cue student


SIZES = {"tiny": Plan(train_videos=64, held_videos=16, steps=300, curve_steps=8, image_size=224,
                      temporal_train=96, temporal_held=32, temporal_steps=1000)}
LR = 2e-3                     # the demo's rates: the tiny student learns in tens of steps
BATCH = 2
DURATION_S = (2.0, 8.0)       # (a), (c): uniform
TEMPORAL_DURATION_S = (1.0, 16.0)  # (b): log-uniform, so one constant answer scores poorly (MRA ~21 %)
TEMPORAL_LR = 2e-3
FPS = (8, 12, 16, 24)
VIDEO_SIZE = (96, 64)
#: (a)'s loss, P4D student and probe alike: LD + ED with each term weighted to count next to the SFT loss
#: on the tiny teacher's scales (the release's 0.01 / 0.1 / 0.001 / 0.01 / 1e-5 are set for L4P's: at those,
#: LD + ED were ~7 % of the loss at step 300 and the P4D student reached depth / motion r 0.53 / 0.58).
LOSS_WEIGHTS = {"ld_weight": 0.1, "depth_weight": 1.0, "flow_weight": 0.01, "motion_weight": 0.1, "camray_weight": 0.0}
GOAL_R = 0.5                  # held-out residual r of the P4D student, depth and motion
GOAL_MARGIN = 0.3             # ... above the probe control's
GOAL_TPE = Goal(">=", 1.5)    # TPE MRA / no-cue MRA
MAPS = ("depth", "motion")
TIME_CUES = ("none", "mark", "prompt", "tpe")


# ---- stage timing --------------------------------------------------------------------------------


class Stages:
    """Wall and CPU seconds per named stage, in order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    @contextmanager
    def __call__(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.rows.append((name, time.perf_counter() - w, time.process_time() - c))
            log.info("bench distill: %s %.1f s wall, %.1f s CPU", name, *self.rows[-1][1:])

    def notes(self) -> list[str]:
        total_w, total_c = sum(r[1] for r in self.rows), sum(r[2] for r in self.rows)
        return [f"stage {n}: {w:.1f} s wall, {c:.1f} s CPU" for n, w, c in self.rows] + [
            f"total: {total_w:.1f} s wall, {total_c:.1f} s CPU"]


# ---- data ----------------------------------------------------------------------------------------


def draw_duration(rng: np.random.Generator, durations: tuple[float, float], spacing: str = "uniform") -> float:
    """One duration in seconds from ``durations`` = (lo, hi): ``uniform``, or ``log``-uniform (log d uniform:
    as likely in 1-2 s as in 8-16 s)."""
    if spacing not in ("uniform", "log"):
        raise ConfigError(f"write_videos: spacing must be 'uniform' or 'log', found {spacing!r}")
    return float(rng.uniform(*durations) if spacing == "uniform" else np.exp(rng.uniform(*np.log(durations))))


def write_videos(root: Path, train: int, held: int, seed: int = 0, durations: tuple[float, float] = DURATION_S,
                 spacing: str = "uniform") -> tuple[list[Path], list[Path]]:
    """``root/train/t*.mp4`` and ``root/held/h*.mp4``: synthetic videos of a random duration in
    ``durations`` (seconds, drawn ``uniform`` or ``log``-uniform; at least 16 frames) and frame rate in
    :data:`FPS`, drawn independently (seeded)."""
    from p4d.video import write_synthetic_video

    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {"train": [], "held": []}
    for k in range(train + held):
        part = "train" if k < train else "held"
        fps = int(rng.choice(FPS))
        frames = max(16, round(draw_duration(rng, durations, spacing) * fps))
        path = root / part / f"{part[0]}{k:02d}.mp4"
        out[part].append(write_synthetic_video(path, num_frames=frames, fps=fps, size=VIDEO_SIZE, seed=1000 + k))
    return out["train"], out["held"]


def temporal_conversations(videos: list[Path], out: Path) -> tuple[Path, list[float]]:
    """One numeric temporal record per video (the prompt ``p4d eval`` shows for a numeric item, the
    probed duration to 0.1 s as the answer); returns (the JSONL, the durations)."""
    from p4d.eval.prompt import format_prompt
    from p4d.eval.temporal import QUESTION
    from p4d.video import probe

    records, durations = [], []
    for path in videos:
        duration = float(probe(path).duration)
        durations.append(duration)
        records.append({"id": path.stem, "video": str(path.resolve()), "conversations": [
            {"from": "human", "value": "<video>\n" + format_prompt(QUESTION, ())},
            {"from": "gpt", "value": f"{duration:.1f}"}]})
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return out, durations


def clips_of(store, videos: list[Path]) -> list[int]:
    """The store's clips of ``videos`` (by resolved path), in clip order."""
    from p4d.cache_schema import read_clips

    want = {str(p.resolve()) for p in videos}
    rows = {i for i, v in enumerate(store.videos) if str(Path(v.path).resolve()) in want}
    video = read_clips(store, list(range(store.num_clips)), fields=("video",))["video"]
    return [c for c in range(store.num_clips) if int(video[c]) in rows]


# ---- training runs -------------------------------------------------------------------------------


def student_file(root: Path, image_size: int) -> Path:
    """The tiny student at ``image_size`` px (a StudentConfig JSON for ``--model.config-file``)."""
    from p4d.train.model import student_preset

    tiny = student_preset("tiny")
    path = root / f"student-{image_size}.json"
    path.write_text(json.dumps(tiny.replace(vision={**tiny.vision, "image_size": image_size}).to_dict()))
    return path


def train_run(out: Path, conversations: Path, store: str, *, steps: int, strategy: str = "p4d",
              time_cue: str = "tpe", loss: str = "ld-only", probe_from: Path | None = None, export: bool = False,
              seed: int = 0, student: Path | None = None, lr: float = LR, weights: dict[str, float] | None = None):
    """One real ``p4d train`` run of the tiny student (CPU, logged at the end only; ``lr`` for every
    trained part); ``student``: a StudentConfig JSON instead of the tiny preset; ``weights``: ``--loss.*``
    weights (default: the student's)."""
    from p4d.train.config import resolve_config
    from p4d.train.trainer import main

    overrides = {
        "out": str(out), "data": {"conversations": str(conversations), "cache": store, "batch_size": BATCH},
        "model": {"preset": "tiny"} if student is None else {"config_file": str(student)}, "recipe": {"strategy": strategy, "time_cue": time_cue, "loss": loss},
        "optim": {"max_steps": steps, "lr_llm": lr, "lr_projector": lr, "lr_d4dp": lr, "warmup_steps": 2},
        "log": {"progress": False, "tensorboard": False, "every": steps},
        "checkpoint": {"export": export}, "runtime": {"seed": seed, "device": "cpu"}, "loss": dict(weights or {})}
    if probe_from is not None:
        overrides["probe_from"] = str(probe_from)
    return main(resolve_config(overrides=overrides))


def distill_rows(store: str, runs: dict[str, Path], held: list[int], train: list[int]) -> dict[str, dict]:
    """{name: eval-distill row} over the held-out clips; the baseline's row under its own name."""
    from p4d.eval.distill import BASELINE, DistillConfig, run_distill

    rows: dict[str, dict] = {}
    spec = lambda cs: ",".join(map(str, cs))  # noqa: E731
    for name, run in runs.items():
        result = run_distill(DistillConfig(store=store, run=str(run), clips=spec(held), baseline_clips=spec(train),
                                           device="cpu", dtype="float32"))
        rows.setdefault(BASELINE, result.rows[0])
        rows[name] = result.rows[-1]
    return rows


def temporal_mra(export: Path, items: Path, out: Path, cache: str, frames: int) -> float:
    """Held-out MRA (percent) of an exported student on the numeric temporal items."""
    from p4d.eval.run import EvalConfig, run_eval

    result = run_eval(EvalConfig(bench=items, out=out, frames=frames, model_dir=export, cache=cache, device="cpu",
                                 dtype="float32", progress=False, seed=0))
    return float(result.summary.column("Avg").accuracy)


def constant_mra(train_durations: list[float], held_items: Path) -> tuple[float, float]:
    """(the train durations' median, its MRA in percent on the held-out items): the best a student
    blind to time does with one answer."""
    from p4d.eval.items import load_bench
    from p4d.eval.scoring import mra

    guess = round(float(np.median(train_durations)), 1)
    items = load_bench(held_items).items
    return guess, 100.0 * float(np.mean([mra(guess, float(i.answer)) for i in items]))


# ---- (c) cached vs online ------------------------------------------------------------------------


def loss_curves(conversations: Path, store: str, out: Path, steps: int) -> dict[str, list[dict]]:
    """{"cached" | "online": the loss terms of each of ``steps`` steps}: the same tiny student, seed and
    batches (pairs of clips in order, cycled), targets from the cache or from the teacher run now."""
    from p4d.bench.train import Paths, _student_cfg
    from p4d.teacher.model import build_teacher

    out.parent.mkdir(parents=True, exist_ok=True)
    paths = Paths(conversations, store, out, _student_cfg({"llm": {}, "vision": {}}), torch.device("cpu"))
    pairs = [[i, i + 1] for i in range(0, len(paths.samples) - 1, 2)]
    curves = {}
    for name in ("cached", "online"):
        if name == "online":
            paths.teacher = build_teacher(paths.store.spec.teacher["preset"], device=paths.dist.device)
        make = paths.cached_batch if name == "cached" else paths.online_batch
        state = paths.fresh()
        curves[name] = [paths.step(state, make(state[3], state[4], pairs[s % len(pairs)])) for s in range(steps)]
    paths.teacher = None
    return curves


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


# ---- the benchmark -------------------------------------------------------------------------------


@dataclass
class Setup:
    """The bench's data: videos split by video, the tiny teacher's cache, the temporal task."""

    root: Path
    store: str
    student: Path | None     # a StudentConfig JSON (another image size than the tiny preset's), or None
    train_videos: list[Path]
    held_videos: list[Path]
    train_clips: list[int]
    held_clips: list[int]
    conversations: Path      # the numeric temporal question over the train videos
    durations: list[float]   # of the train videos
    held_items: Path         # `make-temporal --numeric` over the held-out videos
    frames: int              # N of the cached clips


def prepare(root: Path, train_videos: int, held_videos: int, image_size: int | None = None,
            durations: tuple[float, float] = DURATION_S, spacing: str = "uniform") -> Setup:
    """Videos, ``p4d precompute`` with the tiny teacher, conversations and held-out items under ``root``;
    ``image_size``: the student's (default the tiny preset's), which the cache's teacher input follows;
    ``durations``, ``spacing``: of the videos (:func:`write_videos`)."""
    from p4d.cache_schema import open_store
    from p4d.eval.temporal import make_temporal
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute
    from p4d.train.model import student_preset

    train_v, held_v = write_videos(root / "videos", train_videos, held_videos, durations=durations, spacing=spacing)
    store = str(root / "cache.zarr")
    run_precompute(PrecomputeConfig(videos=str(root / "videos"), store=store, teacher="tiny", policy="uniform",
                                    clips_per_shard=4, workers=1, device="cpu", progress=False,
                                    student_size=image_size or student_preset("tiny").image_size))
    opened = open_store(store)
    conv, durations = temporal_conversations(train_v, root / "train.jsonl")
    items = make_temporal(root / "videos" / "held", root / "held-temporal.jsonl", numeric=True, progress=False).path
    return Setup(root=root, store=store, student=None if image_size is None else student_file(root, image_size),
                 train_videos=train_v, held_videos=held_v,
                 train_clips=clips_of(opened, train_v), held_clips=clips_of(opened, held_v), conversations=conv,
                 durations=durations, held_items=items, frames=opened.spec.num_frames)


P4D, PROBE = "P4D student", "probe control (SFT-only + D_4DP)"


def held_out_scores(s: Setup, steps: int, stages: Stages | None = None,
                    weights: dict[str, float] = LOSS_WEIGHTS) -> dict[str, dict]:
    """(a): the P4D student (``--loss ld+ed`` with ``weights``), the SFT-only (tpe) student and its probe
    (D_4DP alone, the same loss and weights) trained ``steps`` steps each under ``s.root``;
    {P4D, PROBE, eval distill's BASELINE: its row over the held-out clips}."""
    stages = stages or Stages()
    with stages(f"train P4D student ({steps} steps)"):
        train_run(s.root / "p4d", s.conversations, s.store, steps=steps, strategy="p4d", loss="ld+ed",
                  weights=weights, student=s.student)
    with stages(f"train SFT-only student, time cue tpe ({steps} steps)"):
        train_run(s.root / "sft-tpe", s.conversations, s.store, steps=steps, strategy="4d-sft", student=s.student)
    with stages(f"train probe on the frozen SFT-only (tpe) student ({steps} steps)"):
        train_run(s.root / "probe", s.conversations, s.store, steps=steps, probe_from=s.root / "sft-tpe",
                  loss="ld+ed", weights=weights, student=s.student)
    with stages("eval distill on the held-out clips"):
        return distill_rows(s.store, {P4D: s.root / "p4d", PROBE: s.root / "probe"}, s.held_clips, s.train_clips)


def temporal_scores(root: Path, plan: Plan, steps: int, stages: Stages | None = None,
                    ) -> tuple[dict[str, float], tuple[float, float], Setup]:
    """(b) under ``root``: its own ``plan.temporal_train`` + ``plan.temporal_held`` videos (durations
    log-uniform in :data:`TEMPORAL_DURATION_S`) cached at the tiny preset's image size, one SFT-only
    student per time cue (``steps`` steps, lr :data:`TEMPORAL_LR`, same seed and data order);
    returns ({cue: held-out MRA %}, (best constant, its MRA %), the Setup)."""
    stages = stages or Stages()
    with stages("(b) videos + precompute"):
        s = prepare(root, plan.temporal_train, plan.temporal_held, durations=TEMPORAL_DURATION_S, spacing="log")
    for cue in TIME_CUES:
        with stages(f"(b) train SFT-only student, time cue {cue} ({steps} steps)"):
            train_run(root / f"sft-{cue}", s.conversations, s.store, steps=steps, strategy="4d-sft", time_cue=cue,
                      export=True, student=s.student, lr=TEMPORAL_LR)
    with stages(f"(b) eval numeric temporal task ({len(TIME_CUES)} students)"):
        mra = {cue: temporal_mra(root / f"sft-{cue}" / "export", s.held_items, root / f"eval-{cue}.jsonl", s.store,
                                 s.frames) for cue in TIME_CUES}
    return mra, constant_mra(s.durations, s.held_items), s


def run(size: str, steps: int | None = None) -> BenchResult:
    if size not in SIZES:
        return BenchResult(name="distill", size=size, shapes={},
                           status=f"not run: sizes {', '.join(SIZES)} (the tiny teacher and student on the CPU)")
    from p4d.eval.distill import BASELINE

    plan = SIZES[size]
    k = steps or plan.steps
    torch.set_flush_denormal(True)
    stages = Stages()
    result = BenchResult(name="distill", size=size, shapes={})
    with tempfile.TemporaryDirectory(prefix="p4d-bench-distill-") as tmp:
        tmp = Path(tmp)
        with stages("videos + precompute"):
            s = prepare(tmp, plan.train_videos, plan.held_videos, image_size=plan.image_size)
        train_c, held_c, train_v, held_v = s.train_clips, s.held_clips, s.train_videos, s.held_videos

        # (a) P4D vs probe control vs video-blind ------------------------------------------------
        scored = held_out_scores(s, k, stages)
        p4d, probe, blind = scored[P4D], scored[PROBE], scored[BASELINE]
        for m in MAPS:
            r, c = p4d[f"{m}_r"], probe[f"{m}_r"]
            result.rows.append(Row(
                f"(a) held-out {m} residual r: P4D student vs probe control", "r", r, c,
                extra={"video-blind baseline r": blind[f"{m}_r"], f"P4D {m} R2": p4d[f"{m}_r2"],
                       f"probe {m} R2": probe[f"{m}_r2"], f"goal r >= {GOAL_R}": _verdict(r >= GOAL_R),
                       f"goal P4D - probe >= {GOAL_MARGIN}": _verdict(r - c >= GOAL_MARGIN)}))
        result.rows.append(Row("(a) held-out F_4D token cosine: P4D student vs probe control", "cos", p4d["f4d_cos"],
                               probe["f4d_cos"], extra={"video-blind baseline cos": blind["f4d_cos"],
                                                        "P4D F_4D r": p4d["f4d_r"], "probe F_4D r": probe["f4d_r"]}))
        result.rows.append(Row("(a) held-out F_4D R2 vs the video-blind baseline: P4D student vs probe control", "R2",
                               p4d["f4d_r2"], probe["f4d_r2"]))

        # (b) time cues on the numeric temporal task: its own videos, cache and students -------------
        kb = steps or plan.temporal_steps
        mra, (guess, const), t = temporal_scores(tmp / "temporal", plan, kb, stages)
        result.rows.append(Row("(b) held-out MRA, numeric temporal task: TPE vs no time cue", "MRA %", mra["tpe"],
                               mra["none"], goal=GOAL_TPE,
                               extra={"mark": mra["mark"], "prompt": mra["prompt"],
                                      f"best constant ({guess} s)": const}))
        for cue in ("mark", "prompt"):
            result.rows.append(Row(f"(b) held-out MRA: time cue {cue} vs none", "MRA %", mra[cue], mra["none"]))
        result.rows.append(Row(f"(b) held-out MRA: TPE vs the best constant ({guess} s)", "MRA %", mra["tpe"], const))

        # (c) cached vs online ---------------------------------------------------------------------
        with stages(f"cached vs online teacher ({plan.curve_steps} steps each)"):
            curves = loss_curves(t.conversations, t.store, tmp / "curves" / "run", plan.curve_steps)
        ld_c, ld_o = [c["ld"] for c in curves["cached"]], [c["ld"] for c in curves["online"]]
        ed_c, ed_o = [ed_sum(c) for c in curves["cached"]], [ed_sum(c) for c in curves["online"]]
        gap = lambda a, b: float(max(abs(x - y) / abs(y) for x, y in zip(a, b)))  # noqa: E731
        result.rows.append(Row(f"(c) LD after {plan.curve_steps} steps: cached vs online teacher", "loss", ld_c[-1],
                               ld_o[-1], extra={"largest step gap": gap(ld_c, ld_o),
                                                "LD cached": [round(x, 5) for x in ld_c],
                                                "LD online": [round(x, 5) for x in ld_o]}))
        result.rows.append(Row(f"(c) ED after {plan.curve_steps} steps: cached vs online teacher", "loss", ed_c[-1],
                               ed_o[-1], extra={"largest step gap": gap(ed_c, ed_o)}))

    goals = [
        *(f"GOAL P4D held-out {m} residual r >= {GOAL_R}: {_verdict(p4d[f'{m}_r'] >= GOAL_R)} "
          f"(r = {p4d[f'{m}_r']:.3f})" for m in MAPS),
        *(f"GOAL P4D {m} r above the probe control by >= {GOAL_MARGIN}: "
          f"{_verdict(p4d[f'{m}_r'] - probe[f'{m}_r'] >= GOAL_MARGIN)} "
          f"({p4d[f'{m}_r']:.3f} vs {probe[f'{m}_r']:.3f})" for m in MAPS),
        f"GOAL TPE MRA >= 1.5x no-cue: {GOAL_TPE.check(mra['tpe'] / mra['none'] if mra['none'] else float('nan'))} "
        f"({mra['tpe']:.1f} vs {mra['none']:.1f})",
    ]
    result.notes += goals
    result.notes.append(f"split by video: {len(train_c)} train clips (students, probe, baseline mean), {len(held_c)} "
                        f"held-out clips (scored); every student: tiny preset at {plan.image_size} px, seed 0, {k} steps "
                        f"of batch {BATCH}, lr {LR:g}; the probe: D_4DP alone, {k} steps on the frozen SFT-only (tpe) student")
    result.notes.append("loss of the P4D student and the probe: --loss ld+ed, weights "
                        + ", ".join(f"{k.removesuffix('_weight')} {v:g}" for k, v in LOSS_WEIGHTS.items()))
    result.notes.append("residual r: Pearson r of (prediction - baseline mean) and (target - baseline mean) over the "
                        "held-out clips (p4d eval distill); depth in log units, motion as probability; the video-blind "
                        "baseline's r is 0 by construction")
    result.notes.append(f"(b) its own videos: {len(t.train_videos)} train, {len(t.held_videos)} held out (the items), "
                        f"durations log-uniform {TEMPORAL_DURATION_S[0]:g}-{TEMPORAL_DURATION_S[1]:g} s; students "
                        f"SFT-only (--strategy 4d-sft) so the time cue is the only difference, {kb} steps of batch "
                        f"{BATCH}, lr {TEMPORAL_LR:g}; best constant: the train durations' median")
    result.notes += stages.notes()
    result.shapes = {"teacher": "tiny (shipped weights)", "student": f"tiny at {plan.image_size} px (a), "
                     "56 px (b), (c)", "frames N": s.frames,
                     "train videos": len(train_v), "held-out videos": len(held_v), "steps": k,
                     "(b) train videos": len(t.train_videos), "(b) held-out videos": len(t.held_videos),
                     "(b) steps": kb,
                     "(b) durations s": f"{TEMPORAL_DURATION_S[0]:g}-{TEMPORAL_DURATION_S[1]:g} log-uniform",
                     "curve steps": plan.curve_steps, "durations s": f"{DURATION_S[0]:g}-{DURATION_S[1]:g}",
                     "fps": "/".join(map(str, FPS))}
    return result
