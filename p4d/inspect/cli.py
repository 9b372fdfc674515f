"""``p4d inspect``: the typer command function (wired into ``p4d.cli`` by the lead).

Examples::

    p4d inspect cache.zarr --clip 3 --out clip3.png          # grid: frame | depth | flow | motion | rays | F4D PCA
    p4d inspect cache.zarr --clip 3 --out clip3.mp4          # the clip with its maps, at the source timing
    p4d inspect cache.zarr --out cache.html                  # every done clip + status/failure table
    p4d inspect s3://bucket/cache.zarr --clip 0-9 --out first10.html --video-root videos/
    p4d inspect cache.zarr --clip 3 --compare runs/p4d --out cmp.png          # teacher vs student, errors
    p4d inspect cache.zarr --clip 3 --compare runs/p4d --steps all --out steps.png
    p4d inspect cache.zarr --clip 3 --compare runs/p4d --device cuda --out cmp.png   # the student on the GPU, bf16

Heavy modules are imported inside the command, so ``p4d --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def inspect_command(
    store: str = typer.Argument(..., help="Path or fsspec URL of a cache store (may still be being written: done clips only)."),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.png (grid per frame), FILE.mp4 (clip with maps, source timing) or FILE.html (many clips, self-contained)."),
    clip: Optional[str] = typer.Option(None, "--clip", help="Clip index (.png/.mp4; default: the first done clip), or a list/range such as 0-4,7 or 'all' (.html; default all)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame positions to show, e.g. 0,5,10 (.png/.html; default: all for .png)."),
    per_clip: int = typer.Option(4, "--per-clip", help=".html: evenly spaced frames shown per clip when --frames is not given."),
    max_clips: int = typer.Option(50, "--max-clips", help=".html: render at most this many done clips (all are listed in the status table)."),
    video_root: Optional[str] = typer.Option(None, "--video-root", help="Folder to find source videos in when their recorded path is missing (e.g. a store read from a URL)."),
    compare: Optional[str] = typer.Option(None, "--compare", help="A `p4d train` output folder (its newest checkpoint) or one checkpoints/step-K folder: teacher maps vs the student's P̂_m = D_m(F̂_4D) with per-modality errors scaled to each clip's 99th percentile (.png/.mp4/.html)."),
    steps: Optional[str] = typer.Option(None, "--steps", help="With --compare: 'all' or steps such as 1000,2000: P̂_depth of every saved checkpoint beside the teacher's (.png)."),
    device: Optional[str] = typer.Option(None, "--device", help="With --compare: where the student runs, auto (default: CUDA when available) | cpu | cuda."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="With --compare: the student's dtype, auto (default: bfloat16 on CUDA, float32 on the CPU) | float32 | bfloat16."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (.html, .mp4)."),
) -> None:
    """Render cached maps and latents of clips to PNG/MP4/HTML; teacher vs student with --compare."""
    from p4d.inspect.run import inspect_store, parse_frames

    result = inspect_store(
        store, out, clip=clip, frames=parse_frames(frames), per_clip=per_clip, video_root=video_root,
        max_clips=max_clips, compare=compare, steps=steps, progress=progress, device=device, dtype=dtype,
    )
    shown = ", ".join(str(c) for c in result.clips) or "none"
    typer.echo(f"wrote {result.path} (clips: {shown})")
    for c, why in sorted(result.not_rendered.items()):
        typer.echo(f"  clip {c} not rendered: {why}")


def _stride_words(stride: int) -> str:
    """How a clip's maps were sampled, in words: full resolution, every 2nd pixel, every 3rd, ..."""
    if stride == 1:
        return "full resolution"
    suffix = "th" if stride % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    return f"every {stride}{suffix} pixel"


def view_command(
    store: str = typer.Argument(..., help="Path or fsspec URL of a cache store (may still be being written: done clips only)."),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.html: one self-contained page (data embedded, no external requests)."),
    clip: Optional[str] = typer.Option(None, "--clip", help="Clips to embed: an index, a list/range such as 0-4,7, or 'all' done clips (default: the first done clip)."),
    compare: Optional[str] = typer.Option(None, "--compare", help="A `p4d train` output folder or one checkpoints/step-K folder: adds the student's P̂_m = D_m(F̂_4D) and teacher | student | error toggles."),
    budget_mb: float = typer.Option(12.0, "--budget-mb", help="Data per clip in MB: maps are sampled every k-th pixel (k = 1, 2, ...) until a clip fits."),
    video_root: Optional[str] = typer.Option(None, "--video-root", help="Folder to find source videos in when their recorded path is missing (e.g. a store read from a URL)."),
    serve: bool = typer.Option(False, "--serve", help="After writing, serve the page on http://127.0.0.1:PORT/ (this machine only; other done clips open on demand) until Ctrl-C."),
    port: int = typer.Option(8000, "--port", help="With --serve: the port on 127.0.0.1 (0: any free one)."),
    device: Optional[str] = typer.Option(None, "--device", help="With --compare: where the student runs, auto | cpu | cuda."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="With --compare: the student's dtype, auto | float32 | bfloat16."),
) -> None:
    """Interactive page of cached maps: frame slider + play at the clip's timing, depth/flow/motion/rays with
    values under the cursor, teacher | student | error with --compare, rotatable camera, F_4D PCA, store overview.

    Examples: p4d view cache.zarr --clip 3 --out clip3.html;
    p4d view cache.zarr --clip 3 --compare runs/p4d --out cmp.html --serve
    """
    from p4d.inspect.view import serve_view, write_view

    kwargs = dict(clip=clip, compare=compare, video_root=video_root, budget_mb=budget_mb, device=device, dtype=dtype)
    if serve:
        serve_view(store, out, port=port, **kwargs)
        return
    result = write_view(store, out, **kwargs)
    shown = ", ".join(f"{c} ({_stride_words(s)})" for c, s in result.strides.items())
    typer.echo(f"wrote {result.path} ({result.bytes / 1e6:.2f} MB; clips: {shown})")
    for c, why in sorted(result.not_rendered.items()):
        typer.echo(f"  clip {c} not shown: {why}")
