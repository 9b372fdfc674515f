"""The camera trajectory and frustums recovered from a clip's Plücker rays, as a small 3-D plot.

Recovery is :func:`p4d.heads.geometry.camera_from_rays` with ``fixed_intrinsics=True`` (one K
from frame 0, as L4P's camray head): per frame a rotation R_t (camera → frame-0 camera) and a
centre c_t, in grid units (K in ray-grid pixels). The plot uses matplotlib's Agg canvas directly
(no pyplot, no global backend switch).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from p4d.errors import ConfigError

log = logging.getLogger(__name__)

TICK_FONT = 9          # points, at dpi 80: ~10 px high labels
MAX_FRAME_LABELS = 16  # camera centres labelled with their frame number


@dataclass(frozen=True, kw_only=True)
class Trajectory:
    """Cameras of one clip: K (3, 3) in ray-grid units, R (N, 3, 3) camera-to-frame-0 rotations,
    centres (N, 3) in the frame-0 camera's coordinates, grid_hw (h_p, w_p)."""

    K: np.ndarray
    R: np.ndarray
    centres: np.ndarray
    grid_hw: tuple[int, int]

    def frustum_corners(self, scale: float) -> np.ndarray:
        """(N, 4, 3) world points of the image-plane corners at depth ``scale`` (z = scale in each
        camera), in the order top-left, top-right, bottom-right, bottom-left."""
        h, w = self.grid_hw
        px = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
        dirs = px @ np.linalg.inv(self.K).T  # (4, 3), z = 1
        return self.centres[:, None, :] + scale * np.einsum("nij,cj->nci", self.R, dirs)


def trajectory_from_rays(rays: np.ndarray) -> Trajectory:
    """Rays (N, h_p, w_p, 6) → :class:`Trajectory`. ConfigError if the rays give no finite camera
    (e.g. degenerate rays of an untrained teacher)."""
    import torch

    from p4d.heads.geometry import camera_from_rays

    rays = np.asarray(rays, dtype=np.float64)
    if rays.ndim != 4 or rays.shape[-1] != 6:
        raise ConfigError(f"camray: expected (N, h_p, w_p, 6) Plücker rays, found shape {rays.shape}")
    try:
        K, R, c = camera_from_rays(torch.from_numpy(rays), fixed_intrinsics=True)
    except (RuntimeError, ValueError) as exc:  # torch.linalg errors on singular systems
        raise ConfigError(f"camray: no camera recoverable from these rays ({exc})") from exc
    K, R, c = (t.detach().cpu().numpy().astype(np.float64) for t in (K[0], R, c))
    if not (np.isfinite(K).all() and np.isfinite(R).all() and np.isfinite(c).all()) or abs(np.linalg.det(K)) < 1e-12:
        raise ConfigError("camray: no finite camera recoverable from these rays")
    return Trajectory(K=K, R=R, centres=c, grid_hw=(rays.shape[1], rays.shape[2]))


def frustum_scale(traj: Trajectory) -> float:
    """Frustum depth for the plot: a fifth of the trajectory's extent, or 0.2 if it barely moves."""
    extent = float(np.ptp(traj.centres, axis=0).max()) if len(traj.centres) else 0.0
    return 0.2 * extent if extent > 1e-6 else 0.2


def _frustum_segments(traj: Trajectory) -> np.ndarray:
    """(N, 8, 2, 3) line segments per camera (4 image-plane edges, 4 centre-to-corner edges),
    in plot axes (x, z, −y): x right, depth into the plot, y up."""
    c = traj.centres
    corners = traj.frustum_corners(frustum_scale(traj))
    segs = np.empty((len(c), 8, 2, 3))
    for k in range(4):
        segs[:, k, 0], segs[:, k, 1] = corners[:, k], corners[:, (k + 1) % 4]
        segs[:, 4 + k, 0], segs[:, 4 + k, 1] = c, corners[:, k]
    return segs[..., [0, 2, 1]] * np.array([1, 1, -1])


def camera_plot_renderer(rays: np.ndarray, size: tuple[int, int] = (240, 240), *, title: str = "camera"):
    """A function ``highlight -> (height, width, 3) uint8`` drawing the trajectory (black line)
    and one frustum per frame coloured by time (viridis, frame 0 dark), with frame ``highlight``
    (or none) in thick red; each camera centre is labelled with its frame number (every k-th
    beyond ``MAX_FRAME_LABELS``), the three ticks per axis in ``TICK_FONT`` points. The figure is built once; each call only redraws. Rays that give
    no camera render a notice instead of a plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Line3DCollection
    import matplotlib
    import matplotlib.ticker

    height, width = size
    dpi = 80
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    try:
        traj = trajectory_from_rays(rays)
    except ConfigError as exc:
        log.info("camera plot: %s", exc)
        fig.text(0.5, 0.5, "camera not recoverable\nfrom these rays", ha="center", va="center", fontsize=8)
        traj = None
    highlight_lines = None
    segs = None
    if traj is not None:
        ax = fig.add_axes((0.04, 0.04, 0.86, 0.86 if title else 0.92), projection="3d")  # room for the tick labels
        if title:
            fig.text(0.5, 0.95, title, ha="center", va="center", fontsize=8)
        segs = _frustum_segments(traj)
        n = len(segs)
        colours = matplotlib.colormaps["viridis"](np.linspace(0, 1, max(n, 2)))[:n]
        ax.add_collection3d(Line3DCollection(segs.reshape(-1, 2, 3), colors=np.repeat(colours, 8, axis=0),
                                             linewidths=0.7))
        path = traj.centres[:, [0, 2, 1]] * np.array([1, 1, -1])
        ax.plot(path[:, 0], path[:, 1], path[:, 2], color="black", linewidth=1)
        highlight_lines = Line3DCollection(segs[0], colors="red", linewidths=2.0)
        ax.add_collection3d(highlight_lines, autolim=False)
        pts = np.concatenate([path, segs.reshape(-1, 3)])
        mid, half = (pts.max(0) + pts.min(0)) / 2, max(float(np.ptp(pts, axis=0).max()) / 2, 1e-3)
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_zlim(mid[2] - half, mid[2] + half)
        step = 0.8 * half
        decimals = max(0, math.ceil(-math.log10(step)))  # enough digits that the three labels differ
        for axis, name, centre in ((ax.xaxis, "x", mid[0]), (ax.yaxis, "z", mid[1]), (ax.zaxis, "-y", mid[2])):
            # three ticks (the box's ends and centre), few digits, readable at the plot's size
            axis.set_ticks([centre - step, centre, centre + step])
            axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter(f"%.{decimals}f"))
            axis.set_label_text(name, fontsize=TICK_FONT + 1)
            axis.labelpad = 2
        ax.tick_params(labelsize=TICK_FONT, pad=0, length=3)
        every = max(1, math.ceil(n / MAX_FRAME_LABELS))  # frame numbers: all of them up to 16 cameras
        for t in range(0, n, every):
            ax.text(*path[t], f" {t}", fontsize=TICK_FONT, color="black")
    def render(highlight: int | None = None) -> np.ndarray:
        if highlight_lines is not None:
            ok = highlight is not None and 0 <= highlight < len(segs)
            highlight_lines.set_segments(segs[highlight] if ok else np.zeros((0, 2, 3)))
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[:height, :width, :3].copy()

    render.figure = fig  # for tests and callers that add to the plot
    return render


def render_camera_plot(rays: np.ndarray, size: tuple[int, int] = (240, 240), *, title: str = "camera",
                       highlight: int | None = None) -> np.ndarray:
    """(height, width, 3) uint8 plot of the cameras of ``rays`` (see :func:`camera_plot_renderer`)."""
    return camera_plot_renderer(rays, size, title=title)(highlight)
