"""The PNG grid: title lines, then one row per frame (label + one tile per column), then legends.

Layout (pixels): a margin of ``MARGIN`` all round; the title (one ``LINE_HEIGHT`` line each);
column names; row r's tiles start at ``grid_top + r·(H + GAP)``, column c's at
``MARGIN + LABEL_WIDTH + c·(W + GAP)``; legends follow below the grid, left to right.
:class:`FigureLayout` gives every tile's box, so tests and tools can crop tiles back out.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from p4d.errors import ConfigError
from p4d.inspect.panels import LINE_HEIGHT, Panels, draw_text, text_width

log = logging.getLogger(__name__)

MARGIN = 8
GAP = 4
LABEL_WIDTH = 96
LEGEND_GAP = 16


@dataclass(frozen=True, kw_only=True)
class FigureLayout:
    """Where things are in a composed figure: ``size`` = (width, height); tiles of ``tile_hw``
    at ``grid_left``/``grid_top`` with ``GAP`` between them."""

    size: tuple[int, int]
    grid_left: int
    grid_top: int
    tile_hw: tuple[int, int]
    num_rows: int
    num_cols: int

    def tile_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the tile in row ``row`` (a shown frame), column ``col``."""
        if not (0 <= row < self.num_rows and 0 <= col < self.num_cols):
            raise IndexError(f"tile ({row}, {col}) outside {self.num_rows} x {self.num_cols}")
        h, w = self.tile_hw
        left, top = self.grid_left + col * (w + GAP), self.grid_top + row * (h + GAP)
        return left, top, left + w, top + h


def pick_frames(num_frames: int, frames: Sequence[int] | int | None, *, flag: str = "--frames",
                source_index: Sequence[int] | None = None) -> list[int]:
    """Frames to show: all (None), ``k`` evenly spaced ones (an int), or the listed ones: positions
    0..N-1 in the clip, or (when none of them is a position) the source frame indices the rows are
    labelled with (``source_index``, the clip's stored frame_index)."""
    if frames is None:
        return list(range(num_frames))
    if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool):
        if frames < 1:
            raise ConfigError(f"{flag}: expected at least 1 frame, found {frames}")
        k = min(int(frames), num_frames)
        return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, k)})
    picked = [int(f) for f in frames]
    bad = [f for f in picked if not 0 <= f < num_frames]
    if bad and source_index is not None:
        position = {int(s): p for p, s in enumerate(source_index)}
        if all(f in position for f in picked):
            return [position[f] for f in picked]
    if bad or not picked:
        labelled = ("" if source_index is None else
                    f" or source frame indices of this clip ({', '.join(str(int(s)) for s in source_index)})")
        raise ConfigError(f"{flag}: expected frame positions in 0..{num_frames - 1}{labelled}, found {list(frames)}")
    return picked


def _resize_tiles(tiles: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if tiles.shape[1:3] == hw:
        return tiles
    return np.stack([np.asarray(Image.fromarray(t).resize((hw[1], hw[0]), Image.BILINEAR)) for t in tiles])


def compose(panels: Panels, rows: Sequence[int] | None = None, *, extra_title: Sequence[str] = (),
            legends: Sequence[np.ndarray] | None = None,
            tile_height: int | None = None) -> tuple[np.ndarray, FigureLayout]:
    """The figure of ``panels`` showing frames ``rows`` (default all) → (RGB (h, w, 3) uint8, layout).

    ``tile_height``: scale tiles to this height (aspect kept); ``legends`` replace the panels'.
    """
    rows = list(range(panels.num_frames)) if rows is None else list(rows)
    h, w = panels.tile_size
    if tile_height is not None and tile_height != h:
        w, h = max(1, round(w * tile_height / h)), int(tile_height)
    tiles = [_resize_tiles(t[rows], (h, w)) for t in panels.tiles]
    legends = list(panels.legends if legends is None else legends)
    title = list(panels.title) + list(extra_title)
    ncols = len(tiles)
    grid_left = MARGIN + LABEL_WIDTH
    grid_top = MARGIN + len(title) * LINE_HEIGHT + GAP + LINE_HEIGHT
    grid_w = ncols * (w + GAP) - GAP
    grid_bottom = grid_top + len(rows) * (h + GAP) - GAP
    legend_w = sum(leg.shape[1] for leg in legends) + LEGEND_GAP * max(len(legends) - 1, 0)
    legend_h = max((leg.shape[0] for leg in legends), default=0)
    width = max(grid_left + grid_w, MARGIN + legend_w, *(MARGIN + text_width(t) for t in title)) + MARGIN
    height = grid_bottom + (GAP * 2 + legend_h if legends else 0) + MARGIN
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    for i, line in enumerate(title):
        draw_text(canvas, (MARGIN, MARGIN + i * LINE_HEIGHT), line)
    for c, name in enumerate(panels.columns):
        x = grid_left + c * (w + GAP)
        shown = name
        while text_width(shown) > w and len(shown) > 2:
            shown = shown[:-2] + "…"
        draw_text(canvas, (x, grid_top - LINE_HEIGHT), shown)
    for r, frame in enumerate(rows):
        y = grid_top + r * (h + GAP)
        for k, line in enumerate(panels.row_labels[frame]):
            draw_text(canvas, (MARGIN, y + k * LINE_HEIGHT), line)
        for c, t in enumerate(tiles):
            canvas.paste(Image.fromarray(t[r]), (grid_left + c * (w + GAP), y))
    x = MARGIN
    for leg in legends:
        canvas.paste(Image.fromarray(leg), (x, grid_bottom + 2 * GAP))
        x += leg.shape[1] + LEGEND_GAP
    layout = FigureLayout(size=(width, height), grid_left=grid_left, grid_top=grid_top, tile_hw=(h, w),
                          num_rows=len(rows), num_cols=ncols)
    return np.asarray(canvas), layout


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_png(panels: Panels, path: str | Path, rows: Sequence[int] | None = None) -> FigureLayout:
    """Write the figure of ``panels`` (frames ``rows``, default all) as a PNG; return its layout."""
    image, layout = compose(panels, rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))
    log.info("wrote %s (%d x %d)", path, *layout.size)
    return layout
