"""The MP4: the clip played with its maps side by side, at the source timing.

Frame t of the MP4 is the figure row of frame t (source frame, depth, flow, motion, rays, F_4D
PCA tiles) under the clip's title and the current frame number/timestamp, with the legends below
(the camera plot highlights the current camera). Its presentation time is the stored timestamp
minus the clip's first one (``pts = round((t_i − t_0) / time_base)``, time base 1/90000 s), so a
variable-frame-rate or strided clip plays exactly at the source timing. H.264 (libx264, yuv420p;
odd figure sizes are padded by one white pixel).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from p4d.errors import ConfigError
from p4d.inspect.camera import camera_plot_renderer
from p4d.inspect.figure import FigureLayout, compose
from p4d.inspect.panels import CAMERA_PLOT_SIZE, Panels, captioned

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)


def presentation_times(timestamps: np.ndarray) -> np.ndarray:
    """Stored timestamps (N,) seconds → MP4 pts (N,) int64 in ``TIME_BASE`` units, from 0.

    ConfigError if they are not strictly increasing (a clip must be playable in order)."""
    t = np.asarray(timestamps, dtype=np.float64)
    pts = np.round((t - t[0]) / float(TIME_BASE)).astype(np.int64)
    if t.ndim != 1 or np.any(np.diff(pts) <= 0):
        raise ConfigError(f"timestamps: expected strictly increasing seconds, found {t.tolist()}")
    return pts


def _fit(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``img`` on a white (h, w) canvas (cropped if larger): every MP4 frame has one size."""
    if img.shape[:2] == hw:
        return img
    out = np.full((*hw, 3), 255, np.uint8)
    h, w = min(hw[0], img.shape[0]), min(hw[1], img.shape[1])
    out[:h, :w] = img[:h, :w]
    return out


def video_frames(panels: Panels, timestamps: np.ndarray, *, highlight_camera: bool = True):
    """Yield (RGB frame (h, w, 3) uint8, layout) for every clip frame, in order."""
    n = panels.num_frames
    camera = highlight_camera and panels.rays is not None and panels.camera_legend is not None
    plot = camera_plot_renderer(panels.rays, CAMERA_PLOT_SIZE, title="") if camera else None
    for t in range(n):
        legends = list(panels.legends)
        if plot is not None:
            legends[panels.camera_legend] = captioned(f"camera from rays (frame {t} red)", plot(t))
        label = " ".join(panels.row_labels[t])
        yield compose(panels, [t], extra_title=[f"now: {label}"], legends=legends)


def write_mp4(panels: Panels, timestamps: np.ndarray, path: str | Path, *, crf: int = 20,
              highlight_camera: bool = True, progress: bool = False) -> FigureLayout:
    """Write the clip video to ``path`` (.mp4); returns the layout of its (unpadded) frames."""
    import av
    from tqdm import tqdm

    pts = presentation_times(timestamps)
    if len(pts) != panels.num_frames:
        raise ConfigError(f"timestamps: expected {panels.num_frames} values (one per frame), found {len(pts)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = (pts[-1] - pts[0]) * float(TIME_BASE)
    fps = (len(pts) - 1) / duration if len(pts) > 1 and duration > 0 else 1.0
    layout = None
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        stream.codec_context.time_base = TIME_BASE
        frames = video_frames(panels, timestamps, highlight_camera=highlight_camera)
        for i, (img, lay) in enumerate(tqdm(frames, total=panels.num_frames, disable=not progress, desc="mp4")):
            if layout is None:
                layout = lay
                stream.height, stream.width = (v + v % 2 for v in img.shape[:2])
            img = _fit(img, (stream.height, stream.width))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = int(pts[i]), TIME_BASE
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    log.info("wrote %s (%d frames, %d x %d)", path, len(pts), *layout.size)
    return layout
