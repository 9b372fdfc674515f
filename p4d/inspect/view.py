"""``p4d view``: cached 4D maps of chosen clips as one interactive, self-contained HTML page.

The page embeds everything it shows (no scripts, styles, fonts or images from anywhere else) and
its script is ``view_assets/view.js`` (plain canvas, shipped in the package). Per clip:

- the frames with a frame slider and play/pause that waits the stored timestamp differences;
- depth, flow (Baker colour wheel), motion (overlay in :func:`colors.motion_color`) and ray
  directions side by side, coloured here by :mod:`p4d.inspect.colors` exactly as the static
  pictures; with ``student`` maps a teacher | student | error toggle (error colour scales: the
  clip's 99th percentile, :func:`compare.error_scale`, written on the legend);
- a hover read-out of the values under the cursor: depth as stored, flow (u, v) in px, motion
  probability σ(logit), ray direction; the values are the stored float16 ones (every ``stride``-th
  pixel, so a read-out is exactly the stored value of the pixel it names);
- the camera trajectory (:func:`camera.trajectory_from_rays`) as a rotatable 3-D plot, frames
  numbered, the current one red; F_4D PCA per tap (:func:`pca.pca_rgb`);
- a store overview: per video a bar of clips done / failed / pending, the codec self-check
  distribution (levels, token cosines), links to the clips.

Size: each clip's data is downsampled by an integer stride (every k-th pixel, k = 1, 2, ...) until
it fits ``budget_mb`` (default 12 MB per clip); the page says which stride was used.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from p4d.cache_schema import STATUS_DONE, STATUS_FAILED, CacheStore, open_store
from p4d.errors import ClipNotAvailableError, ConfigError
from p4d.inspect.clipdata import ClipData, done_clips, load_clip, parse_clip_spec, random_teacher_note
from p4d.inspect.colors import (
    DEPTH_CMAP,
    colorbar,
    depth_range,
    depth_to_rgb,
    flow_legend,
    flow_to_rgb,
    motion_color,
    motion_overlay,
    ray_directions_rgb,
)
from p4d.inspect.panels import notice_tile

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("view_assets")
DEFAULT_BUDGET_MB = 12.0
MAX_STRIDE = 16
#: ids of the page's map views, in display order
MODALITY_ORDER = ("depth", "flow", "motion", "camray")


@dataclass(kw_only=True)
class ViewResult:
    """What :func:`write_view` wrote: the page, its size, the clips embedded with their stride,
    clips that could not be shown (why)."""

    path: Path
    bytes: int
    strides: dict[int, int] = field(default_factory=dict)
    not_rendered: dict[int, str] = field(default_factory=dict)

    @property
    def clips(self) -> list[int]:
        return list(self.strides)


# --- encoding -----------------------------------------------------------------------------------


def f16_b64(values: np.ndarray) -> str:
    """Base64 of ``values`` as little-endian float16, C order (the page decodes it exactly)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f2").tobytes()).decode("ascii")


def image_uri(image: np.ndarray, fmt: str = "PNG") -> str:
    """``data:`` URI of an (h, w, 3) uint8 image (PNG, or JPEG at quality 90 for camera frames)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def sprite(tiles: np.ndarray, fmt: str = "PNG") -> str:
    """(N, h, w, 3) tiles stacked top to bottom into one image, as a data URI: tile t at rows t·h.."""
    return image_uri(np.asarray(tiles).reshape(-1, *tiles.shape[2:]), fmt)


def _grey_frame0(tiles: np.ndarray) -> np.ndarray:
    tiles = tiles.copy()
    tiles[0] = notice_tile(tiles.shape[1], tiles.shape[2], "no flow (frame 0)")
    return tiles


# --- one clip -------------------------------------------------------------------------------------


def _camera(rays: np.ndarray | None) -> dict | None:
    """Camera centres (N, 3) and frustum corners (N, 4, 3) in plot axes (x right, z into the
    scene, −y up), or {"note": why not}."""
    if rays is None:
        return None
    from p4d.inspect.camera import frustum_scale, trajectory_from_rays

    try:
        traj = trajectory_from_rays(rays)
    except ConfigError as exc:
        return {"note": str(exc)}
    flip = np.array([1.0, 1.0, -1.0])
    centres = traj.centres[:, [0, 2, 1]] * flip
    corners = traj.frustum_corners(frustum_scale(traj))[..., [0, 2, 1]] * flip
    return {"centres": np.round(centres, 5).tolist(), "corners": np.round(corners, 5).tolist()}


def _layer(maps: dict[str, np.ndarray], frames: np.ndarray, s: int, scale: dict) -> dict:
    """Images (sprites) and stored values of one set of maps (teacher's or student's), every s-th pixel,
    coloured on the teacher's ``scale``."""
    out = {}
    if "depth" in maps:
        d = maps["depth"][:, ::s, ::s, 0]
        out["depth"] = {"img": sprite(depth_to_rgb(d, *scale["depth"])), "values": f16_b64(d)}
    if "flow" in maps:
        f = maps["flow"][:, ::s, ::s]
        out["flow"] = {"img": sprite(_grey_frame0(flow_to_rgb(f, max_magnitude=scale["flow"]))), "values": f16_b64(f)}
    if "motion" in maps:
        m = maps["motion"][:, ::s, ::s, 0]
        out["motion"] = {"img": sprite(motion_overlay(frames, m, color=scale["motion"]), "JPEG"), "values": f16_b64(m)}
    if "camray" in maps:
        r = maps["camray"]
        out["camray"] = {"img": sprite(ray_directions_rgb(r)), "values": f16_b64(r), "grid": list(r.shape[1:3])}
    return out


def _error_layer(teacher: dict[str, np.ndarray], student: dict[str, np.ndarray], s: int) -> tuple[dict, dict]:
    """(images of the per-pixel errors, legends {modality: {top, unit, percentile}}) — the page
    computes the error values it reads out from the two layers' stored values."""
    from p4d.inspect.compare import ERROR_PERCENTILE, ERROR_UNITS, error_tiles, pixel_errors

    errors = pixel_errors(teacher, student)
    images, legends = {}, {}
    for m, err in errors.items():
        err = err if m == "camray" else err[:, ::s, ::s]
        tiles, _, top = error_tiles(m, err, err.shape[1:3])
        images[m] = {"img": sprite(tiles)}
        legends[m] = {"top": top, "unit": ERROR_UNITS[m], "percentile": ERROR_PERCENTILE}
    return images, legends


def clip_payload(data: ClipData, *, student: dict[str, np.ndarray] | None = None, stride: int = 1,
                 fixed: dict | None = None) -> dict:
    """Everything the page needs for one clip, every ``stride``-th pixel of the dense maps
    (see the module docstring); ``student``: P̂_m in the cache layout, for the toggles; ``fixed``:
    the parts that do not depend on the stride (:func:`stride_free_parts`), when already made."""
    s = int(stride)
    maps = data.maps
    frames = data.frames[:, ::s, ::s]
    scale: dict = {}
    legends: dict = {}
    if "depth" in maps:
        lo, hi = depth_range(maps["depth"])
        scale["depth"] = (lo, hi)
        legends["depth"] = {"bar": image_uri(colorbar(200, 12, DEPTH_CMAP)), "lo": lo, "hi": hi,
                            "text": "depth as stored; bar = 2nd..98th percentile of the clip"}
    if "flow" in maps:
        valid = maps["flow"][1:]
        vmax = float(np.hypot(valid[..., 0], valid[..., 1]).max()) if valid.size else 0.0
        scale["flow"] = vmax
        legends["flow"] = {"wheel": image_uri(flow_legend(64)), "rim": vmax,
                           "text": "backward flow t→t−1 in px (colour wheel, Baker et al.)"}
    if "motion" in maps:
        scale["motion"] = motion_color(data.frames)
        legends["motion"] = {"color": list(scale["motion"]), "text": "σ(motion logit) overlaid on the frame"}
    if "camray" in maps:
        legends["camray"] = {"text": "ray direction d̂ as RGB = (d̂ + 1) / 2, one ray per patch"}
    layers = {"teacher": _layer(maps, frames, s, scale)}
    if student is not None:
        layers["student"] = _layer(student, frames, s, scale)
        layers["error"], legends["error"] = _error_layer(maps, student, s)
    h, w = frames.shape[1:3]
    return {
        "clip": data.clip, "video": data.video, "video_path": data.video_path, "fps": data.fps,
        "title": data.title_lines(), "frame_index": [int(i) for i in data.frame_index],
        "timestamp": [float(t) for t in data.timestamp], "size": list(data.size), "stride": s, "grid": [h, w],
        "frames": sprite(frames, "JPEG"), "layers": layers, "legends": legends,
        **(fixed if fixed is not None else stride_free_parts(data, student)),
    }


def stride_free_parts(data: ClipData, student: dict[str, np.ndarray] | None = None) -> dict:
    """F_4D PCA per tap (:func:`pca.pca_rgb`, sprites of N' latent frames) and the cameras of the
    teacher's (and student's) rays."""
    from p4d.inspect.pca import pca_rgb

    pca = pca_rgb(data.f4d)  # (taps, N', h', w', 3)
    return {
        "pca": [{"tap": int(tap), "img": sprite(pca[k]), "latent_frames": int(pca.shape[1]),
                 "grid": list(pca.shape[2:4])} for k, tap in enumerate(data.taps)],
        "camera": {"teacher": _camera(data.maps.get("camray")),
                   **({"student": _camera(student.get("camray"))} if student is not None else {})},
    }


def budgeted_payload(data: ClipData, *, student=None, budget_mb: float = DEFAULT_BUDGET_MB) -> dict:
    """:func:`clip_payload` at the smallest stride (1, 2, ...) whose JSON fits ``budget_mb``;
    ConfigError naming --budget-mb if even stride MAX_STRIDE does not."""
    if not budget_mb > 0:
        raise ConfigError(f"--budget-mb: expected a positive size in MB, found {budget_mb}")
    limit = budget_mb * 1e6
    per_pixel = 2 * (4 if student is None else 8) * 4 / 3  # float16 values (depth, flow 2, motion) in base64
    n, (h, w) = data.num_frames, data.size
    stride = max(1, int(np.floor(np.sqrt(n * h * w * per_pixel / limit))))  # the values alone need this much
    fixed = stride_free_parts(data, student)
    while stride <= MAX_STRIDE:
        payload = clip_payload(data, student=student, stride=stride, fixed=fixed)
        size = len(json.dumps(payload))
        log.info("clip %d at stride %d: %.2f MB (budget %.1f MB)", data.clip, stride, size / 1e6, budget_mb)
        if size <= limit:
            payload["budget_mb"] = budget_mb
            return payload
        stride += 1
    raise ConfigError(f"--budget-mb {budget_mb}: clip {data.clip} does not fit even at every {MAX_STRIDE}th pixel; "
                      "give a larger budget")


# --- the store overview ---------------------------------------------------------------------------


def store_overview(store: CacheStore) -> dict:
    """Per video: path, clip range and counts by status (with failure reasons); the latent codec
    self-check distribution (levels and token cosines) over done clips."""
    from p4d.cache_schema.fidelity import CODEC_LEVELS
    from p4d.cache_schema.summary import fidelity_records

    status = store.clip_status()
    failures = store.failures()
    videos, first = [], 0
    for row, v in enumerate(store.videos):
        clips = range(first, first + v.num_clips)
        st = status[first:first + v.num_clips]
        videos.append({"video": row, "path": v.path, "first": first, "num_clips": v.num_clips,
                       "done": int((st == STATUS_DONE).sum()), "failed": int((st == STATUS_FAILED).sum()),
                       "pending": int(((st != STATUS_DONE) & (st != STATUS_FAILED)).sum()),
                       "status": [int(x) for x in st], "note": v.note,
                       "reasons": {str(c): failures[c] for c in clips if c in failures}})
        first += v.num_clips
    records = fidelity_records(store)
    codec = {"codec": store.spec.latent_codec, "checked": len(records),
             "levels": {name: sum(1 for r in records.values() if r.get("level", 0) == lv)
                        for lv, name in CODEC_LEVELS.items()}}
    if records:
        for key in ("mean_cosine", "worst_cosine"):
            codec[key] = [float(q) for q in np.quantile([r[key] for r in records.values()], [0.0, 0.5, 1.0])]
    spec = store.spec
    return {"url": store.url, "num_clips": store.num_clips, "status": store.status(), "videos": videos,
            "codec_check": codec, "random_teacher": random_teacher_note(spec),
            "spec": f"N={spec.num_frames}, H×W={spec.height}×{spec.width}, taps {list(spec.taps)}, "
                    f"codec {spec.latent_codec}, maps {', '.join(spec.modalities)}"}


# --- the page ---------------------------------------------------------------------------------------


def render_view(overview: dict, clips: Sequence[dict], *, served: bool = False) -> str:
    """The HTML text: the payload as JSON in a script tag, the shipped CSS and JS inline."""
    payload = {"overview": overview, "clips": list(clips), "served": served}
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    css = (ASSETS / "view.css").read_text(encoding="utf-8")
    js = (ASSETS / "view.js").read_text(encoding="utf-8")
    title = html.escape(f"p4d view: {overview['url']}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n'
            f"<style>{css}</style></head>\n<body>\n<div id=\"app\">loading…</div>\n"
            f'<script type="application/json" id="p4d-data">{data}</script>\n<script>{js}</script>\n</body></html>\n')


def _student_maps(store: CacheStore, run, data: ClipData) -> dict[str, np.ndarray]:
    from p4d.inspect.compare import load_store_heads, maps_from_f4d

    f4d_hat = run.predictor(None)(data.frames, data.timestamp)
    return maps_from_f4d(load_store_heads(store), f4d_hat, store.spec.modalities)


def build_view(store: CacheStore, *, clips: Sequence[int], run=None, video_root=None,
               budget_mb: float = DEFAULT_BUDGET_MB, served: bool = False) -> tuple[str, dict[int, int], dict[int, str]]:
    """(HTML, {clip: stride}, {clip: why not shown}) for ``clips`` of ``store``; ``run`` (a
    :class:`compare.StudentRun`) adds the student's maps and the error layer."""
    payloads, strides, skipped = [], {}, {}
    for c in clips:
        try:
            data = load_clip(store, c, video_root=video_root)
        except ClipNotAvailableError as exc:
            skipped[c] = str(exc)
            continue
        student = _student_maps(store, run, data) if run is not None else None
        payload = budgeted_payload(data, student=student, budget_mb=budget_mb)
        payloads.append(payload)
        strides[c] = payload["stride"]
    if not payloads:
        raise ClipNotAvailableError(f"--clip: none of clips {list(clips)} can be shown ("
                                    + "; ".join(f"{c}: {why}" for c, why in skipped.items()) + ")")
    return render_view(store_overview(store), payloads, served=served), strides, skipped


def pick_view_clips(store: CacheStore, clip: str | int | None) -> list[int]:
    """``--clip`` → clips to embed: the given ones, or the first done clip."""
    picked = parse_clip_spec(clip, store.num_clips)
    if picked is None:
        done = done_clips(store)
        if not done:
            raise ClipNotAvailableError(f"{store.url}: no clip is done yet ({store.status()}); nothing to show")
        return done if clip is not None else done[:1]
    return picked


def write_view(store: str, out: str | os.PathLike, *, clip: str | int | None = None, compare=None,
               video_root: str | None = None, budget_mb: float = DEFAULT_BUDGET_MB, device: str | None = None,
               dtype: str | None = None, served: bool = False) -> ViewResult:
    """``p4d view`` as a function: write the page for ``clip`` of ``store`` to ``out`` (.html).

    compare: a ``p4d train`` run folder / checkpoint (``--compare``), or an object with
    ``predictor(step)`` (:class:`compare.StudentRun`); device / dtype: where the student runs.
    """
    out = Path(out)
    if out.suffix.lower() != ".html":
        raise ConfigError(f"--out {out}: p4d view writes one .html file, found {out.suffix or 'no suffix'!r}")
    cache = open_store(store)
    run = compare
    if isinstance(compare, (str, os.PathLike)):
        from p4d.inspect.compare import open_run
        from p4d.train.model.placement import resolve_placement

        placement = resolve_placement(device, dtype)
        run = open_run(str(compare), cache=cache.url, device=placement[0], dtype=placement[1])
    elif compare is None and (device is not None or dtype is not None):
        raise ConfigError(f"--{'device' if device is not None else 'dtype'}: only used with --compare RUN")
    page, strides, skipped = build_view(cache, clips=pick_view_clips(cache, clip), run=run, video_root=video_root,
                                        budget_mb=budget_mb, served=served)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    size = out.stat().st_size
    log.info("wrote %s (%.2f MB; clips %s)", out, size / 1e6, strides)
    return ViewResult(path=out, bytes=size, strides=strides, not_rendered=skipped)


# --- --serve ----------------------------------------------------------------------------------------


def view_server(page: str, render_clip, *, port: int = 0):
    """An HTTP server on 127.0.0.1 only (never another interface): ``/`` is ``page``, ``/clip/N`` the
    page of clip N (``render_clip(N)`` → HTML, made on first request), anything else 404. Not started."""
    import re
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pages: dict[str, bytes] = {"/": page.encode("utf-8")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            m = re.fullmatch(r"/clip/(\d+)", path)
            status = 200
            try:
                if m and path not in pages:
                    pages[path] = render_clip(int(m.group(1))).encode("utf-8")
                body = pages.get(path)
            except (ClipNotAvailableError, ConfigError) as exc:
                body, status = html.escape(str(exc)).encode("utf-8"), 404
            if body is None:
                body, status = b"not found", 404
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            log.info("serve: " + fmt, *args)

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve_view(store: str, out: str | os.PathLike, *, port: int = 8000, **kwargs) -> None:
    """Write the page (as :func:`write_view`, links to every done clip), then serve it on
    http://127.0.0.1:PORT/ until Ctrl-C; other clips are rendered when their link is opened."""
    result = write_view(store, out, served=True, **kwargs)
    cache = open_store(store)
    kwargs.pop("clip", None)
    run = kwargs.pop("compare", None)
    if isinstance(run, (str, os.PathLike)):
        from p4d.inspect.compare import open_run
        from p4d.train.model.placement import resolve_placement

        device, dtype = resolve_placement(kwargs.pop("device", None), kwargs.pop("dtype", None))
        run = open_run(str(run), cache=cache.url, device=device, dtype=dtype)
    kwargs.pop("device", None), kwargs.pop("dtype", None)
    server = view_server(result.path.read_text(encoding="utf-8"),
                         lambda c: build_view(cache, clips=[c], run=run, served=True, **kwargs)[0], port=port)
    print(f"serving {result.path} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
