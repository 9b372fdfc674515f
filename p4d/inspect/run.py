"""``p4d inspect`` as a function: pick clips, render, write the file named by ``out``.

The output format follows the suffix of ``out``: ``.png`` (one clip, a grid per frame),
``.mp4`` (one clip played with its maps at the source timing) or ``.html`` (many clips on one
self-contained page). ``compare`` (a student run) renders teacher vs student maps instead
(.png/.mp4/.html: the figure on a self-contained page, 4 evenly spaced frames unless ``frames``); with ``steps`` it renders the P̂_depth strip over the run's checkpoints (.png).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from p4d.cache_schema import open_store
from p4d.errors import ClipNotAvailableError, ConfigError
from p4d.inspect.clipdata import done_clips, load_clip, parse_clip_spec

log = logging.getLogger(__name__)

FORMATS = (".png", ".mp4", ".html")


@dataclass(kw_only=True)
class InspectResult:
    """What was written: ``path``, the clips shown, and clips that could not be shown (why)."""

    path: Path
    clips: list[int]
    not_rendered: dict[int, str] = field(default_factory=dict)


def parse_frames(text: str | None, *, flag: str = "--frames") -> list[int] | None:
    """``"0,5,10"`` → [0, 5, 10]; None or ``"all"`` → None (every frame)."""
    if text is None or str(text).strip().lower() == "all":
        return None
    try:
        out = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected frame positions such as 0,5,10 or 'all'") from None
    if not out:
        raise ConfigError(f"{flag} {text!r}: expected at least one frame position")
    return out


def parse_steps(text: str | None, *, flag: str = "--steps") -> list[int] | None | bool:
    """``"all"`` → None (every saved step); ``"100,200"`` → [100, 200]; no flag → False."""
    if text is None:
        return False
    if str(text).strip().lower() == "all":
        return None
    try:
        return [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected 'all' or checkpoint steps such as 1000,2000") from None


def _one_clip(store, clip: str | int | None) -> int:
    picked = parse_clip_spec(clip, store.num_clips)
    if picked is None:
        done = done_clips(store)
        if clip is None and done:
            log.info("no --clip given: showing clip %d, the first done clip", done[0])
            return done[0]
        if clip is None:
            raise ClipNotAvailableError(f"{store.url}: no clip is done yet ({store.status()}); nothing to show")
        raise ConfigError("--clip all: a .png or .mp4 shows one clip; use --out FILE.html for many")
    if len(picked) != 1:
        raise ConfigError(f"--clip {clip}: a .png or .mp4 shows one clip, found {len(picked)}; "
                          "use --out FILE.html for many")
    return picked[0]


def inspect_store(
    store: str,
    out: str | os.PathLike,
    *,
    clip: str | int | None = None,
    frames: Sequence[int] | None = None,
    per_clip: int = 4,
    video_root: str | None = None,
    max_clips: int = 50,
    compare: str | None = None,
    steps: str | None = None,
    progress: bool = False,
    device: str | None = None,
    dtype: str | None = None,
) -> InspectResult:
    """Render ``store`` to ``out`` (see the module docstring).

    clip: ``"I"`` / int (.png/.mp4; default the first done clip), or ``"0-4,7"`` / ``"all"``
    (.html; default all). frames: frame positions to show (.png/.html; default all for .png,
    ``per_clip`` evenly spaced ones for .html). video_root: where to look for source videos whose
    recorded path is missing. max_clips: .html renders at most this many done clips.
    device / dtype (with ``compare``): where and in which dtype the student runs (auto: CUDA when
    available, bfloat16 there and float32 on the CPU; :mod:`p4d.train.model.placement`).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {out}: expected a file ending in {', '.join(FORMATS)}, "
                          f"found {suffix or 'no suffix'!r}")
    want_steps = parse_steps(steps)
    if want_steps is not False and compare is None:
        raise ConfigError("--steps: needs --compare RUN (the run whose checkpoints to show)")
    if (device is not None or dtype is not None) and compare is None:
        raise ConfigError(f"--{'device' if device is not None else 'dtype'}: only used with --compare RUN "
                          "(the student runs there; cached maps need no model)")
    cache = open_store(store)
    if compare is not None:
        from p4d.train.model.placement import resolve_placement

        placement = resolve_placement(device, dtype)  # a wrong --device / --dtype stops before anything is read
        return _compare(cache, out, suffix, clip, frames, video_root, compare, want_steps, progress, placement)
    if suffix == ".html":
        from p4d.inspect.html import write_html

        report = write_html(cache, out, clips=parse_clip_spec(clip, cache.num_clips), video_root=video_root,
                            frames=per_clip if frames is None else frames, max_clips=max_clips, progress=progress)
        return InspectResult(path=report.path, clips=report.rendered, not_rendered=report.not_rendered)
    from p4d.inspect.figure import pick_frames, write_png
    from p4d.inspect.panels import clip_panels
    from p4d.inspect.video import write_mp4

    index = _one_clip(cache, clip)
    data = load_clip(cache, index, video_root=video_root)
    panels = clip_panels(data)
    if suffix == ".png":
        write_png(panels, out, pick_frames(data.num_frames, frames, source_index=data.frame_index))
    else:
        if frames is not None:
            raise ConfigError("--frames: an .mp4 plays every frame of the clip; drop --frames")
        write_mp4(panels, data.timestamp, out, progress=progress)
    return InspectResult(path=out, clips=[index])


def _compare(cache, out: Path, suffix: str, clip, frames, video_root, run_url: str, steps, progress,
             placement: tuple[str, str] = ("cpu", "float32")) -> InspectResult:
    from p4d.inspect.compare import compare_panels, load_store_heads, maps_from_f4d, open_run, step_depths, steps_panels
    from p4d.inspect.figure import pick_frames, write_png
    from p4d.inspect.video import write_mp4

    if steps is not False and suffix != ".png":
        raise ConfigError(f"--out {out}: --compare --steps writes a .png")
    run = open_run(run_url, cache=cache.url, device=placement[0], dtype=placement[1])
    index = _one_clip(cache, clip)
    data = load_clip(cache, index, video_root=video_root)
    heads = load_store_heads(cache)
    if steps is not False:
        panels = steps_panels(data, step_depths(run, heads, data, steps))
        write_png(panels, out, pick_frames(data.num_frames, frames if frames is not None else 4,
                                           source_index=data.frame_index))
        return InspectResult(path=out, clips=[index])
    f4d_hat = run.predictor(None)(data.frames, data.timestamp)
    panels = compare_panels(data, maps_from_f4d(heads, f4d_hat, cache.spec.modalities))
    if suffix == ".png":
        write_png(panels, out, pick_frames(data.num_frames, frames, source_index=data.frame_index))
    elif suffix == ".html":
        from p4d.inspect.html import write_figure_page

        rows = pick_frames(data.num_frames, frames if frames is not None else 4, source_index=data.frame_index)
        write_figure_page(panels, out, rows, heading=f"p4d inspect --compare: clip {index}, teacher vs student")
    else:
        write_mp4(panels, data.timestamp, out, progress=progress)
    return InspectResult(path=out, clips=[index])
