"""The README demo: synthetic videos -> a planned cache, end to end on a CPU in seconds.

``p4d demo --out demo`` generates a few short H.264 videos (textured objects moving under a
panning camera) on first run, then plans a cache over them with the tiny teacher preset and
prints the cache summary. Later stages (precompute -> train -> inspect) extend this as their
issues land.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run_demo(out: Path, *, num_videos: int = 3, echo=print) -> Path:
    """Run the demo under ``out``; returns the cache path."""
    from p4d.cache_schema import format_summary, open_store
    from p4d.precompute.plan import plan_cache
    from p4d.video.synthetic import write_demo_videos

    out = Path(out)
    video_dir = out / "videos"
    existing = sorted(video_dir.glob("*.mp4")) if video_dir.is_dir() else []
    if len(existing) >= num_videos:
        echo(f"[1/2] reusing {len(existing)} synthetic videos in {video_dir}")
    else:
        paths = write_demo_videos(video_dir, count=num_videos)
        echo(f"[1/2] wrote {len(paths)} synthetic H.264 videos to {video_dir}")

    store_path = out / "cache.zarr"
    store = plan_cache(video_dir, str(store_path), teacher="tiny", overwrite=True, progress=True)
    echo(f"[2/2] planned {store.num_clips} clips in {store.num_shards} shards at {store_path}\n")
    echo(format_summary(open_store(str(store_path))))
    return store_path
