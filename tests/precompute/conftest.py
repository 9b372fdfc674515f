"""Factories for precompute tests: a folder of real H.264 videos, good and bad."""

from pathlib import Path

import numpy as np
import pytest

from p4d.video import write_synthetic_video

FPS = 12
FRAMES = 34  # stride policy, N=16, stride 1 -> 2 whole clips per video


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory) -> Path:
    """3 good videos (2 clips each under --policy stride) + a random-bytes .mp4 + an empty .mp4."""
    root = tmp_path_factory.mktemp("videos")
    for i in range(3):
        write_synthetic_video(root / f"good{i}.mp4", num_frames=FRAMES, fps=FPS, size=(96, 64), seed=i)
    (root / "bad_random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "bad_empty.mp4").write_bytes(b"")
    return root
