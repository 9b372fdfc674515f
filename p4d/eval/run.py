"""The eval loop: items -> frames (+ SoM marks) -> model answer -> parsed, scored, written, summarised.

The model is anything with :class:`VideoQAModel`'s ``answer`` method; p4d eval does not know the
student's internals. ``--model DIR`` loads an exported student through
``p4d.train.load_exported_student(DIR, *, cache=None, attn=None, dtype=None, device=None)`` on ``--device``
(auto: CUDA when available) in ``--dtype`` (auto: bfloat16 on CUDA, float32 on the CPU). A model with
an ``answer_batch`` method (the exported student) answers ``--batch-size`` items at a time (left-padded
batched greedy generation; the same answers as one at a time in float32); records are appended
after each batch, so a killed eval redoes at most one batch.

Students whose exported config has ``strategy`` ``4d-concat`` or ``4d-pe`` read F_4D at inference
and need ``--cache STORE`` (a store built by ``p4d precompute`` over the benchmark videos); they
are refused without it. The config is the first of ``DIR/config.json``, ``DIR/meta.json``,
``DIR/p4d_student.json`` holding a ``strategy`` key, at the top level or under ``preset``/``config``.
A model whose ``answer`` takes a ``video`` keyword gets the video path too (so it can find the clip in
the cache).

BENCH is a JSON/JSONL file of items (:mod:`p4d.eval.items`), the R4D-Bench folder as shipped
(:mod:`p4d.eval.r4d`) or STI-Bench as shipped (:mod:`p4d.eval.sti`: its folder or ``qa.parquet``). Per
item: ``sample_clip(video, N, policy="uniform")`` gives (N, H, W, 3) frames and their timestamps
(seconds, TPE input); STI-Bench items sample N frames over their [time_start, time_end] window.

Protocols (``--protocol``):

- ``release`` (default, as the public release runs R4D-Bench; each benchmark as its official code
  runs it): R4D-Bench's released lmms-eval task: visual input ``[SoM image, video]`` (the shipped PNG
  when the file exists, or for own items with regions the first frame with its marks drawn by
  :mod:`p4d.video.marks`), the release prompt (:func:`p4d.eval.prompt.format_prompt`; the SoM preamble
  whenever the item names a SoM image), the release parser
  (:func:`p4d.eval.parse.parse_release_letter`); an answer with no letter gets a uniformly random
  letter (unseeded, as the release draws it; ``--seed`` seeds it by (seed, item id)) and is counted
  "unparsed"; an item whose video (or SoM image) cannot be read is scored the same way and listed,
  never dropped. STI-Bench: its official prompt and parser (:func:`p4d.eval.parse.parse_sti_letter`),
  unparsed scores 0.
- ``p4d`` (p4d's earlier protocol): marks drawn on frame 0, p4d's prompt and parser, unparsed
  scores 0, an unreadable video drops the item (listed).

Every MCQ answer is scored twice (:class:`p4d.eval.scoring.Scored`): ``score`` (strict: the official
parser) and ``score_matched`` (an answer stating an option's value counts as that option), with
``rule`` (parser / value / random / none) saying which decided; the header pins the items file by
``bench_sha256`` and ``bench_items``. Items without options (p4d's own numeric items) are scored by MRA
in both. Baselines (``random``: the exact expectation 1/N; ``first-option``; ``most-frequent-letter``)
decode nothing.
"""

from __future__ import annotations


import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from p4d.errors import CacheNotFoundError, ConfigError, P4DError
from p4d.eval.items import Bench, Item, ItemProblem, load_bench
from p4d.eval.predictions import PredictionsWriter, file_sha256
from p4d.eval.prompt import PROMPT_STYLES, format_prompt
from p4d.eval.r4d import bench_file, is_r4d_folder, load_r4d
from p4d.eval.revisions import check_revision
from p4d.eval.scoring import (BASELINES, Summary, first_option_answer, most_frequent_letter, random_expectation,
                              rule_counts, score_item, summarize)
from p4d.eval.sti import is_sti_bench, load_sti, qa_file, sample_window
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
    numeric item). Optional keywords, passed when the method takes them: ``prompt`` (the full text
    of :func:`p4d.eval.prompt.format_prompt` for the protocol), ``images`` (images shown before the
    video: the SoM key frame, (H, W, 3) uint8), ``video`` (the item's video path).
    """

    def answer(self, frames: np.ndarray, timestamps: np.ndarray, question_text: str, options: Sequence[str]) -> str: ...


#: Names of ``answer``'s arguments in a request of the optional ``answer_batch(requests) -> [str]``.
REQUEST_KEYS = ("frames", "timestamps", "question_text", "options")


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
    dtype: str | None = None     # auto (None): bfloat16 on CUDA, float32 on the CPU
    device: str = "auto"         # auto | cpu | cuda[:i]
    batch_size: int = 8          # items answered together by a model with answer_batch
    progress: bool = True
    protocol: str = "release"
    seed: int | None = None      # None: unseeded random letters, as the release draws them
    limit: int | None = None     # only the first N items in file order (a quick check); None: all

    def __post_init__(self) -> None:
        if (self.model_dir is None) == (self.baseline is None):
            raise ConfigError("p4d eval: give exactly one of --model DIR or --baseline random|first-option")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise ConfigError(f"--baseline {self.baseline!r}: expected one of {', '.join(BASELINES)}")
        if self.frames < 1:
            raise ConfigError(f"--frames {self.frames}: expected at least 1 frame")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: expected at least 1 item per batch")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit}: expected at least 1 item")
        if self.protocol not in PROMPT_STYLES:
            raise ConfigError(f"--protocol {self.protocol!r}: expected one of {', '.join(PROMPT_STYLES)}")


@dataclass(frozen=True)
class EvalResult:
    summary: Summary
    problems: tuple[ItemProblem, ...]  # malformed items (at load) and items that failed at run time
    predictions: Path
    predicted: int  # items predicted in this call
    resumed: int  # items already in the predictions file
    unparsed: int = 0  # scored items whose answer held no letter (release protocol: a random letter)
    unreadable: tuple[ItemProblem, ...] = ()  # scored items whose video/SoM image could not be read
    summary_matched: Summary | None = None  # the same items scored by the matched rule
    rules: dict | None = None  # rule -> items it decided (scoring.RULES)
    bench: Bench | None = None
    bench_sha256: str = ""
    total_items: int | None = None  # the benchmark's items before --limit


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


def check_model_dir(model_dir: str | Path) -> Path:
    """``--model DIR`` as a user may give it: a missing folder, or a ``p4d train`` run folder
    (RUN, whose export is RUN/export), is refused in one line saying what to pass instead."""
    from p4d.train.runfolder import is_run_folder

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ConfigError(f"--model {model_dir}: no such folder; expected a student export (RUN/export of `p4d train`)")
    if is_run_folder(model_dir):  # config.yaml, checkpoints/, log.jsonl: an export holds none of them
        export = model_dir / "export"
        hint = (f"pass --model {export}" if export.is_dir() else
                f"its export {export} is not written yet (the run is unfinished, or ran with --checkpoint.export "
                f"false): finish it with `p4d train --resume {model_dir}`")
        raise ConfigError(f"--model {model_dir}: a `p4d train` run folder, not an export; {hint}")
    return model_dir


def load_student(model_dir: str | Path, *, cache: str | None = None, attn: str | None = None,
                 dtype: str | None = None, device: str | None = None) -> VideoQAModel:
    """Load an exported student (a ``p4d train`` export) through ``p4d.train.load_exported_student``."""
    import p4d.train

    model_dir = check_model_dir(model_dir)
    return p4d.train.load_exported_student(model_dir, cache=cache, attn=attn, dtype=dtype, device=device)


def run_eval(config: EvalConfig, *, model: VideoQAModel | None = None) -> EvalResult:
    """Run (or continue) an eval as configured; ``model`` overrides loading ``config.model_dir``."""
    if config.model_dir is not None and model is None:
        check_model_dir(config.model_dir)  # before the benchmark is read
    bench = load_benchmark(config.bench)
    total_items = len(bench.items)
    if config.limit is not None:  # the file's first N items; scores, sha256 and resume as usual
        bench = replace(bench, items=bench.items[:config.limit])
    preset: dict = {}
    device = dtype = None
    if config.model_dir is not None:
        student_config = read_student_config(config.model_dir)
        preset = student_preset(student_config)
        check_cache_requirement(config.model_dir, student_config, config.cache)
        from p4d.train.model.placement import resolve_placement

        device, dtype = resolve_placement(config.device, config.dtype)  # refused before anything is written
    header = {
        "bench": str(config.bench), "bench_sha256": file_sha256(items_file(config.bench)),
        "bench_items": len(bench.items) + len(bench.problems),
        "protocol": config.protocol, "seed": config.seed,
        "model": str(config.model_dir) if config.model_dir is not None else None,
        "baseline": config.baseline, "frames": config.frames, "cache": config.cache,
        "attn": config.attn, "dtype": config.dtype, "preset": preset, "p4d_version": _version(),
        "placement": {"device": device, "dtype": dtype, "batch_size": config.batch_size},
    }
    writer = PredictionsWriter(config.out, header)
    resumed = sum(1 for item in bench.items if item.id in writer.done)
    todo = [item for item in bench.items if item.id not in writer.done]
    if todo and config.model_dir is not None and model is None:
        model = load_student(config.model_dir, cache=config.cache, attn=config.attn, dtype=dtype, device=device)
    failures = evaluate(todo, writer, model=model, baseline=config.baseline, frames=config.frames,
                        progress=config.progress, protocol=config.protocol, seed=config.seed,
                        batch_size=config.batch_size, letter=most_frequent_letter(bench.items))
    summary = summarize_predictions(bench, writer.done)
    records = [r for item in bench.items if (r := writer.done.get(item.id)) is not None]
    unreadable = tuple(ItemProblem(str(r["id"]), r["error"]) for r in records if r.get("error"))
    dropped = tuple(f for f in failures if f.id not in writer.done)
    return EvalResult(summary=summary, problems=bench.problems + dropped, predictions=writer.path,
                      predicted=len(todo) - len(dropped), resumed=resumed,
                      unparsed=sum(bool(r.get("unparsed")) for r in records), unreadable=unreadable,
                      summary_matched=summarize_predictions(bench, writer.done, key="score_matched"),
                      rules=rule_counts(records), bench=bench, bench_sha256=writer.header.get("bench_sha256", ""),
                      total_items=total_items)


def load_benchmark(path: str | Path) -> Bench:
    """R4D-Bench's folder, STI-Bench (folder or ``qa.parquet``), or a JSON/JSONL file of items;
    warns when the items file is a known superseded revision (:mod:`p4d.eval.revisions`)."""
    if is_r4d_folder(path):
        bench = load_r4d(path)
    elif is_sti_bench(path):
        bench = load_sti(path)
    else:
        bench = load_bench(path)
    check_revision(path, len(bench.items) + len(bench.problems))
    return bench


def items_file(path: str | Path) -> Path:
    """The file whose sha256 pins the benchmark: ``test.json``, ``qa.parquet`` or the items file."""
    return qa_file(path) if is_sti_bench(path) else bench_file(path)


def evaluate(items: Sequence[Item], writer: PredictionsWriter, *, model: VideoQAModel | None,
             baseline: str | None, frames: int = 16, progress: bool = True, protocol: str = "release",
             seed: int | None = None, batch_size: int = 1, letter: str | None = None) -> list[ItemProblem]:
    """Predict, score and append every item; returns the items whose video/SoM image could not be
    read (``release``: scored as unparsed and appended; ``p4d``: left out), never raises on them.
    A model with ``answer_batch`` answers up to ``batch_size`` items per call. ``letter``: the
    ``most-frequent-letter`` baseline's answer."""
    from tqdm.auto import tqdm

    failures: list[ItemProblem] = []
    takes = {k: model is not None and _accepts_keyword(model.answer, k) for k in ("video", "prompt", "images")}
    batched = model is not None and batch_size > 1 and callable(getattr(model, "answer_batch", None))
    pending: list[tuple[Item, dict, dict]] = []  # (item, its record so far, its request)

    def flush() -> None:
        if not pending:
            return
        requests = [request for _, _, request in pending]
        if batched:
            raws = model.answer_batch(requests)
        else:
            raws = [model.answer(*(r[k] for k in REQUEST_KEYS), **{k: v for k, v in r.items() if k not in REQUEST_KEYS})
                    for r in requests]
        for (item, record, _), raw in zip(pending, raws, strict=True):
            writer.append({**record, "raw": raw, **score_item(item, raw, protocol=protocol, seed=seed).record()})
        pending.clear()

    for item in tqdm(items, desc="p4d eval", unit="item", disable=not progress):
        record = {"id": item.id, "category": item.category, "split": item.split, "answer": item.answer}
        if baseline == "random":
            score = random_expectation(item)
            record.update(raw=None, parsed=None, score=score, score_matched=score, rule="expectation")
        elif baseline in ("first-option", "most-frequent-letter"):
            raw = first_option_answer(item) if baseline == "first-option" or item.is_numeric else (letter or "")
            record.update(raw=raw, **score_item(item, raw, protocol=protocol, seed=seed).record())
        else:
            try:
                clip_frames, timestamps, index, images = item_visuals(item, frames, protocol,
                                                                      images_separate=takes["images"])
            except P4DError as exc:
                log.warning("item %s: %s", item.id, exc)
                failures.append(ItemProblem(item.id, str(exc)))
                if protocol != "release":
                    continue
                record.update(raw=None, **score_item(item, None, protocol=protocol, seed=seed).record(), error=str(exc))
                writer.append(record)
                continue
            request = {"frames": clip_frames, "timestamps": timestamps, "question_text": item.question,
                       "options": list(item.options)}
            if takes["video"]:
                request["video"] = str(item.video)
            if takes["prompt"]:
                request["prompt"] = item_prompt(item, protocol, som=item.som_image is not None or bool(images))
            if takes["images"]:
                request["images"] = images
            record.update(frame_index=index.tolist(), timestamps=[round(float(t), 6) for t in timestamps])
            pending.append((item, record, request))
            if len(pending) >= (batch_size if batched else 1):
                flush()
            continue
        writer.append(record)
    flush()
    return failures


def _sample(item: Item, num_frames: int):
    """The item's clip: ``video`` (STI-Bench: over its time window), else (R4D-Bench) its full
    ``source`` video when that one fails."""
    try:
        window = getattr(item, "window", None)
        if window is not None:
            return sample_window(item.video, num_frames, window)
        return sample_clip(item.video, num_frames=num_frames, policy="uniform")
    except P4DError as first:
        fallback = getattr(item, "fallback_video", None)
        if fallback is None:
            raise
        log.info("item %s: %s; using the source video %s", item.id, first, fallback)
        try:
            return sample_clip(fallback, num_frames=num_frames, policy="uniform")
        except P4DError as second:
            raise P4DError(f"{first}; and its source: {second}") from None


def item_frames(item: Item, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) uint8 with SoM marks on frame 0, timestamps (N,) s, source frame indices (N,))."""
    clip = _sample(item, num_frames)
    frames = clip.frames
    if item.regions:
        frames = frames.copy()
        frames[0] = _marked_first_frame(item, frames)
    return frames, clip.timestamp.astype(np.float64), clip.frame_index


def item_visuals(item: Item, num_frames: int, protocol: str = "release", *, images_separate: bool = True):
    """(frames, timestamps, source frame indices, images shown before the video).

    The SoM image is the shipped PNG (R4D-Bench) or, for own items with regions under the
    ``release`` protocol, frame 0 with its marks, shown as a separate first image; under ``p4d`` (or
    for a model that takes no ``images``) the marks are drawn on frame 0 instead."""
    clip = _sample(item, num_frames)
    frames, images = clip.frames, []
    som_image = getattr(item, "som_image", None)
    if som_image is not None:
        # the release attaches the SoM image only when the file exists (its preamble stays either way)
        images = [_read_image(som_image)] if images_separate and som_image.is_file() else []
    elif item.regions:
        marked = _marked_first_frame(item, frames)
        if protocol == "release" and images_separate:
            images = [marked]
        else:
            frames = frames.copy()
            frames[0] = marked
    return frames, clip.timestamp.astype(np.float64), clip.frame_index, images


def _marked_first_frame(item: Item, frames: np.ndarray) -> np.ndarray:
    regions = [spec.to_region(frames.shape[1:3]) for spec in item.regions]
    marked, _ = draw_marks(frames[0], regions)
    return marked


def _read_image(path: Path) -> np.ndarray:
    """An RGB image as (H, W, 3) uint8; VideoDecodeError-like P4DError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise P4DError(f"SoM image {path}: cannot be read ({type(exc).__name__}: {exc})") from None


def item_prompt(item: Item, protocol: str, *, som: bool) -> str:
    """The item's own official prompt (STI-Bench) under ``release``, else :func:`format_prompt`."""
    if item.prompt is not None and protocol == "release":
        return item.prompt
    return format_prompt(item.question, item.options, style=protocol, som=som)


def summarize_predictions(bench: Bench, records: dict[str, dict], key: str = "score") -> Summary:
    """Summary over the benchmark's valid items that have a prediction record (``key``: ``score``,
    strict, or ``score_matched``; a record without it, written before matched scoring, counts its
    strict score)."""
    return summarize((item.category, item.split, float(r.get(key, r["score"]))) for item in bench.items
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
