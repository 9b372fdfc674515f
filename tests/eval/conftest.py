"""Fixtures for p4d.eval tests: a tiny real H.264 video and factories for benchmark items and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p4d.video import write_synthetic_video

FPS = 12
NUM_FRAMES = 24  # 2 s at 12 fps: frame i at i / 12 s
SIZE = (96, 64)  # (width, height)


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    """A real 2 s H.264 file, 24 frames at 12 fps, 96x64."""
    return write_synthetic_video(tmp_path_factory.mktemp("eval_videos") / "clip.mp4", num_frames=NUM_FRAMES, fps=FPS,
                                 size=SIZE, seed=5)


@pytest.fixture
def write_bench():
    """write_bench(path, items, jsonl=False) -> path."""
    def write(path: Path, items: list[dict], *, jsonl: bool = False) -> Path:
        if jsonl:
            path.write_text("".join(json.dumps(i) + "\n" for i in items))
        else:
            path.write_text(json.dumps(items))
        return path
    return write


@pytest.fixture
def mcq(video):
    """mcq(id, category, answer="A", n_options=4, **fields) -> an item dict on the fixture video."""
    def make(item_id: str, category: str, answer: str = "A", n_options: int = 4, **extra) -> dict:
        return {"id": item_id, "video": str(video), "question": f"Question {item_id}?",
                "options": [f"option {k}" for k in range(n_options)], "answer": answer, "category": category, **extra}
    return make
