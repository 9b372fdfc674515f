"""One self-contained HTML page for browsing many clips of a store.

The page holds the store summary (spec, clip counts by status), a status table (clip, video,
frame range, status, failure reason) and, for each rendered done clip, its figure as an inline
``data:image/png;base64`` image (a few evenly spaced frames per clip, see ``frames``). It loads
nothing from anywhere: no scripts, no external style sheets, no remote images. Works on a store
still being written: the clip statuses are read once, done clips are rendered, the others listed.
"""

from __future__ import annotations

import base64
import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from p4d.cache_schema import STATUS_DONE, STATUS_FAILED, CacheStore
from p4d.errors import ClipNotAvailableError, ConfigError
from p4d.inspect.clipdata import load_clip, random_teacher_note
from p4d.inspect.figure import compose, pick_frames, png_bytes
from p4d.inspect.panels import clip_panels

log = logging.getLogger(__name__)

STATUS_NAMES = {0: "pending", 1: "done", 2: "failed"}
MAX_TABLE_ROWS = 2000

_CSS = """
body { font-family: sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
tr.done td.status { color: #070; } tr.failed td.status { color: #b00; } tr.pending td.status { color: #888; }
tr.missing td.status { color: #b00; }
section { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }
pre { font-size: 12px; white-space: pre-wrap; }
"""


@dataclass(kw_only=True)
class HtmlReport:
    """What :func:`write_html` wrote: the page, the rendered clips, and clips that could not be
    rendered (with why)."""

    path: Path
    rendered: list[int] = field(default_factory=list)
    not_rendered: dict[int, str] = field(default_factory=dict)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _status_row(store: CacheStore, clip: int, status: np.ndarray, failures: dict[int, str],
                rendered: set[int]) -> str:
    e = html.escape
    if not 0 <= clip < store.num_clips:
        return (f'<tr class="missing"><td>{clip}</td><td></td><td class="status">out of range</td>'
                f"<td>the store has clips 0..{store.num_clips - 1}</td></tr>")
    name = STATUS_NAMES.get(int(status[clip]), "pending")
    reason = failures.get(clip, "") if status[clip] == STATUS_FAILED else ""
    link = f'<a href="#clip-{clip}">{clip}</a>' if clip in rendered else str(clip)
    video = _video_of(store, clip)
    return (f'<tr class="{name}"><td>{link}</td><td>{e(video)}</td><td class="status">{name}</td>'
            f"<td>{e(reason)}</td></tr>")


def _video_of(store: CacheStore, clip: int) -> str:
    """Video path of a clip from the planned clip counts (videos are clip-major in the store)."""
    first = 0
    for v in store.videos:
        if clip < first + v.num_clips:
            return f"{v.path} (clip {clip - first} of {v.num_clips})"
        first += v.num_clips
    return ""


def render_page(store: CacheStore, *, clips: Sequence[int] | None = None, video_root=None,
                frames: int | Sequence[int] | None = 4, max_clips: int = 50, tile_height: int | None = 112,
                progress: bool = False) -> tuple[str, list[int], dict[int, str]]:
    """(HTML text, rendered clips, {clip: why not rendered}) — see :func:`write_html`."""
    from tqdm import tqdm

    if max_clips < 1:
        raise ConfigError(f"--max-clips: expected at least 1, found {max_clips}")
    status = store.clip_status()
    failures = store.failures()
    counts = {name: int((status == code).sum()) for code, name in STATUS_NAMES.items()}
    selection = list(range(store.num_clips)) if clips is None else list(clips)
    wanted = [c for c in selection if 0 <= c < store.num_clips and status[c] == STATUS_DONE]
    to_render = wanted[:max_clips]
    sections, rendered, not_rendered = [], [], {}
    for clip in tqdm(to_render, disable=not progress, desc="clips"):
        try:
            data = load_clip(store, clip, video_root=video_root)
        except ClipNotAvailableError as exc:  # its status changed since we read it
            not_rendered[clip] = str(exc)
            continue
        panels = clip_panels(data)
        rows = pick_frames(data.num_frames, frames)
        image, _ = compose(panels, rows, tile_height=tile_height)
        rendered.append(clip)
        title = "\n".join(data.title_lines())
        sections.append(
            f'<section id="clip-{clip}"><h2>clip {clip}</h2><pre>{html.escape(title)}</pre>'
            f'<img alt="clip {clip}: frames, depth, flow, motion, rays, F4D PCA" src="{_data_uri(png_bytes(image))}">'
            "</section>"
        )
    for c in selection:
        if not (0 <= c < store.num_clips):
            not_rendered[c] = f"out of range (the store has clips 0..{store.num_clips - 1})"
        elif status[c] != STATUS_DONE:
            not_rendered[c] = STATUS_NAMES.get(int(status[c]), "pending") + (
                f": {failures.get(c, '')}" if status[c] == STATUS_FAILED else "")
    skipped = len(wanted) - len(to_render)
    table_clips = selection[:MAX_TABLE_ROWS]
    rendered_set = set(rendered)
    rows_html = "\n".join(_status_row(store, c, status, failures, rendered_set) for c in table_clips)
    spec = store.spec
    e = html.escape
    notes = []
    if skipped > 0:
        notes.append(f"Rendered the first {len(to_render)} of {len(wanted)} selected done clips (--max-clips).")
    if len(selection) > len(table_clips):
        notes.append(f"Status table shows the first {len(table_clips)} of {len(selection)} selected clips.")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>p4d inspect: {e(store.url)}</title>
<style>{_CSS}</style></head>
<body>
<h1>p4d inspect</h1>
{random_banner(spec)}<p>store <code>{e(store.url)}</code>: {store.num_clips} clips — {counts['done']} done, {counts['failed']} failed,
{counts['pending']} pending. Teacher {e(str(spec.teacher.get('preset', spec.teacher.get('name'))))},
N={spec.num_frames}, H×W={spec.height}×{spec.width}, taps {list(spec.taps)}, codec {e(spec.latent_codec)},
maps {', '.join(spec.modalities)}.</p>
{''.join(f'<p>{e(n)}</p>' for n in notes)}
<h2>clips</h2>
<table><tr><th>clip</th><th>video</th><th>status</th><th>failure reason</th></tr>
{rows_html}
</table>
{''.join(sections)}
</body></html>
"""
    return page, rendered, not_rendered


def random_banner(spec) -> str:
    """A red paragraph saying RANDOM TEACHER when the store's teacher had random weights, else ''."""
    note = random_teacher_note(spec)
    return f'<p class="random" style="color:#b00;font-weight:bold">{html.escape(note)}</p>\n' if note else ""


def write_html(store: CacheStore, path: str | Path, **kwargs) -> HtmlReport:
    """Write the page for ``store`` to ``path``.

    kwargs: ``clips`` (indices; None = every clip), ``video_root``, ``frames`` (frames per clip:
    an int for evenly spaced ones, a list of positions, None for all; default 4), ``max_clips``
    (render at most this many done clips; default 50), ``tile_height`` (pixels; default 112),
    ``progress``.
    """
    page, rendered, not_rendered = render_page(store, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d clips rendered)", path, len(rendered))
    return HtmlReport(path=path, rendered=rendered, not_rendered=not_rendered)


def write_figure_page(panels, path: str | Path, rows: Sequence[int] | None = None, *, heading: str = "p4d inspect",
                      tile_height: int | None = None) -> Path:
    """A self-contained page holding one figure of ``panels`` (frames ``rows``) as an inline PNG under
    its title lines (e.g. ``inspect --compare --out F.html``: teacher vs student with the error scales)."""
    image, _ = compose(panels, rows, tile_height=tile_height)
    e = html.escape
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(heading)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{e(heading)}</h1>\n<pre>{e(chr(10).join(panels.title))}</pre>\n"
            f'<img alt="{e(", ".join(panels.columns))}" src="{_data_uri(png_bytes(image))}">\n</body></html>\n')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    log.info("wrote %s", path)
    return path
