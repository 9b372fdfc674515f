"""The README demo: synthetic videos -> a precomputed cache -> a trained tiny student -> pictures, on a CPU
(about 2 CPU-minutes).

``p4d demo --out demo`` generates a few short H.264 videos (textured objects moving under a
panning camera) on first run, runs ``p4d precompute`` over them with the tiny teacher preset
(its shipped weights, trained ~12 CPU-minutes on synthetic scenes: real L4P weights cannot be downloaded here) on
a local dask cluster, prints the cache summary, trains the tiny student for 30 steps on
conversations made from the demo videos (printing the loss terms), and writes ``p4d inspect`` views
of the cache (a PNG of one clip, an HTML page of all). It prints the exact ``p4d`` command of each
stage, and the next commands to try. Rerunning resumes: complete shards are skipped, and training
continues from its last checkpoint (a finished run is not retrained).
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

log = logging.getLogger(__name__)


def run_demo(out: Path, *, num_videos: int = 3, echo=print) -> Path:
    """Run the demo under ``out``; returns the cache path."""
    import typer

    from p4d.cache_schema import STATUS_DONE, format_summary, open_store
    from p4d.cli import app
    from p4d.train.demo import make_demo_conversations, run_demo_training
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute
    from p4d.video.synthetic import write_demo_videos

    out = Path(out)
    video_dir = out / "videos"
    existing = sorted(video_dir.glob("*.mp4")) if video_dir.is_dir() else []
    if len(existing) >= num_videos:
        echo(f"[1/4] reusing {len(existing)} synthetic videos in {video_dir}")
    else:
        paths = write_demo_videos(video_dir, count=num_videos, seconds=3.0)
        echo(f"[1/4] wrote {len(paths)} synthetic H.264 videos to {video_dir}")

    store_path = out / "cache.zarr"
    echo(f"[2/4] p4d precompute {video_dir} {store_path} --teacher tiny --policy stride --frame-stride 2 "
         "--clips-per-shard 4 --workers 1 --device cpu --student-size 56\n"
         "      (the tiny teacher was trained for ~12 CPU-minutes on synthetic scenes like these against their\n"
         "       analytic depth, flow, motion and camera rays: toy targets; real ones need\n"
         "       `--teacher l4p --teacher-weights L4P.ckpt`)")
    report = run_precompute(PrecomputeConfig(
        videos=str(video_dir), store=str(store_path), teacher="tiny", policy="stride", frame_stride=2,
        clips_per_shard=4, workers=1, device="cpu", student_size=56,  # the tiny student's S (`p4d train` checks it)
    ))
    echo(report.headline() + "\n")
    store = open_store(str(store_path))
    echo(format_summary(store))

    conv = make_demo_conversations(video_dir, out / "conversations.jsonl")
    echo("\n[3/4] training the tiny student (the exact command; rerunning the demo continues this run):")
    run_demo_training(conv, store_path, out / "run", steps=30, echo=echo)

    first_done = int(next(i for i, s in enumerate(store.clip_status()) if s == STATUS_DONE))
    echo("\n[4/4] pictures of the cache (the exact commands):")
    for args in inspect_commands(store_path, out, first_done):
        echo(f"p4d {shlex.join(args)}")
        typer.main.get_command(app)(args=args, prog_name="p4d", standalone_mode=False)
    echo("\nnext:\n" + "\n".join(f"  p4d {shlex.join(args)}" for args in next_commands(out)) +
         "\n  (your own videos: p4d precompute VIDEOS STORE --teacher l4p --teacher-weights L4P.ckpt; "
         "docs/precompute.md)")
    return store_path


def inspect_commands(store: Path, out: Path, clip: int) -> list[list[str]]:
    """The demo's ``p4d inspect`` stage: one clip as a PNG, every clip as an HTML page."""
    return [["inspect", str(store), "--out", str(out / "clip.png"), "--clip", str(clip)],
            ["inspect", str(store), "--out", str(out / "cache.html")]]


def next_commands(out: Path) -> list[list[str]]:
    """What to try after the demo: the interactive page (teacher vs student), the toy temporal evaluation."""
    return [["view", str(out / "cache.zarr"), "--compare", str(out / "run"), "--out", str(out / "view.html")],
            ["eval", "make-temporal", str(out / "videos"), str(out / "temporal.jsonl")],
            ["eval", str(out / "temporal.jsonl"), "--model", str(out / "run" / "export"), "--out",
             str(out / "preds.jsonl")]]
