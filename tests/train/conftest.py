"""Shared fixtures for the trainer tests: one tiny-teacher cache over real H.264 videos per
session (5 good videos, one clip each, plus one undecodable file), and conversation writers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from p4d.video import write_synthetic_video

GOOD = 5
FRAMES, FPS = 20, 10
#: the tiny student's S: the cache's teacher input is made from frames squashed to it (the trainer checks)
TINY_STUDENT_SIZE = 56


def write_jsonl(path: Path, records: list) -> Path:
    """One JSON value per line; a str entry is written verbatim (a malformed line)."""
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def record(video: str, answer: str = "A", rid: str | None = None, question: str = "<video>\nWhich way does it move?\nA. left\nB. right", **extra) -> dict:
    return {"id": rid or Path(video).stem, "video": video,
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}], **extra}


def good_records() -> list[dict]:
    """One record per good video; every answer is one token, so per-sample SFT losses weigh alike."""
    return [record(f"videos/v{i}.mp4", "AB"[i % 2]) for i in range(GOOD)]


@pytest.fixture(scope="session")
def train_cache(tmp_path_factory) -> SimpleNamespace:
    """root/videos/{bad,v0..v4}.mp4 and root/cache.zarr (tiny teacher, uniform, 2 clips per shard).

    Clip order is the sorted paths: clip 0 = bad.mp4 (failed), clips 1-5 = v0-v4 (done);
    shards {0,1}, {2,3}, {4,5}.
    """
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    root = tmp_path_factory.mktemp("train_cache")
    videos = root / "videos"
    videos.mkdir()
    for i in range(GOOD):
        write_synthetic_video(videos / f"v{i}.mp4", num_frames=FRAMES, fps=FPS, size=(96, 64), seed=i)
    (videos / "bad.mp4").write_text("not a video\n")
    store = root / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(videos), store=str(store), teacher="tiny", policy="uniform",
                                    clips_per_shard=2, workers=1, device="cpu", progress=False,
                                    student_size=TINY_STUDENT_SIZE))
    return SimpleNamespace(root=root, videos=videos, store=str(store))


@pytest.fixture
def conversations(train_cache) -> Path:
    """The good records, written next to the videos (relative paths)."""
    return write_jsonl(train_cache.root / "good.jsonl", good_records())


def small_config(train_cache, out: Path, conversations_file: Path | None = None, **sections):
    """A validated TrainConfig for fast CPU runs (tiny student, no tqdm, high learning rates)."""
    from p4d.train.config import merge, resolve_config

    base = {
        "out": str(out),
        "data": {"conversations": str(conversations_file or train_cache.root / "good.jsonl"), "cache": train_cache.store,
                 "batch_size": 2},
        "optim": {"max_steps": 4, "lr_llm": 2e-3, "lr_projector": 2e-3, "lr_d4dp": 2e-3, "warmup_steps": 1},
        "log": {"progress": False, "tensorboard": False},
        "checkpoint": {"export": False},
        "model": {"preset": "tiny"},
    }
    return resolve_config(overrides=merge(base, sections))
