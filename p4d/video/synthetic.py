"""Synthetic test/demo videos: real H.264 files whose frame index is readable from the pixels.

Each frame shows a background (a plain sky over a textured ground, the horizon row random per scene)
seen by a panning camera (amplitude, period and phase random per scene), 2-3 textured objects moving on
their own paths, nearer the larger they look (so depth, flow and motion have something to see),
and, in a strip along the top edge of the stored (unrotated) frame, a 16-block binary code of the frame index that survives
H.264 compression. :func:`read_frame_code` recovers the index, so tests check sampling and
timestamps against truth recovered from the decoded pixels rather than against the decoder code.
:func:`synthetic_clip` gives the frames' analytic 4D truth (depth by layer, flow from the object
paths and the pan, motion mask, Plücker camera rays): the tiny teacher's training targets.

Frame code: 2 rows x 8 blocks, each block ``width // 8`` wide and ``max(8, height // 16)`` high,
black (0) or white (1); the 16-bit word is the 12-bit frame index followed by a 4-bit check
(XOR of the index's three nibbles and 0b1010), most significant bit first, row by row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from p4d.errors import ConfigError

log = logging.getLogger(__name__)

MAX_CODE_INDEX = 4095  # 12 index bits
MIN_WIDTH, MIN_HEIGHT = 64, 32
_VFR_TIME_BASE = Fraction(1, 90000)


def write_synthetic_video(path: str | Path, *, num_frames: int = 48, fps: float = 24,
                          size: tuple[int, int] = (160, 120), seed: int = 0, rotation: int = 0,
                          vfr_timestamps: Sequence[float] | None = None, codec: str = "h264",
                          faststart: bool = False, gop: int | None = None) -> Path:
    """Write a synthetic video to ``path`` (container from the suffix, e.g. .mp4, .mkv) and return it.

    ``size = (width, height)`` of the stored frames (at least 64x32); odd sizes are stored as yuv444p
    (H.264 4:4:4), even ones as yuv420p. ``rotation`` (counter-clockwise degrees, 0/90/180/270) goes
    in the display matrix via ``VideoStream.set_display_rotation`` (a ``rotate`` metadata tag would be
    dropped). ``vfr_timestamps``: explicit per-frame presentation times in seconds (variable frame
    rate, 1/90000 s resolution); otherwise frame i is at i / fps. ``faststart`` puts the mp4 index
    (moov) before the data, so a truncated copy keeps a header that over-counts its frames.
    ``gop``: H.264 keyframe interval in frames (a keyframe exactly every ``gop`` frames; default
    x264's 250 with scene cuts).
    """
    width, height = (int(v) for v in size)
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ConfigError(f"size={size!r}: synthetic videos need at least {MIN_WIDTH}x{MIN_HEIGHT} (width, height)")
    if not 1 <= num_frames <= MAX_CODE_INDEX + 1:
        raise ConfigError(f"num_frames={num_frames}: expected 1..{MAX_CODE_INDEX + 1} (12-bit frame code)")
    if rotation not in (0, 90, 180, 270):
        raise ConfigError(f"rotation={rotation}: expected 0, 90, 180 or 270 degrees")
    if fps <= 0:
        raise ConfigError(f"fps={fps}: expected a positive frame rate")
    pts = _frame_pts(num_frames, fps, vfr_timestamps)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = _Scene(width, height, seed)
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", container_options=container_options) as container:
        rate = Fraction(fps).limit_denominator(100000)
        stream = container.add_stream("libx264" if codec == "h264" else codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        if codec == "h264":
            stream.options = {"crf": "18"} if gop is None else {"crf": "18", "g": str(gop), "keyint_min": str(gop),
                                                                 "sc_threshold": "0"}
        time_base = _VFR_TIME_BASE if vfr_timestamps is not None else 1 / rate
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(scene.render(i), format="rgb24")
            frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    log.debug("wrote synthetic video %s (%d frames, %dx%d)", path, num_frames, width, height)
    return path


def read_frame_code(frame: np.ndarray) -> int:
    """The frame index encoded in a decoded (H, W, 3) frame as stored, i.e. not rotated for display.

    ValueError if a code block is neither clearly black nor clearly white, or the check bits fail.
    """
    frame = np.asarray(frame)
    luma = frame.astype(np.float32).mean(axis=-1) if frame.ndim == 3 else frame.astype(np.float32)
    height, width = luma.shape
    block_h, block_w = _code_layout(height, width)
    word = 0
    for j in range(16):
        top, left = (j // 8) * block_h, (j % 8) * block_w
        dy, dx = block_h // 4, block_w // 4  # read the block's core, away from compression ringing
        core = luma[top + dy: top + block_h - dy, left + dx: left + block_w - dx]
        level = float(core.mean())
        if 64 < level < 192:
            raise ValueError(f"frame code block {j} is neither black nor white (mean level {level:.0f})")
        word = (word << 1) | int(level >= 128)
    index, check = word >> 4, word & 0xF
    if check != _check_nibble(index):
        raise ValueError(f"frame code check failed (read index {index}, check {check:#x})")
    return index


def write_demo_videos(folder: str | Path, count: int = 3, seed: int = 0, seconds: float = 3.0) -> list[Path]:
    """Write ``count`` synthetic 160x120 24 fps H.264 videos of ``seconds`` each as ``demo_000.mp4``, ...

    Video i uses seed ``seed + i``, so the same arguments give the same videos.
    """
    folder = Path(folder)
    fps = 24
    num_frames = max(1, int(round(seconds * fps)))
    return [write_synthetic_video(folder / f"demo_{i:03d}.mp4", num_frames=num_frames, fps=fps, seed=seed + i)
            for i in range(count)]


def _frame_pts(num_frames: int, fps: float, vfr_timestamps) -> list[int]:
    if vfr_timestamps is None:
        return list(range(num_frames))
    times = np.asarray(vfr_timestamps, dtype=np.float64)
    if times.shape != (num_frames,) or times[0] < 0 or np.any(np.diff(times) <= 0):
        raise ConfigError(
            f"vfr_timestamps: expected {num_frames} increasing times >= 0 in seconds, got {times.tolist()}"
        )
    pts = [int(round(t / _VFR_TIME_BASE)) for t in times]
    if len(set(pts)) != num_frames:
        raise ConfigError("vfr_timestamps: two frames fall on the same 1/90000 s tick")
    return pts


def _check_nibble(index: int) -> int:
    return (index & 0xF) ^ ((index >> 4) & 0xF) ^ ((index >> 8) & 0xF) ^ 0b1010


def _code_layout(height: int, width: int) -> tuple[int, int]:
    """(block_h, block_w) of the frame-code blocks for a stored frame of this size."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"frame {width}x{height} is too small to hold a frame code (min {MIN_WIDTH}x{MIN_HEIGHT})")
    return max(8, height // 16), width // 8


def _code_strip(index: int, height: int, width: int) -> np.ndarray:
    """The (2*block_h, width) uint8 strip encoding ``index``; mid-grey right of the 8 blocks."""
    block_h, block_w = _code_layout(height, width)
    word = (index << 4) | _check_nibble(index)
    strip = np.full((2 * block_h, width), 128, dtype=np.uint8)
    for j in range(16):
        bit = (word >> (15 - j)) & 1
        top, left = (j // 8) * block_h, (j % 8) * block_w
        strip[top:top + block_h, left:left + block_w] = 255 * bit
    return strip


class _Scene:
    """A panning sky-over-ground background plus 2-3 textured moving objects, deterministic in ``seed``."""

    def __init__(self, width: int, height: int, seed: int):
        rng = np.random.default_rng(seed)
        self.width, self.height = width, height
        self.pad = max(8, max(width, height) // 4)
        bg_h, bg_w = height + 2 * self.pad, width + 2 * self.pad
        self.horizon = float(rng.uniform(0.25, 0.6) * bg_h)  # background row where the ground meets the sky
        self.ground_near = float(rng.uniform(*_GROUND_NEAR))  # ground distance at the background's bottom row
        ground, sky = _texture(rng, bg_h, bg_w), _sky(rng, bg_h, bg_w)
        self.background = np.where(np.arange(bg_h)[:, None, None] < self.horizon, sky, ground)
        self.code_rows = 2 * _code_layout(height, width)[0]
        # drawn smallest first: a larger object is nearer (distance ∝ 1 / apparent size), so it covers the others
        objects = [_random_object(rng, width, height) for _ in range(int(rng.integers(2, 4)))]
        self.objects = sorted(objects, key=lambda o: o["radius"])
        # the pan: per axis an amplitude (fraction of pad), a period (frames) and a phase
        self.pan = {"amp": (float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.2, 0.6))),
                    "period": (float(rng.uniform(64, 160)), float(rng.uniform(96, 192))),
                    "phase": tuple(float(v) for v in rng.uniform(0, 2 * np.pi, size=2))}

    def offset(self, i: int) -> tuple[int, int]:
        """(ox, oy): the top-left corner of frame i's view into the padded background (the camera pan,
        whole pixels, within [0, 2 * pad])."""
        pad, pan = self.pad, self.pan
        ox, oy = (pad + int(round(pan["amp"][a] * pad * np.sin(2 * np.pi * i / pan["period"][a] + pan["phase"][a])))
                  for a in (0, 1))
        return ox, oy

    def render(self, i: int) -> np.ndarray:
        """Frame i as (H, W, 3) uint8 RGB."""
        ox, oy = self.offset(i)
        frame = self.background[oy:oy + self.height, ox:ox + self.width].copy()
        for obj in self.objects:
            _draw_object(frame, obj, i, self.code_rows)
        frame[:self.code_rows] = _code_strip(i, self.height, self.width)[:, :, None]
        return frame

    def object_depth(self, k: int) -> float:
        """Distance of object k: ``_OBJECT_SIZE`` over its radius as a fraction of min(W, H) (2.0-5.6)."""
        obj = self.objects[k]
        return _OBJECT_SIZE * min(self.width, self.height) / obj["radius"]

    def background_depth(self, rows: np.ndarray) -> np.ndarray:
        """Distance of background rows (padded-background coordinates): the sky, above the horizon, at
        ``_SKY_DEPTH``; the ground below it a plane whose inverse distance falls linearly with the row,
        from 1 / ``ground_near`` at the bottom row to 1 / ``_SKY_DEPTH`` at the horizon."""
        below = np.clip((rows - self.horizon) / (self.background.shape[0] - self.horizon), 0.0, 1.0)
        inverse = 1 / _SKY_DEPTH + (1 / self.ground_near - 1 / _SKY_DEPTH) * below
        return np.where(rows < self.horizon, _SKY_DEPTH, 1 / inverse).astype(np.float32)

    def maps(self, i: int, prev: int | None) -> dict[str, np.ndarray]:
        """Analytic truth of frame i: depth (H, W), backward flow (H, W, 2) = where each pixel of
        frame i was in frame ``prev`` minus where it is (zeros when ``prev`` is None), motion (H, W)
        in {0, 1} (object pixels). The code strip is a screen overlay: depth 1, flow 0, motion 0."""
        height, width, top = self.height, self.width, self.code_rows
        ox, oy = self.offset(i)
        rows = np.arange(height, dtype=np.float32)[:, None] + oy  # background texel rows
        depth = np.broadcast_to(self.background_depth(rows), (height, width)).copy()
        flow = np.zeros((height, width, 2), np.float32)
        if prev is not None:
            pox, poy = self.offset(prev)
            flow[...] = (ox - pox, oy - poy)
        motion = np.zeros((height, width), np.float32)
        for k, obj in enumerate(self.objects):  # in drawing order: later objects cover earlier ones
            footprint = _object_footprint(obj, i, top, height, width)
            if footprint is None:
                continue
            y0, x0, mask, _, _ = footprint
            win = (slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
            depth[win][mask] = self.object_depth(k)
            motion[win][mask] = 1.0
            if prev is not None:
                cx, cy = _object_position(obj, i, top, height, width)
                px, py = _object_position(obj, prev, top, height, width)
                flow[win][mask] = (px - cx, py - cy)
            else:
                flow[win][mask] = 0.0
        depth[:top], flow[:top], motion[:top] = 1.0, 0.0, 0.0
        return {"depth": depth, "flow": flow, "motion": motion}

    def rotation(self, i: int) -> np.ndarray:
        """Camera-to-world rotation (3, 3) of frame i (OpenCV axes): the pan as yaw then pitch about
        the camera centre, angles atan(offset / f) from the unpanned view, f = W pixels."""
        ox, oy = self.offset(i)
        yaw, pitch = np.arctan((ox - self.pad) / self.width), np.arctan((oy - self.pad) / self.width)
        cy_, sy_, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        r_yaw = np.array([[cy_, 0, sy_], [0, 1, 0], [-sy_, 0, cy_]])
        r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # forward (z) turns towards +y (down)
        return r_yaw @ r_pitch


_GROUND_NEAR = (7.0, 10.0)  # range of the ground's distance at the padded background's bottom row
_SKY_DEPTH = 30.0  # distance of the sky (and of the ground at the horizon)
_OBJECT_SIZE = 0.45  # an object's distance times its radius as a fraction of min(W, H)


def synthetic_clip(frame_indices: Sequence[int], *, size: tuple[int, int] = (160, 120), seed: int = 0,
                   ray_grid: tuple[int, int] = (8, 8)) -> dict[str, np.ndarray]:
    """Frames and analytic 4D truth of the frames ``frame_indices`` of the video that
    :func:`write_synthetic_video` writes with this ``size`` and ``seed`` (pixels before H.264):

    frames (N, H, W, 3) uint8; depth (N, H, W, 1) distance (objects 2.0-5.6, ``_OBJECT_SIZE`` over their
    apparent radius, larger in front; sky 30; ground a plane from 7-10 at the bottom to 30 at the
    horizon; code strip 1); flow (N, H, W, 2) backward flow t → t−1 in pixels between
    consecutive *listed* frames (u, v; frame 0 zero: invalid, as the cache flags it); motion
    (N, H, W, 1) 1 on moving objects; camray (N, h_p, w_p, 6) Plücker rays (d, c × d) through the
    centres of a ``ray_grid`` patch grid, relative to the first listed frame's camera (the pan is a
    rotation about a fixed centre, so the moments are 0; intrinsics f = W, principal point centred).
    """
    width, height = (int(v) for v in size)
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ConfigError(f"size={size!r}: synthetic videos need at least {MIN_WIDTH}x{MIN_HEIGHT} (width, height)")
    indices = [int(i) for i in frame_indices]
    if not indices or min(indices) < 0:
        raise ConfigError(f"frame_indices: expected frame numbers >= 0, got {indices}")
    scene = _Scene(width, height, seed)
    frames, depth, flow, motion, rays = [], [], [], [], []
    gh, gw = ray_grid
    v = (np.arange(gh) + 0.5) * height / gh - 0.5 - (height - 1) / 2
    u = (np.arange(gw) + 0.5) * width / gw - 0.5 - (width - 1) / 2
    d_cam = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.full((gh, gw), float(width))), axis=-1)
    d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
    r0 = scene.rotation(indices[0])
    for t, i in enumerate(indices):
        frames.append(scene.render(i))
        m = scene.maps(i, indices[t - 1] if t else None)
        depth.append(m["depth"])
        flow.append(m["flow"])
        motion.append(m["motion"])
        d = d_cam @ (r0.T @ scene.rotation(i)).T
        rays.append(np.concatenate([d, np.zeros_like(d)], axis=-1))
    return {"frames": np.stack(frames), "depth": np.stack(depth)[..., None].astype(np.float32),
            "flow": np.stack(flow).astype(np.float32), "motion": np.stack(motion)[..., None],
            "camray": np.stack(rays).astype(np.float32)}


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8: smooth colour blobs + oriented stripes + fine grain."""
    coarse = rng.uniform(40, 215, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = rng.uniform(0.05, 0.2, size=2)
    stripes = 25 * np.sin(2 * np.pi * (fx * xx + fy * yy))
    grain = rng.normal(0, 8, size=(height, width, 1))
    return np.clip(base + stripes[..., None] + grain, 0, 255).astype(np.uint8)


def _sky(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8: a smooth vertical gradient between two random sky colours, faint
    large clouds and light grain (plainer than the ground's :func:`_texture`, so the horizon shows)."""
    top, bottom = rng.uniform([20, 40, 120], [120, 160, 250], size=(2, 3))
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    coarse = rng.uniform(-25, 25, size=(height // 24 + 2, width // 24 + 2)).astype(np.float32)
    clouds = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    grain = rng.normal(0, 3, size=(height, width, 1))
    return np.clip(top + (bottom - top) * ramp + clouds[..., None] + grain, 0, 255).astype(np.uint8)


def _random_object(rng: np.random.Generator, width: int, height: int) -> dict:
    return {
        "radius": float(rng.uniform(0.08, 0.22) * min(width, height)),
        "disc": bool(rng.integers(0, 2)),
        "colors": rng.uniform(0, 255, size=(2, 3)).astype(np.float32),
        "period": float(rng.uniform(40, 90)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
        "amp": rng.uniform(0.1, 0.35, size=2),
        "center": rng.uniform(0.35, 0.65, size=2),
    }


def _object_position(obj: dict, i: float, top: int, height: int, width: int) -> tuple[float, float]:
    """(cx, cy) in pixels of one object's centre in frame i (below the code strip, rows >= top)."""
    angle = 2 * np.pi * i / obj["period"] + obj["phase"]
    cx = width * (obj["center"][0] + obj["amp"][0] * np.sin(angle))
    cy = top + (height - top) * (obj["center"][1] + obj["amp"][1] * np.cos(angle))
    return float(cx), float(cy)


def _object_footprint(obj: dict, i: int, top: int, height: int, width: int):
    """(y0, x0, mask, u, v) of one object in frame i: its bounding box's corner, the (y, x) bool mask
    of the pixels it covers there, and their offsets from its centre; None when it is off-frame."""
    cx, cy = _object_position(obj, i, top, height, width)
    r = obj["radius"]
    y0, y1 = max(top, int(cy - r)), min(height, int(cy + r) + 1)
    x0, x1 = max(0, int(cx - r)), min(width, int(cx + r) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = xx - cx, yy - cy
    mask = (u * u + v * v <= r * r) if obj["disc"] else (np.abs(u) <= r) & (np.abs(v) <= r)
    return y0, x0, mask, u, v


def _draw_object(frame: np.ndarray, obj: dict, i: int, top: int) -> None:
    """Draw one textured object at its position in frame i, below the code strip (rows >= top)."""
    height, width = frame.shape[:2]
    footprint = _object_footprint(obj, i, top, height, width)
    if footprint is None:
        return
    y0, x0, mask, u, v = footprint
    r = obj["radius"]
    cell = max(2.0, r / 2.5)
    checker = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(bool)
    color = np.where(checker[..., None], obj["colors"][0], obj["colors"][1])
    region = frame[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]
    region[mask] = color[mask].astype(np.uint8)
