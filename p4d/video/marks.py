"""Set-of-Marks (SoM) region marks: numbered, high-contrast outlines and labels on a frame.

A region prompt (``<obj_1>``, ``<obj_2>``, ... in a question) is a box or a mask on the first frame.
:func:`draw_marks` draws, for region k with number n (``obj_n``):

- an outline *inside* the region: a band of ``thickness`` pixels in the region's palette colour
  (fixed, high-saturation palette, colour ``(n - 1) % len(PALETTE)``, moved to the next unused
  colour when two regions of one frame would share it) with a 1-pixel black inner edge;
- a label tag *inside* the region: a filled rectangle in the same colour with a 1-pixel black border
  and the number n drawn in black or white (whichever contrasts more with the colour) by a built-in
  5x7 bitmap digit font, so the result is pixel-identical on every machine (no system fonts).

Sizes scale with the frame so marks stay readable after the student's resize to 448 px:
``s = max(1, max(H, W) / 448)``; outline ``thickness = max(2, round(3 s))``; glyph pixel
``g = max(2, round(2 s))``, so a digit is at least 14 px tall at 448 px. The tag sits at the top-most,
then left-most position where it fits entirely inside the region's interior without covering an
earlier tag; a region too small for its tag gets the tag just above (or below) its bounding box,
clipped to the frame (the only case where a mark leaves the region).

Regions: ``box = (x0, y0, x1, y1)`` in pixels of the frame (x1, y1 exclusive, rounded to whole
pixels, clipped to the frame), or ``mask`` (H, W) bool. Masks from files: :func:`decode_rle` (COCO
RLE, counts as a list or the compressed string) and :func:`polygon_mask` (COCO polygons).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from p4d.errors import ConfigError

#: Outline/tag colours, chosen for high saturation and mutual distinctness (RGB).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (0, 200, 255), (255, 220, 0), (0, 230, 0), (255, 0, 255),
    (255, 128, 0), (0, 0, 255), (128, 255, 200), (160, 0, 255), (255, 128, 160),
)
REFERENCE_SIZE = 448  # the student's input size; marks are sized to stay readable there

# 5x7 bitmap digits, rows top to bottom, "#" = ink.
_DIGITS = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
}
_GLYPHS = {d: np.array([[c == "#" for c in row] for row in rows]) for d, rows in _DIGITS.items()}
_LABEL_NUMBER = re.compile(r"^<?\s*(?:obj[_ -]?)?(\d+)\s*>?$", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True, eq=False)
class Region:
    """One region prompt on a frame: ``label`` (e.g. "obj_1") and exactly one of ``box`` or ``mask``.

    box: (x0, y0, x1, y1) pixels, x1/y1 exclusive. mask: (H, W) bool, the frame's size.
    """

    label: str
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.box is None) == (self.mask is None):
            raise ConfigError(f"region {self.label!r}: expected exactly one of box or mask")


@dataclass(frozen=True)
class MarkLayout:
    """Where one region's mark went: its number, colour, tag rectangle (x0, y0, x1, y1; exclusive) and
    whether the tag lies inside the region."""

    label: str
    number: int
    color: tuple[int, int, int]
    tag_box: tuple[int, int, int, int]
    tag_inside: bool


def mark_number(label: str, position: int) -> int:
    """The number drawn for ``label``: n for "obj_n" / "<obj_n>" / "n", else ``position + 1``."""
    match = _LABEL_NUMBER.match(label.strip())
    return int(match.group(1)) if match else position + 1


def mark_sizes(height: int, width: int) -> tuple[int, int]:
    """(outline thickness, glyph pixel size) for an (H, W) frame."""
    scale = max(1.0, max(height, width) / REFERENCE_SIZE)
    return max(2, round(3 * scale)), max(2, round(2 * scale))


def region_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask of ``region`` on a frame of ``shape = (H, W)``."""
    height, width = shape
    if region.mask is not None:
        mask = np.asarray(region.mask, dtype=bool)
        if mask.shape != (height, width):
            raise ConfigError(f"region {region.label!r}: mask shape {mask.shape} does not match the frame ({height}, {width})")
        return mask
    x0, y0, x1, y1 = (float(v) for v in region.box)
    if not (x1 > x0 and y1 > y0):
        raise ConfigError(f"region {region.label!r}: box {region.box!r} is empty; expected (x0, y0, x1, y1) with x1 > x0, y1 > y0")
    mask = np.zeros((height, width), dtype=bool)
    c0, c1 = max(0, round(x0)), min(width, round(x1))
    r0, r1 = max(0, round(y0)), min(height, round(y1))
    mask[r0:r1, c0:c1] = True
    return mask


def decode_rle(rle: dict) -> np.ndarray:
    """COCO run-length encoding ``{"size": [h, w], "counts": list | str}`` -> (h, w) bool mask.

    Runs alternate 0s and 1s starting with 0s, in column-major order; a string ``counts`` is COCO's
    compressed form (6-bit characters from 48, 5 value bits, 0x20 continuation, 0x10 sign; from the
    fourth run on each value is stored as the difference to the run two before).
    """
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"RLE mask: expected {{'size': [h, w], 'counts': ...}}, got {rle!r:.80}") from exc
    runs = _decode_rle_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise ConfigError(f"RLE mask: runs sum to {sum(runs)} (or are negative); expected h*w = {height * width}")
    flat = np.zeros(height * width, dtype=bool)
    starts = np.concatenate([[0], np.cumsum(runs)])
    for k in range(1, len(runs), 2):
        flat[starts[k]:starts[k + 1]] = True
    return flat.reshape(width, height).T.copy()


def _decode_rle_string(text: str) -> list[int]:
    runs: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ConfigError(f"RLE mask: compressed counts {text!r:.60} end inside a value")
            c = ord(text[pos]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and (c & 0x10):
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def polygon_mask(polygons, shape: tuple[int, int]) -> np.ndarray:
    """COCO polygons -> (H, W) bool mask: a flat ``[x1, y1, x2, y2, ...]`` list, a list of ``[x, y]``
    pairs, or a list of either (their union). Pixels whose centre region the polygon covers, as PIL
    fills them (boundary included)."""
    height, width = shape
    polys = _as_polygons(polygons)
    image = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for points in polys:
        draw.polygon(points, fill=1, outline=1)
    return np.array(image, dtype=bool)


def _as_polygons(polygons) -> list[list[tuple[float, float]]]:
    def is_number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(polygons, (list, tuple)) or not polygons:
        raise ConfigError(f"polygon: expected a non-empty list of coordinates, got {polygons!r:.80}")
    if all(is_number(v) for v in polygons):
        polygons = [polygons]
    elif all(isinstance(p, (list, tuple)) and len(p) == 2 and all(is_number(v) for v in p) for p in polygons):
        polygons = [[v for p in polygons for v in p]]
    out = []
    for poly in polygons:
        if isinstance(poly, (list, tuple)) and poly and all(isinstance(p, (list, tuple)) for p in poly):
            poly = [v for p in poly for v in p]
        if not isinstance(poly, (list, tuple)) or len(poly) < 6 or len(poly) % 2 or not all(is_number(v) for v in poly):
            raise ConfigError(f"polygon: expected at least 3 (x, y) points, got {poly!r:.80}")
        out.append([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly), 2)])
    return out


def draw_marks(frame: np.ndarray, regions: Sequence[Region]) -> tuple[np.ndarray, list[MarkLayout]]:
    """Draw SoM marks for ``regions`` on a copy of ``frame`` (H, W, 3) uint8; return it and the layouts.

    Outlines are drawn first (in region order), then all tags, so no outline covers a tag.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ConfigError(f"draw_marks: expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    height, width = frame.shape[:2]
    thickness, glyph = mark_sizes(height, width)
    out = frame.copy()
    masks = [region_mask(r, (height, width)) for r in regions]
    numbers = [mark_number(r.label, i) for i, r in enumerate(regions)]
    colors = _distinct_colors(numbers)

    interiors = []
    for mask, color in zip(masks, colors):
        inner = _erode(mask, thickness)
        out[mask & ~inner] = color
        edge = inner & ~_erode(inner, 1)
        out[edge] = (0, 0, 0)
        interiors.append(_erode(inner, 1))

    layouts = []
    taken = np.zeros((height, width), dtype=bool)
    for region, mask, interior, number, color in zip(regions, masks, interiors, numbers, colors):
        tag = _render_tag(str(number), color, glyph)
        th, tw = tag.shape[:2]
        spot = _first_fit(interior & ~taken, th, tw)
        inside = spot is not None
        if spot is None:
            spot = _outside_spot(mask, th, tw, height, width)
        y, x = spot
        y1, x1 = min(height, y + th), min(width, x + tw)
        out[y:y1, x:x1] = tag[: y1 - y, : x1 - x]
        taken[y:y1, x:x1] = True
        layouts.append(MarkLayout(label=region.label, number=number, color=color, tag_box=(x, y, x1, y1), tag_inside=inside))
    return out, layouts


def _distinct_colors(numbers: Sequence[int]) -> list[tuple[int, int, int]]:
    """Colour ``(n - 1) % len(PALETTE)`` per number, moved to the next unused one on a clash (obj_2, obj_12)."""
    used: set[int] = set()
    colors = []
    for n in numbers:
        k = (n - 1) % len(PALETTE)
        while k in used and len(used) < len(PALETTE):
            k = (k + 1) % len(PALETTE)
        used.add(k)
        colors.append(PALETTE[k])
    return colors


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Square (3x3) binary erosion applied ``steps`` times; pixels outside the frame count as empty."""
    out = mask.copy()
    for _ in range(steps):
        padded = np.pad(out, 1, constant_values=False)
        acc = np.ones_like(out)
        h, w = out.shape
        for dy in range(3):
            for dx in range(3):
                acc &= padded[dy:dy + h, dx:dx + w]
        out = acc
    return out


def _first_fit(free: np.ndarray, th: int, tw: int) -> tuple[int, int] | None:
    """Top-most, then left-most (y, x) where a th x tw rectangle lies entirely in ``free``."""
    h, w = free.shape
    if th > h or tw > w:
        return None
    table = np.zeros((h + 1, w + 1), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(free, axis=0), axis=1)
    sums = table[th:, tw:] - table[:-th, tw:] - table[th:, :-tw] + table[:-th, :-tw]
    ys, xs = np.nonzero(sums == th * tw)
    return (int(ys[0]), int(xs[0])) if ys.size else None


def _outside_spot(mask: np.ndarray, th: int, tw: int, height: int, width: int) -> tuple[int, int]:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 0, 0
    top, bottom, left = int(rows.min()), int(rows.max()), int(cols.min())
    y = top - th if top - th >= 0 else min(bottom + 1, max(0, height - th))
    x = min(max(0, left), max(0, width - tw))
    return y, x


def _render_tag(text: str, color: tuple[int, int, int], glyph: int) -> np.ndarray:
    """(h, w, 3) uint8 tag: coloured fill, 1-px black border, digits in black or white."""
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance >= 128 else (255, 255, 255)
    pad = glyph
    text_w = len(text) * 5 * glyph + (len(text) - 1) * glyph
    tag = np.empty((7 * glyph + 2 * pad + 2, text_w + 2 * pad + 2, 3), dtype=np.uint8)
    tag[:] = color
    tag[0, :] = tag[-1, :] = tag[:, 0] = tag[:, -1] = 0
    for i, ch in enumerate(text):
        bits = np.kron(_GLYPHS[ch], np.ones((glyph, glyph), dtype=bool))
        y0, x0 = 1 + pad, 1 + pad + i * 6 * glyph
        tag[y0:y0 + bits.shape[0], x0:x0 + bits.shape[1]][bits] = ink
    return tag
