"""The eval loop: items -> frames (+ SoM marks) -> model answer -> parsed, scored, written, summarised.

The model is anything with :class:`VideoQAModel`'s ``answer`` method; p4d eval does not know the
student's internals. ``--model DIR`` loads an exported student through
``p4d.train.load_exported_student(DIR, *, cache=None, attn=None, dtype=None)``.

Students whose exported config has ``strategy`` ``4d-concat`` or ``4d-pe`` read F_4D at inference
and need ``--cache STORE`` (a store built by ``p4d precompute`` over the benchmark videos); they
are refused without it. The config is the first of ``DIR/config.json``, ``DIR/meta.json``,
``DIR/p4d_student.json`` holding a ``strategy`` key, at the top level or under ``preset``/``config``.
A model whose ``answer`` takes a ``video`` keyword gets the video path too (so it can find the clip in
the cache).

Per item: ``sample_clip(video, N, policy="uniform")`` gives (N, H, W, 3) frames and their timestamps
(seconds, TPE input); the item's regions are drawn on frame 0 with :mod:`p4d.video.marks`.
Baselines (``random``, ``first-option``) decode nothing.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from p4d.errors import CacheNotFoundError, ConfigError, P4DError
from p4d.eval.items import Bench, Item, ItemProblem, load_bench
from p4d.eval.predictions import PredictionsWriter, file_sha256
from p4d.eval.scoring import BASELINES, Summary, first_option_answer, random_expectation, score_answer, summarize
from p4d.video import sample_clip
from p4d.video.marks import draw_marks

log = logging.getLogger(__name__)

#: Strategies (paper Tab. 4) whose student reads F_4D from a cache at inference.
CACHE_STRATEGIES = ("4d-concat", "4d-pe")
CONFIG_FILES = ("config.json", "meta.json", "p4d_student.json")
#: Preset keys read from an exported student's config (accepted spellings -> report key).
PRESET_KEYS = {
    "strategy": ("strategy",),
    "loss": ("loss", "loss_preset", "losses"),
    "time_cue": ("time_cue", "time", "time_cues"),
    "trainable": ("trainable", "trainability", "tune"),
}


@runtime_checkable
class VideoQAModel(Protocol):
    """What p4d eval needs from a model.

    ``answer(frames (N, H, W, 3) uint8, timestamps (N,) float seconds, question_text, options)``
    returns the raw generated text; ``options`` are the option texts (A, B, ... in order; empty for a
    numeric item). ``p4d.eval.items.format_prompt`` builds the standard prompt text from them.
    """

    def answer(self, frames: np.ndarray, timestamps: np.ndarray, question_text: str, options: Sequence[str]) -> str: ...


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """One ``p4d eval BENCH`` run; exactly one of ``model_dir`` / ``baseline``."""

    bench: Path
    out: Path
    frames: int = 16
    model_dir: Path | None = None
    baseline: str | None = None
    cache: str | None = None
    attn: str | None = None
    dtype: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.model_dir is None) == (self.baseline is None):
            raise ConfigError("p4d eval: give exactly one of --model DIR or --baseline random|first-option")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise ConfigError(f"--baseline {self.baseline!r}: expected one of {', '.join(BASELINES)}")
        if self.frames < 1:
            raise ConfigError(f"--frames {self.frames}: expected at least 1 frame")


@dataclass(frozen=True)
class EvalResult:
    summary: Summary
    problems: tuple[ItemProblem, ...]  # malformed items (at load) and items that failed at run time
    predictions: Path
    predicted: int  # items predicted in this call
    resumed: int  # items already in the predictions file


def read_student_config(model_dir: str | Path) -> dict:
    """The exported student's config dict (see the module docstring), {} if none is found."""
    model_dir = Path(model_dir)
    for name in CONFIG_FILES:
        path = model_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--model {model_dir}: {path.name} is not valid JSON ({exc.msg})") from exc
        for candidate in (data, data.get("preset"), data.get("config")) if isinstance(data, dict) else ():
            if isinstance(candidate, dict) and "strategy" in candidate:
                return candidate
    return {}


def student_preset(config: dict) -> dict:
    """{strategy, loss, time_cue, trainable} from an exported config (missing keys -> None)."""
    return {key: next((config[a] for a in aliases if a in config), None) for key, aliases in PRESET_KEYS.items()}


def check_cache_requirement(model_dir: Path, config: dict, cache: str | None) -> None:
    strategy = config.get("strategy")
    if strategy in CACHE_STRATEGIES and not cache:
        raise ConfigError(
            f"--cache: the student in {model_dir} was trained with strategy {strategy!r}, which reads F_4D at "
            f"inference; give --cache STORE, a cache built by `p4d precompute` over the benchmark videos")
    if cache and "://" not in cache and not Path(cache).exists():
        raise CacheNotFoundError(f"--cache {cache}: no such store")


def load_student(model_dir: str | Path, *, cache: str | None = None, attn: str | None = None,
                 dtype: str | None = None) -> VideoQAModel:
    """Load an exported student (a ``p4d train`` export) through ``p4d.train.load_exported_student``."""
    import p4d.train

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ConfigError(f"--model {model_dir}: no such directory; expected an exported student (`p4d train` export)")
    return p4d.train.load_exported_student(model_dir, cache=cache, attn=attn, dtype=dtype)


def run_eval(config: EvalConfig, *, model: VideoQAModel | None = None) -> EvalResult:
    """Run (or continue) an eval as configured; ``model`` overrides loading ``config.model_dir``."""
    bench = load_bench(config.bench)
    preset: dict = {}
    if config.model_dir is not None:
        student_config = read_student_config(config.model_dir)
        preset = student_preset(student_config)
        check_cache_requirement(config.model_dir, student_config, config.cache)
    header = {
        "bench": str(config.bench), "bench_sha256": file_sha256(config.bench),
        "model": str(config.model_dir) if config.model_dir is not None else None,
        "baseline": config.baseline, "frames": config.frames, "cache": config.cache,
        "attn": config.attn, "dtype": config.dtype, "preset": preset, "p4d_version": _version(),
    }
    writer = PredictionsWriter(config.out, header)
    resumed = sum(1 for item in bench.items if item.id in writer.done)
    todo = [item for item in bench.items if item.id not in writer.done]
    if todo and config.model_dir is not None and model is None:
        model = load_student(config.model_dir, cache=config.cache, attn=config.attn, dtype=config.dtype)
    failures = evaluate(todo, writer, model=model, baseline=config.baseline, frames=config.frames,
                        progress=config.progress)
    summary = summarize_predictions(bench, writer.done)
    return EvalResult(summary=summary, problems=bench.problems + tuple(failures), predictions=writer.path,
                      predicted=len(todo) - len(failures), resumed=resumed)


def evaluate(items: Sequence[Item], writer: PredictionsWriter, *, model: VideoQAModel | None,
             baseline: str | None, frames: int = 16, progress: bool = True) -> list[ItemProblem]:
    """Predict, score and append every item; items whose video fails to decode are returned, not raised."""
    from tqdm.auto import tqdm

    failures: list[ItemProblem] = []
    pass_video = model is not None and _accepts_keyword(model.answer, "video")
    for item in tqdm(items, desc="p4d eval", unit="item", disable=not progress):
        record = {"id": item.id, "category": item.category, "split": item.split, "answer": item.answer}
        if baseline == "random":
            record.update(raw=None, parsed=None, score=random_expectation(item))
        elif baseline == "first-option":
            raw = first_option_answer(item)
            parsed, score = score_answer(item, raw)
            record.update(raw=raw, parsed=parsed, score=score)
        else:
            try:
                clip_frames, timestamps, index = item_frames(item, frames)
            except P4DError as exc:
                log.warning("item %s: %s", item.id, exc)
                failures.append(ItemProblem(item.id, str(exc)))
                continue
            extra = {"video": str(item.video)} if pass_video else {}
            raw = model.answer(clip_frames, timestamps, item.question, list(item.options), **extra)
            parsed, score = score_answer(item, raw)
            record.update(raw=raw, parsed=parsed, score=score, frame_index=index.tolist(),
                          timestamps=[round(float(t), 6) for t in timestamps])
        writer.append(record)
    return failures


def item_frames(item: Item, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) uint8 with SoM marks on frame 0, timestamps (N,) s, source frame indices (N,))."""
    clip = sample_clip(item.video, num_frames=num_frames, policy="uniform")
    frames = clip.frames
    if item.regions:
        shape = frames.shape[1:3]
        regions = [spec.to_region(shape) for spec in item.regions]
        frames = frames.copy()
        frames[0], _ = draw_marks(frames[0], regions)
    return frames, clip.timestamp.astype(np.float64), clip.frame_index


def summarize_predictions(bench: Bench, records: dict[str, dict]) -> Summary:
    """Summary over the benchmark's valid items that have a prediction record."""
    return summarize((item.category, item.split, float(r["score"])) for item in bench.items
                     if (r := records.get(item.id)) is not None)


def _accepts_keyword(func, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("p4d")
    except Exception:  # not installed as a distribution
        return "unknown"
