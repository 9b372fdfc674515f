"""``p4d eval distill``: how well a student's F̂_4D and P̂_m = D_m(F̂_4D) match the teacher's cached
targets over many clips, beside a video-blind baseline (paper Fig. 5 as numbers).

The baseline predicts, for every clip, the per-element mean of the targets over the *baseline clips*
(by default the store's done clips not scored, i.e. the student's training clips): F̄_4D
(taps, N', h', w', c') and P̄_m (N, H, W, C). It knows nothing about the video, so a student that
only learnt the cache's average pattern scores like it. Per row (baseline, then the student at each
checkpoint step):

- ``f4d_cos``: mean over clips and tokens of cos(F̂_4D, F_4D) per c'-vector;
- ``<x>_r2``: 1 − Σ(x̂ − x)² / Σ(x̄ − x)² pooled over the scored clips (0 for the baseline by construction);
- ``<x>_r``: residual correlation, Pearson r of (x̂ − x̄) and (x − x̄) pooled over the scored clips: the
  video-specific part (0 for the baseline, whose residual is identically 0);
- depth ``silog`` (√(mean g² − (mean g)²), g = log d̂ − log d, per clip) and ``abs_rel``; flow ``epe`` (px,
  frames 1..N−1); motion ``iou`` (σ > 0.5); camray ``dir_deg``: :func:`p4d.inspect.compare.map_errors`
  per clip, averaged over clips.

x is compared in these units: F_4D as stored, log-depth, flow (frames 1..N−1), motion probability
σ(logit), camray (d, m). Students are loaded and run as ``p4d inspect --compare`` does
(:mod:`p4d.inspect.compare`); nothing here loads the teacher.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from p4d.errors import ConfigError

log = logging.getLogger(__name__)

BASELINE = "video-blind (train mean)"
MAP_COLUMNS = {"depth": ("silog", "abs_rel"), "flow": ("epe",), "motion": ("iou",), "camray": ("dir_deg",)}


@dataclass(kw_only=True)
class DistillConfig:
    store: str                       # STORE: the cache the student was trained from
    run: str                         # --model: a `p4d train` run folder or one checkpoint folder
    clips: str | None = None         # --clips: clips scored ("0-4,7", "all"; default all done clips)
    baseline_clips: str | None = None  # --baseline-clips: the train mean's clips (default: done clips not scored)
    steps: str | None = None         # --steps: "all", "100,200" (default: the latest checkpoint)
    device: str | None = None
    dtype: str | None = None
    video_root: str | None = None
    progress: bool = False


@dataclass(kw_only=True)
class DistillResult:
    store: str
    run: str
    clips: list[int]
    baseline_clips: list[int]
    in_sample: bool                  # the baseline's mean was taken over the scored clips themselves
    rows: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"store": self.store, "run": self.run, "clips": self.clips, "baseline_clips": self.baseline_clips,
                "baseline_in_sample": self.in_sample, "rows": self.rows}


# --- metrics -----------------------------------------------------------------------------------


def comparable(modality: str, x: np.ndarray) -> np.ndarray:
    """The units a map is compared in for r and R² (module docstring), float64."""
    from p4d.inspect.colors import sigmoid

    x = np.asarray(x, np.float64)
    if modality == "depth":
        return np.log(np.maximum(x, 1e-6))
    if modality == "flow":
        return x[1:]
    if modality == "motion":
        return sigmoid(x)
    return x


class ResidualFit:
    """Streamed sums for R² against the baseline and the residual correlation of one quantity."""

    def __init__(self) -> None:
        self.sse = self.sse_base = 0.0
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, pred: np.ndarray, target: np.ndarray, mean: np.ndarray) -> None:
        x, y = (pred - mean).ravel(), (target - mean).ravel()
        d = (pred - target).ravel()  # same layout as y: the baseline's SSE equals SSE(baseline) exactly
        self.sse += float(d @ d)
        self.sse_base += float(y @ y)
        self.n += x.size
        self.sx, self.sy = self.sx + float(x.sum()), self.sy + float(y.sum())
        self.sxx, self.syy, self.sxy = self.sxx + float(x @ x), self.syy + float(y @ y), self.sxy + float(x @ y)

    @property
    def r2(self) -> float:
        return 1.0 - self.sse / self.sse_base if self.sse_base > 0 else float("nan")

    @property
    def r(self) -> float:
        """Pearson r of the residuals; 0 when the prediction's residual is constant (the baseline)."""
        if not self.n:
            return float("nan")
        cxx = self.sxx - self.sx ** 2 / self.n
        cyy = self.syy - self.sy ** 2 / self.n
        cxy = self.sxy - self.sx * self.sy / self.n
        if cxx <= 1e-12 * max(self.sxx, 1e-300) or cyy <= 0:
            return 0.0
        return float(cxy / np.sqrt(cxx * cyy))


def token_cosine(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean cosine between the c'-vectors of two F_4D (taps, N', h', w', c')."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    den = np.maximum(np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1), 1e-12)
    return float(np.mean((p * t).sum(-1) / den))


def silog(pred_depth: np.ndarray, depth: np.ndarray) -> float:
    """Scale-invariant log error √(mean g² − (mean g)²), g = log d̂ − log d over d, d̂ > 0."""
    p, t = np.asarray(pred_depth, np.float64), np.asarray(depth, np.float64)
    ok = (p > 0) & (t > 0)
    if not ok.any():
        return float("nan")
    g = np.log(p[ok]) - np.log(t[ok])
    return float(np.sqrt(max(np.mean(g ** 2) - np.mean(g) ** 2, 0.0)))


def score_row(name: str, step: int | None, pairs, means: dict[str, np.ndarray]) -> dict:
    """One row from ``pairs``: an iterable of (prediction, target) dicts with "f4d" and map keys."""
    from p4d.inspect.compare import map_errors

    fits: dict[str, ResidualFit] = {}
    per_clip: dict[str, list[float]] = {}
    for pred, target in pairs:
        per_clip.setdefault("f4d_cos", []).append(token_cosine(pred["f4d"], target["f4d"]))
        for key in target:
            if key not in pred:
                continue
            to = (lambda x: np.asarray(x, np.float64)) if key == "f4d" else (lambda x, k=key: comparable(k, x))
            fits.setdefault(key, ResidualFit()).add(to(pred[key]), to(target[key]), to(means[key]))
        maps_t = {k: v for k, v in target.items() if k != "f4d" and k in pred}
        for m, vals in map_errors(maps_t, {k: pred[k] for k in maps_t}).items():
            for k, v in vals.items():
                if k in MAP_COLUMNS.get(m, ()):
                    per_clip.setdefault(f"{m}_{k}", []).append(v)
        if "depth" in maps_t:
            per_clip.setdefault("depth_silog", []).append(silog(pred["depth"], target["depth"]))
    row: dict = {"name": name, "step": step}
    for key, values in per_clip.items():
        row[key] = float(np.nanmean(values))
    for key, fit in fits.items():
        row[f"{key}_r2"], row[f"{key}_r"] = fit.r2, fit.r
    return row


# --- the command -------------------------------------------------------------------------------


def _clip_lists(store, clips: str | None, baseline_clips: str | None) -> tuple[list[int], list[int], bool]:
    from p4d.inspect.clipdata import done_clips, parse_clip_spec

    done = done_clips(store)
    if not done:
        raise ConfigError(f"STORE {store.url}: no done clips to score")
    scored = parse_clip_spec(clips, store.num_clips, flag="--clips")
    scored = done if scored is None else scored
    bad = sorted(set(scored) - set(done))
    if bad:
        raise ConfigError(f"--clips: clips {bad} are not done in {store.url} (done: {done})")
    if baseline_clips is None:
        base = [c for c in done if c not in set(scored)]
    else:
        base = parse_clip_spec(baseline_clips, store.num_clips, flag="--baseline-clips") or done
        bad = sorted(set(base) - set(done))
        if bad:
            raise ConfigError(f"--baseline-clips: clips {bad} are not done in {store.url} (done: {done})")
    in_sample = not base
    if in_sample:
        log.warning("every done clip is scored: the video-blind baseline's mean is taken over the scored clips "
                    "themselves (in-sample, flattering it); pass --clips with held-out clips")
        base = list(scored)
    return list(scored), base, in_sample


def _target_mean(store, clips: Sequence[int]) -> dict[str, np.ndarray]:
    from p4d.cache_schema import read_clip

    sums: dict[str, np.ndarray] = {}
    for c in clips:
        data = read_clip(store, int(c))
        for key in ("f4d", *store.spec.modalities):
            sums[key] = sums.get(key, 0.0) + np.asarray(data[key], np.float64)
    return {k: (v / len(clips)).astype(np.float32) for k, v in sums.items()}


def run_distill(cfg: DistillConfig) -> DistillResult:
    """Score the baseline and each chosen checkpoint of ``cfg.run`` over the scored clips."""
    from p4d.cache_schema import open_store
    from p4d.inspect.clipdata import load_clip
    from p4d.inspect.compare import load_store_heads, maps_from_f4d, open_run
    from p4d.inspect.run import parse_steps
    from p4d.train.model.placement import resolve_placement

    want_steps = parse_steps(cfg.steps)
    device, dtype = resolve_placement(cfg.device, cfg.dtype)
    store = open_store(cfg.store)
    run = open_run(cfg.run, cache=store.url, device=device, dtype=dtype)
    steps = [run.steps[-1]] if want_steps is False else (list(run.steps) if want_steps is None else want_steps)
    missing = sorted(set(steps) - set(run.steps))
    if missing:
        raise ConfigError(f"--steps: run {run.url} has no checkpoints at steps {missing} (saved: {run.steps})")
    clips, base_clips, in_sample = _clip_lists(store, cfg.clips, cfg.baseline_clips)
    means = _target_mean(store, base_clips)
    data = [load_clip(store, c, video_root=cfg.video_root, flag="--clips") for c in clips]
    targets = [{"f4d": d.f4d, **d.maps} for d in data]
    result = DistillResult(store=store.url, run=run.url, clips=clips, baseline_clips=base_clips, in_sample=in_sample)
    result.rows.append(score_row(BASELINE, None, ((means, t) for t in targets), means))
    heads = load_store_heads(store)
    modalities = store.spec.modalities
    for step in steps:
        predict = run.predictor(step)

        def pairs(predict=predict):
            for d, t in zip(data, targets):
                f4d_hat = predict(d.frames, d.timestamp)
                yield {"f4d": f4d_hat, **maps_from_f4d(heads, f4d_hat, modalities)}, t

        result.rows.append(score_row("student", step, pairs(), means))
        log.info("step %d scored over %d clips", step, len(clips))
    return result


# --- output ------------------------------------------------------------------------------------


def table_columns(rows: Sequence[dict]) -> list[str]:
    """The metric columns present, in a fixed order: F_4D, then per map r, R², then errors."""
    order = ["f4d_cos", "f4d_r2", "f4d_r"]
    for m in ("depth", "flow", "motion", "camray"):
        order += [f"{m}_r", f"{m}_r2"]
    for m, names in MAP_COLUMNS.items():
        order += [f"{m}_{k}" for k in names]
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    return [c for c in order if c in present]


def format_distill_table(result: DistillResult) -> str:
    """Markdown table: one row per baseline / student step, one column per metric."""
    cols = table_columns(result.rows)
    head = ["model", "step", *cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in result.rows:
        step = "" if row["step"] is None else str(row["step"])
        cells = [f"{row[c]:.4g}" if c in row and row[c] == row[c] else "n/a" for c in cols]
        lines.append("| " + " | ".join([row["name"], step, *cells]) + " |")
    note = (" (in-sample: the baseline's mean includes the scored clips)" if result.in_sample else "")
    lines.append("")
    lines.append(f"{len(result.clips)} clips scored {result.clips}; baseline mean over {len(result.baseline_clips)} "
                 f"clips{note}. r: residual correlation after subtracting the baseline mean (video-specific); "
                 "R2: 1 - SSE/SSE(baseline); depth in log units, motion as probability.")
    return "\n".join(lines)


def write_distill_json(result: DistillResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1, allow_nan=True) + "\n", encoding="utf-8")
    return path
