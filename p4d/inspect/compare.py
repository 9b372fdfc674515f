"""Teacher maps vs the student's P̂_m for the same clip, and P̂_depth over training steps.

The student's maps are P̂_m = D_m(F̂_4D) (Eq. 4): the student predicts F̂_4D (taps, N', h', w',
c') from the frames and timestamps, and the store's frozen D_m heads (``heads.safetensors``,
the same weights the student trains against) decode it. Nothing here loads the teacher.

- :func:`map_errors`: per-modality error numbers of student vs teacher maps.
- :func:`compare_panels`: frame | teacher | student for each modality (student in the teacher's
  colour scale), error numbers in the title.
- :func:`steps_panels`: frame | teacher depth | P̂_depth at each checkpoint step (paper Fig. 5).
- :func:`open_run`: a ``p4d train`` run's checkpoints (``RUN/checkpoints/step-K``, loaded with
  :func:`p4d.train.checkpoint.load_checkpoint_model`) as F̂_4D predictors; :func:`student_f4d`
  runs one p4d student (E_v + TPE + E_p + LLM, then D_4DP on the video tokens' hidden states).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from p4d.cache_schema import CacheStore
from p4d.errors import CheckpointError, ConfigError
from p4d.inspect.clipdata import ClipData
from p4d.inspect.colors import (
    depth_range,
    depth_to_rgb,
    flow_to_rgb,
    motion_color,
    motion_overlay,
    ray_directions_rgb,
    sigmoid,
    upsample_nearest,
)
from p4d.inspect.camera import render_camera_plot
from p4d.inspect.colors import colorbar
from p4d.inspect.panels import (CAMERA_PLOT_SIZE, Panels, captioned, depth_tiles, flow_tiles, motion_legend,
                                notice_tile, row_labels)

ERROR_CMAP = "magma"  # per-pixel error maps: black = no error, bright = the legend's upper end


def pixel_errors(teacher: dict[str, np.ndarray], student: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-pixel errors, the same quantities as :func:`map_errors` before averaging: depth
    |d̂ − d| / d (N, H, W); flow ‖f̂ − f‖₂ px (N, H, W; frame 0 NaN); motion |σ(ŝ) − σ(s)| (N, H, W);
    camray angle between ray directions in degrees (N, h_p, w_p)."""
    out = {}
    for m in teacher:
        if m not in student:
            continue
        t, s = np.asarray(teacher[m], np.float64), np.asarray(student[m], np.float64)
        if m == "depth":
            with np.errstate(divide="ignore", invalid="ignore"):
                out[m] = np.where(t[..., 0] > 0, np.abs(s[..., 0] - t[..., 0]) / t[..., 0], np.nan)
        elif m == "flow":
            epe = np.linalg.norm(s - t, axis=-1)
            epe[0] = np.nan
            out[m] = epe
        elif m == "motion":
            out[m] = np.abs(sigmoid(s[..., 0]) - sigmoid(t[..., 0]))
        elif m == "camray":
            dt, ds = t[..., :3], s[..., :3]
            cos = (dt * ds).sum(-1) / np.maximum(np.linalg.norm(dt, axis=-1) * np.linalg.norm(ds, axis=-1), 1e-12)
            out[m] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return out


#: unit of each per-pixel error (:func:`pixel_errors`)
ERROR_UNITS = {"depth": "rel.", "flow": "px", "motion": "prob.", "camray": "deg"}
#: the error colorbar runs from 0 to this percentile of the clip's finite per-pixel errors
ERROR_PERCENTILE = 99.0


def error_scale(err: np.ndarray, percentile: float = ERROR_PERCENTILE) -> float:
    """Top of the error colour scale: the ``percentile`` of the finite errors of the clip (errors
    above it are clipped); 1e-6 when they are all zero (the map is then black)."""
    vals = np.asarray(err, np.float64)
    vals = vals[np.isfinite(vals)]
    top = float(np.percentile(vals, percentile)) if vals.size else 0.0
    return top if top > 0 else 1e-6


def error_tiles(m: str, err: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """(tiles (N, H, W, 3), legend, top) of a per-pixel error map on the ERROR_CMAP scale
    [0, top], top = :func:`error_scale` (the clip's 99th percentile), written on the legend."""
    unit = ERROR_UNITS[m]
    top = error_scale(err)
    tiles = depth_to_rgb(np.nan_to_num(err, nan=0.0), 0.0, top, cmap=ERROR_CMAP)
    if tiles.shape[1:3] != size:
        tiles = upsample_nearest(tiles, *size)
    if m == "flow":
        tiles[0] = notice_tile(size[0], size[1], "no flow (frame 0)")
    legend = captioned(f"{m} error per pixel ({unit}); bar = 0..p{ERROR_PERCENTILE:g} of this clip, clipped",
                       colorbar(200, 14, ERROR_CMAP), under=("0", f"{top:.3g} {unit}"))
    return tiles, legend, top

#: F̂_4D predictor: (frames (N, H, W, 3) uint8, timestamps (N,) s) → (taps, N', h', w', c').
F4DPredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


class StudentRun(Protocol):
    """A trainer run as inspect needs it: the saved checkpoint steps, and F̂_4D from any of them."""

    url: str
    steps: list[int]

    def predictor(self, step: int | None = None) -> F4DPredictor:
        """F̂_4D predictor of checkpoint ``step`` (None: the latest)."""
        ...


#: The user turn after the video block when running the student for F̂_4D. The LLM is causal and
#: the video block comes first, so the video tokens' hidden states do not depend on it.
PROMPT = "Describe the video."


@dataclass(kw_only=True)
class CheckpointRun:
    """A ``p4d train`` run folder (``RUN/checkpoints/step-K``) or one checkpoint folder: its saved
    ``steps`` and, per step, an F̂_4D predictor built from that checkpoint (loaded on first use;
    ``cache`` is the store whose D_m the student is rebuilt with; the student runs on ``device`` in
    ``dtype``, a name of ``p4d.train.model.config.DTYPES``)."""

    url: str
    folders: dict[int, Path]
    cache: str | None = None
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def steps(self) -> list[int]:
        return sorted(self.folders)

    def predictor(self, step: int | None = None) -> F4DPredictor:
        from p4d.train.checkpoint import load_checkpoint_model

        step = self.steps[-1] if step is None else step
        if step not in self.folders:
            raise ConfigError(f"--steps: run {self.url} has no checkpoint at step {step} (saved: {self.steps})")
        from p4d.train.model.config import DTYPES

        model, _ = load_checkpoint_model(self.folders[step], cache=self.cache, device=self.device)
        model.to(DTYPES[self.dtype])  # inference only: trainable fp32 master weights and frozen parts alike
        return lambda frames, timestamps: student_f4d(model, frames, timestamps)


def open_run(run: str, *, cache: str | None = None, device: str = "cpu", dtype: str = "float32") -> CheckpointRun:
    """The student run at ``run`` (the ``--compare`` argument): a ``p4d train`` output folder
    holding ``checkpoints/step-K`` folders, or one such folder. Only complete checkpoints (with
    ``meta.json``) count. CheckpointError naming ``--compare`` if there is none."""
    from p4d.train.checkpoint import META, STEP_DIR, list_checkpoints, read_meta

    path = Path(run)
    if (path / META).is_file():
        folders = {int(read_meta(path).get("step", 0)): path}
    else:
        folders = {int(STEP_DIR.match(p.name).group(1)): p for p in list_checkpoints(path)}
    if not folders:
        raise CheckpointError(
            f"--compare {run}: no student checkpoint there (expected a `p4d train` run folder holding "
            f"checkpoints/step-K/{META}, or one step-K folder)"
        )
    return CheckpointRun(url=str(run), folders=folders, cache=cache, device=device, dtype=dtype)


def student_f4d(model, frames: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """F̂_4D = D_4DP(F_hidden) of a p4d student for one clip: frames (N, H, W, 3) uint8, timestamps
    (N,) seconds → (taps, N', h', w', c') float32. The student sees the frames with its own TPE."""
    import torch

    from p4d.train.model import encode_chat

    if getattr(model, "d4dp", None) is None:
        raise CheckpointError(
            f"--compare: the student (strategy {model.cfg.strategy!r}) has no D_4DP, so it predicts no F̂_4D; "
            "only p4d-strategy checkpoints (not exported students) can be compared"
        )
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    ts = np.asarray(timestamps, dtype=np.float32)
    ids = encode_chat(model.tokenizer, model.cfg, [(PROMPT, None)], num_frames=len(frames),
                      timestamps=ts.tolist())["input_ids"]
    model.eval()
    with torch.no_grad():
        out = model(frames=torch.from_numpy(frames)[None], timestamps=torch.from_numpy(ts)[None],
                    input_ids=torch.tensor([ids]))
        f4d_hat = model.d4dp(out["hidden"])
    return f4d_hat[0].float().cpu().numpy()


# --- P̂_m from F̂_4D -------------------------------------------------------------------------


def load_store_heads(store: CacheStore):
    """The frozen D_m heads saved in the store (``heads.safetensors``), float32 on the CPU."""
    import torch

    from p4d.heads import HEADS_FILENAME, heads_from_bytes

    return heads_from_bytes(store.read_side_file(HEADS_FILENAME), dtype=torch.float32)


def maps_from_f4d(heads, f4d: np.ndarray, modalities: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """P̂_m = D_m(F̂_4D): F̂_4D (taps, N', h', w', c') → {modality: float32 map in the cache layout}."""
    import torch

    f4d = np.asarray(f4d, dtype=np.float32)
    want = (heads.cfg.num_taps, *heads.cfg.tap_shape())
    if f4d.shape != tuple(want):
        raise ConfigError(f"F̂_4D: expected (taps, N', h', w', c') = {tuple(want)} for the store's heads, "
                          f"found {f4d.shape}")
    names = list(heads.heads) if modalities is None else [m for m in modalities if m in heads.heads]
    with torch.inference_mode():
        x = torch.from_numpy(f4d)[None]
        return {m: v[0].float().numpy() for m, v in heads(x, modalities=names).items()}


# --- error numbers ---------------------------------------------------------------------------


def map_errors(teacher: dict[str, np.ndarray], student: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per-modality errors of student maps vs teacher maps (modalities present in both):

    - depth: ``abs_rel`` = mean |d̂ − d| / d over d > 0; ``rmse_log`` = √mean (log d̂ − log d)²
      over d, d̂ > 0;
    - flow: ``epe`` = mean ‖f̂ − f‖₂ in pixels over frames 1..N−1 (frame 0 is invalid);
    - motion: ``iou`` of the masks sigmoid > 0.5 (1.0 when both are empty) and ``prob_mae`` =
      mean |σ(ŝ) − σ(s)|;
    - camray: ``dir_deg`` = mean angle in degrees between ray directions and ``moment_l1`` =
      mean |m̂ − m| per component.
    """
    out: dict[str, dict[str, float]] = {}
    for m in teacher:
        if m not in student:
            continue
        t = np.asarray(teacher[m], np.float64)
        s = np.asarray(student[m], np.float64)
        if t.shape != s.shape:
            raise ConfigError(f"{m}: student map shape {s.shape} differs from the teacher's {t.shape}")
        if m == "depth":
            pos = t > 0
            both = pos & (s > 0)
            out[m] = {"abs_rel": float(np.mean(np.abs(s[pos] - t[pos]) / t[pos])) if pos.any() else float("nan"),
                      "rmse_log": float(np.sqrt(np.mean((np.log(s[both]) - np.log(t[both])) ** 2)))
                      if both.any() else float("nan")}
        elif m == "flow":
            diff = (s - t)[1:]
            out[m] = {"epe": float(np.mean(np.linalg.norm(diff, axis=-1))) if diff.size else float("nan")}
        elif m == "motion":
            pt, ps = sigmoid(t), sigmoid(s)
            mt, ms = pt > 0.5, ps > 0.5
            union = (mt | ms).sum()
            out[m] = {"iou": float((mt & ms).sum() / union) if union else 1.0,
                      "prob_mae": float(np.mean(np.abs(ps - pt)))}
        elif m == "camray":
            dt, ds = t[..., :3], s[..., :3]
            cos = (dt * ds).sum(-1) / np.maximum(np.linalg.norm(dt, axis=-1) * np.linalg.norm(ds, axis=-1), 1e-12)
            out[m] = {"dir_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()),
                      "moment_l1": float(np.mean(np.abs(s[..., 3:] - t[..., 3:])))}
    return out


def format_errors(errors: dict[str, dict[str, float]]) -> str:
    """One line: ``depth abs_rel 0.012, rmse_log 0.02 | flow epe 0.3 px | ...``."""
    parts = []
    for m, vals in errors.items():
        unit = " px" if m == "flow" else ""
        parts.append(f"{m} " + ", ".join(f"{k} {v:.4g}{unit if k == 'epe' else ''}" for k, v in vals.items()))
    return " | ".join(parts)


# --- figures ---------------------------------------------------------------------------------


def compare_panels(data: ClipData, student: dict[str, np.ndarray], *, label: str = "student") -> Panels:
    """Columns: frame, then teacher and ``label`` tiles for each modality in both, the student's
    drawn in the teacher's colour scale (depth range, flow max magnitude); errors in the title."""
    h, w = data.size
    teacher = data.maps
    errors = map_errors(teacher, student)
    per_pixel = pixel_errors(teacher, student)
    columns, tiles, legends = ["frame"], [data.frames], []
    camera_legend = None
    if "depth" in errors:
        t_tiles, leg = depth_tiles(teacher["depth"])
        lo, hi = depth_range(teacher["depth"])
        e_tiles, e_leg, _ = error_tiles("depth", per_pixel["depth"], (h, w))
        columns += ["depth teacher", f"depth {label}", "depth error"]
        tiles += [t_tiles, depth_to_rgb(student["depth"], lo, hi), e_tiles]
        legends += [leg, e_leg]
    if "flow" in errors:
        t_tiles, leg = flow_tiles(teacher["flow"])
        valid = teacher["flow"][1:]
        vmax = float(np.hypot(valid[..., 0], valid[..., 1]).max()) if valid.size else 0.0
        s_tiles = flow_to_rgb(student["flow"], max_magnitude=vmax)
        s_tiles[0] = notice_tile(h, w, "no flow (frame 0)")
        e_tiles, e_leg, _ = error_tiles("flow", per_pixel["flow"], (h, w))
        columns += ["flow teacher", f"flow {label}", "flow error"]
        tiles += [t_tiles, s_tiles, e_tiles]
        legends += [leg, e_leg]
    if "motion" in errors:
        e_tiles, e_leg, _ = error_tiles("motion", per_pixel["motion"], (h, w))
        color = motion_color(data.frames)
        columns += ["motion teacher", f"motion {label}", "motion error"]
        tiles += [motion_overlay(data.frames, teacher["motion"], color=color),
                  motion_overlay(data.frames, student["motion"], color=color), e_tiles]
        legends += [motion_legend(color), e_leg]
    if "camray" in errors:
        e_tiles, e_leg, _ = error_tiles("camray", per_pixel["camray"], (h, w))
        columns += ["rays teacher", f"rays {label}", "rays error"]
        tiles += [upsample_nearest(ray_directions_rgb(teacher["camray"]), h, w),
                  upsample_nearest(ray_directions_rgb(student["camray"]), h, w), e_tiles]
        legends.append(e_leg)
        camera_legend = len(legends)
        legends.append(captioned("camera from the teacher's rays",
                                 render_camera_plot(teacher["camray"], CAMERA_PLOT_SIZE, title="")))
    title = data.title_lines() + [f"teacher vs {label}: " + format_errors(errors)]
    flat = {f"{m}.{k}": v for m, vals in errors.items() for k, v in vals.items()}
    return Panels(title=title, columns=columns, tiles=tiles, row_labels=row_labels(data.frame_index, data.timestamp),
                  legends=legends, errors=flat, rays=teacher.get("camray"), camera_legend=camera_legend)


@dataclass(frozen=True, kw_only=True)
class StepDepth:
    """P̂_depth (N, H, W, 1) of one checkpoint ``step``."""

    step: int
    depth: np.ndarray


def steps_panels(data: ClipData, steps: Sequence[StepDepth]) -> Panels:
    """Columns: frame, teacher depth, then P̂_depth at each step (ascending), all in the teacher's
    depth range (paper Fig. 5); per-step abs_rel in the title."""
    if "depth" not in data.maps:
        raise ConfigError(f"--steps: the store {data.store_url} holds no depth maps (modalities "
                          f"{tuple(data.maps)})")
    if not steps:
        raise ConfigError("--steps: no checkpoint steps to show")
    steps = sorted(steps, key=lambda s: s.step)
    t_tiles, leg = depth_tiles(data.maps["depth"])
    lo, hi = depth_range(data.maps["depth"])
    columns, tiles = ["frame", "depth teacher"], [data.frames, t_tiles]
    rel = []
    for s in steps:
        if s.depth.shape != data.maps["depth"].shape:
            raise ConfigError(f"--steps: step {s.step} depth has shape {s.depth.shape}, expected "
                              f"{data.maps['depth'].shape}")
        columns.append(f"step {s.step}")
        tiles.append(depth_to_rgb(s.depth, lo, hi))
        rel.append(f"{s.step}: {map_errors({'depth': data.maps['depth']}, {'depth': s.depth})['depth']['abs_rel']:.3g}")
    title = data.title_lines() + ["student depth over training steps, abs_rel vs teacher: " + ", ".join(rel)]
    return Panels(title=title, columns=columns, tiles=tiles, row_labels=row_labels(data.frame_index, data.timestamp),
                  legends=[leg])


def step_depths(run: StudentRun, heads, data: ClipData, steps: Sequence[int] | None = None) -> list[StepDepth]:
    """P̂_depth of ``data`` at each saved step of ``run`` (``steps``: a subset; None = all)."""
    chosen = list(run.steps) if steps is None else list(steps)
    missing = sorted(set(chosen) - set(run.steps))
    if missing:
        raise ConfigError(f"--steps: run {run.url} has no checkpoints at steps {missing} (saved: {run.steps})")
    out = []
    for step in chosen:
        f4d_hat = run.predictor(step)(data.frames, data.timestamp)
        out.append(StepDepth(step=step, depth=maps_from_f4d(heads, f4d_hat, ["depth"])["depth"]))
    return out
