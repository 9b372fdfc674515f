"""Factories for precompute tests: real H.264 videos, good and bad, named by a list file."""

from pathlib import Path

import numpy as np
import pytest

from p4d.video import write_synthetic_video

FPS = 12
FRAMES = 34  # stride policy, N=16, stride 1 -> 2 whole clips per video
BAD = ("bad_empty.mp4", "bad_random.mp4", "bad_text.mp4", "bad_truncated.mp4", "missing.mp4")


def make_videos(root: Path) -> Path:
    """3 good videos (2 clips each under --policy stride) and 5 bad entries; returns the list file.

    Bad: a zero-byte file, random bytes, a text file renamed .mp4, the first half of a good mp4,
    and a path that does not exist. Sorted order: the 4 bad files, good0-2, missing.mp4.
    """
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        write_synthetic_video(root / f"good{i}.mp4", num_frames=FRAMES, fps=FPS, size=(96, 64), seed=i)
    (root / "bad_random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "bad_empty.mp4").write_bytes(b"")
    (root / "bad_text.mp4").write_text("this is not a video\n" * 20)
    good = (root / "good0.mp4").read_bytes()
    (root / "bad_truncated.mp4").write_bytes(good[: len(good) // 2])
    listing = root / "videos.txt"
    names = sorted(p.name for p in root.glob("*.mp4")) + ["missing.mp4"]
    listing.write_text("# test videos\n" + "\n".join(names) + "\n")
    return listing


@pytest.fixture(scope="session")
def video_list(tmp_path_factory) -> Path:
    return make_videos(tmp_path_factory.mktemp("videos"))
