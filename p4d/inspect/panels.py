"""A clip turned into image tiles: one column per view, one tile per frame, plus legends.

Columns (those the store holds): ``frame`` (decoded source frame), ``depth`` (colormap over the
clip's range), ``flow`` (colour wheel, one max magnitude per clip; frame 0 is invalid and shown
grey), ``motion`` (sigmoid of the logits overlaid on the frame), ``rays`` (ray direction as RGB,
one ray per patch upsampled to H × W) and ``F4D tap l`` (PCA-to-RGB of tap l with one basis per
clip; frame t shows latent frame ⌊t·N'/N⌋, upsampled from h' × w'). Legends: the depth colorbar
with its value range, the flow wheel with its scale, the motion colour, and the camera
trajectory/frustums recovered from the rays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from p4d.inspect.camera import render_camera_plot
from p4d.inspect.clipdata import ClipData
from p4d.inspect.colors import (
    MOTION_COLOR,
    colorbar,
    depth_range,
    depth_to_rgb,
    flow_legend,
    flow_to_rgb,
    motion_color,
    motion_overlay,
    ray_directions_rgb,
    upsample_nearest,
)
from p4d.inspect.pca import pca_rgb

FONT_SIZE = 12
LINE_HEIGHT = 16
INVALID_GREY = 160
CAMERA_PLOT_SIZE = (360, 360)


def font(size: int = FONT_SIZE):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def draw_text(img: Image.Image, xy: tuple[int, int], text: str, *, size: int = FONT_SIZE,
              fill=(0, 0, 0), anchor: str = "la") -> None:
    ImageDraw.Draw(img).text(xy, text, fill=fill, font=font(size), anchor=anchor)


def text_width(text: str, size: int = FONT_SIZE) -> int:
    return int(np.ceil(font(size).getlength(text)))


def notice_tile(height: int, width: int, text: str) -> np.ndarray:
    """(height, width, 3) grey tile with ``text`` centred."""
    img = Image.new("RGB", (width, height), (INVALID_GREY,) * 3)
    draw_text(img, (width // 2, height // 2), text, anchor="mm", size=min(FONT_SIZE, max(6, width // 10)))
    return np.asarray(img)


def captioned(caption: str, image: np.ndarray, *, under: tuple[str, str] | None = None) -> np.ndarray:
    """``image`` with ``caption`` above it (and, with ``under`` = (left, right), labels below its
    left and right ends, e.g. a colorbar's range), on white."""
    h, w = image.shape[:2]
    total_w = max(w, text_width(caption) + 2)
    extra = LINE_HEIGHT if under else 0
    canvas = Image.new("RGB", (total_w, LINE_HEIGHT + h + extra), (255, 255, 255))
    draw_text(canvas, (0, 1), caption)
    canvas.paste(Image.fromarray(image), (0, LINE_HEIGHT))
    if under:
        draw_text(canvas, (0, LINE_HEIGHT + h + 1), under[0])
        draw_text(canvas, (w, LINE_HEIGHT + h + 1), under[1], anchor="ra")
    return np.asarray(canvas)


@dataclass(kw_only=True)
class Panels:
    """Tiles of one clip. ``tiles[k]`` is (N, H, W, 3) uint8 for column ``columns[k]``;
    ``legends`` are RGB images shown under the grid; ``rays`` (N, h_p, w_p, 6) or None and
    ``camera_legend`` (the index of the camera plot in ``legends``, or None) let a video
    highlight the current camera."""

    title: list[str]
    columns: list[str]
    tiles: list[np.ndarray]
    row_labels: list[list[str]]
    legends: list[np.ndarray]
    rays: np.ndarray | None = None
    camera_legend: int | None = None
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.tiles[0].shape[0])

    @property
    def tile_size(self) -> tuple[int, int]:
        return int(self.tiles[0].shape[1]), int(self.tiles[0].shape[2])


def row_labels(frame_index: np.ndarray, timestamp: np.ndarray) -> list[list[str]]:
    """Per frame: ["frame #i", "t = s.sss s"]."""
    return [[f"frame #{int(i)}", f"t = {float(t):.3f} s"] for i, t in zip(frame_index, timestamp)]


def depth_tiles(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tiles (N, H, W, 3), legend) for a depth clip (N, H, W, 1)."""
    lo, hi = depth_range(depth)
    finite = depth[np.isfinite(depth)]
    dmin, dmax = (float(finite.min()), float(finite.max())) if finite.size else (float("nan"),) * 2
    legend = captioned(f"depth: bar = 2nd..98th percentile, clipped (data {dmin:.4g}..{dmax:.4g})",
                       colorbar(200, 14), under=(f"{lo:.4g} (near)", f"{hi:.4g} (far)"))
    return depth_to_rgb(depth, lo, hi), legend


def flow_tiles(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tiles, legend) for backward flow (N, H, W, 2); frame 0 is invalid (grey)."""
    n, h, w, _ = flow.shape
    valid = flow[1:] if n > 1 else flow[:0]
    mag = np.hypot(valid[..., 0], valid[..., 1]) if valid.size else np.zeros(1)
    vmax = float(np.nanmax(mag)) if mag.size else 0.0
    tiles = flow_to_rgb(flow, max_magnitude=vmax)
    tiles[0] = notice_tile(h, w, "no flow (frame 0)")
    legend = captioned(f"backward flow t->t-1, rim = {vmax:.3g} px", labelled_wheel(flow_legend(96)))
    return tiles, legend


def labelled_wheel(wheel: np.ndarray) -> np.ndarray:
    """The flow wheel with the direction each rim colour means written around it (image axes:
    "up" = pixels moving towards the top of the frame)."""
    size = wheel.shape[0]
    side = text_width("right") + 4
    canvas = Image.new("RGB", (size + 2 * side, size + 2 * LINE_HEIGHT), (255, 255, 255))
    canvas.paste(Image.fromarray(wheel), (side, LINE_HEIGHT))
    mid_x, mid_y = side + size // 2, LINE_HEIGHT + size // 2
    draw_text(canvas, (mid_x, LINE_HEIGHT - 2), "up", anchor="md")
    draw_text(canvas, (mid_x, LINE_HEIGHT + size + 2), "down", anchor="ma")
    draw_text(canvas, (side - 2, mid_y), "left", anchor="rm")
    draw_text(canvas, (side + size + 2, mid_y), "right", anchor="lm")
    return np.asarray(canvas)


def motion_legend(color: tuple[int, int, int] = MOTION_COLOR) -> np.ndarray:
    """The overlay's opacity scale in ``color`` (the clip's :func:`motion_color`)."""
    bar = np.full((14, 200, 3), 200, np.uint8)
    logits = np.log(np.linspace(1e-3, 1 - 1e-3, 200) / (1 - np.linspace(1e-3, 1 - 1e-3, 200)))
    img = motion_overlay(bar, np.broadcast_to(logits[None, :, None], (14, 200, 1)), color=color)
    return captioned(f"motion: sigmoid(logit) overlaid in RGB{tuple(color)}", img, under=("0", "1"))


def clip_panels(data: ClipData, *, camera_plot: bool = True) -> Panels:
    """Tiles and legends of every view of ``data`` (see the module docstring)."""
    h, w = data.size
    n = data.num_frames
    columns, tiles, legends = ["frame"], [data.frames], []
    maps = data.maps
    if "depth" in maps:
        t, leg = depth_tiles(maps["depth"])
        columns.append("depth")
        tiles.append(t)
        legends.append(leg)
    if "flow" in maps:
        t, leg = flow_tiles(maps["flow"])
        columns.append("flow")
        tiles.append(t)
        legends.append(leg)
    if "motion" in maps:
        color = motion_color(data.frames)
        columns.append("motion")
        tiles.append(motion_overlay(data.frames, maps["motion"], color=color))
        legends.append(motion_legend(color))
    rays = maps.get("camray")
    camera_legend = None
    if rays is not None:
        columns.append("rays (dir. RGB)")
        tiles.append(upsample_nearest(ray_directions_rgb(rays), h, w))
        if camera_plot:
            camera_legend = len(legends)
            legends.append(captioned("camera from rays", render_camera_plot(rays, CAMERA_PLOT_SIZE, title="")))
    pca = pca_rgb(data.f4d)  # (taps, N', h', w', 3)
    latent_of_frame = (np.arange(n) * pca.shape[1]) // n
    for k, tap in enumerate(data.taps):
        columns.append(f"F4D tap {tap} (PCA)")
        tiles.append(upsample_nearest(pca[k][latent_of_frame], h, w))
    return Panels(title=data.title_lines(), columns=columns, tiles=tiles,
                  row_labels=row_labels(data.frame_index, data.timestamp), legends=legends, rays=rays,
                  camera_legend=camera_legend)
