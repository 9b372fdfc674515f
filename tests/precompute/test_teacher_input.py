"""The teacher's input as the release computes it, built identically by precompute and by
``p4d bench train``'s online-teacher path, and checked against a by-hand construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from p4d.bench.train import Paths
from p4d.cache_schema import open_store, read_clip
from p4d.precompute.plan import plan_cache
from p4d.precompute.worker import TeacherJob, process_shard
from p4d.teacher import build_teacher, get_preset
from p4d.train.demo import make_demo_conversations
from p4d.video import decode_frames, teacher_input, write_synthetic_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ti_videos")
    for i in range(2):
        write_synthetic_video(root / f"v{i}.mp4", num_frames=20, fps=10, size=(96, 64), seed=i)
    return root


def _by_hand(path, index, student_size: int, preset) -> torch.Tensor:
    """Native frames -> Pillow bicubic S x S -> [-1, 1] -> torch bilinear antialiased to the teacher's
    size -> (x + 1) / 2 -> (x - mean) / std, as (1, 3, N, h, w)."""
    native = decode_frames(path, index).frames
    small = np.stack([np.asarray(Image.fromarray(f).resize((student_size, student_size), Image.Resampling.BICUBIC))
                      for f in native])
    x = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
    x = F.interpolate(x, size=(preset.img_size, preset.img_size), mode="bilinear", align_corners=False, antialias=True)
    x = (x + 1.0) / 2.0
    x = (x - torch.tensor(preset.mean).view(1, 3, 1, 1)) / torch.tensor(preset.std).view(1, 3, 1, 1)
    return x.permute(1, 0, 2, 3)[None]


def test_precompute_and_online_teacher_build_the_same_release_input(videos, tmp_path):
    url = str(tmp_path / "c.zarr")
    store = plan_cache(str(videos), url, teacher="tiny", clips_per_shard=2)
    assert store.spec.spatial["teacher_input"] == "release" and store.spec.spatial["student_size"] == 448
    seen: dict[int, torch.Tensor] = {}

    def capture(teacher, lock, frames, clip_ids, job, modalities):
        from p4d.precompute.worker import teacher_forward

        for b, i in enumerate(clip_ids):
            seen[i] = torch.as_tensor(frames[b]).clone()
        return teacher_forward(teacher, lock, frames, clip_ids, job, modalities)

    job = TeacherJob(preset=get_preset("tiny"), weights=None, seed=0, device="cpu", dtype="fp32", batch_size=2,
                     max_pixels=None)
    process_shard(url, 0, job, forward=capture)
    store = open_store(url)
    conv = make_demo_conversations(videos, tmp_path / "conv.jsonl")
    paths = Paths(conv, url, tmp_path / "run", {}, torch.device("cpu"))
    first_of_clip = {}
    for k, s in enumerate(paths.samples):
        if s.kind == "video":
            first_of_clip.setdefault(s.clip, k)
    indices = [first_of_clip[c] for c in sorted(first_of_clip)]
    assert sorted(paths.samples[k].clip for k in indices) == [0, 1]  # both clips of shard 0
    online = paths.online_teacher_input(indices)
    preset = get_preset("tiny")
    for b, k in enumerate(indices):
        clip = paths.samples[k].clip
        assert torch.equal(online[b], seen[clip])  # the very same tensor on both paths
        index = read_clip(store, clip, fields=("frame_index",))["frame_index"]
        want = _by_hand(paths.samples[k].media[0], index, 448, preset)[0]
        torch.testing.assert_close(seen[clip], want, atol=1e-5, rtol=0)
        assert seen[clip].shape == (3, 16, 112, 112)


def test_direct_input_is_the_earlier_transform(videos):
    """``direct``: frames decoded straight to the teacher size and normalised by the teacher's own code."""
    spatial = {"input_size": [112, 112], "teacher_input": "direct", "resize": "bilinear, non-aspect-preserving"}
    preset = get_preset("tiny")
    clip = decode_frames(videos / "v0.mp4", np.arange(16), size=(112, 112))
    x = teacher_input(clip.frames[None], spatial, {"mean": list(preset.mean), "std": list(preset.std)})
    torch.manual_seed(0)
    teacher = build_teacher("tiny", device="cpu")
    torch.testing.assert_close(x, teacher.preprocess(torch.from_numpy(clip.frames[None])), atol=1e-6, rtol=0)
