"""p4d.targets on a synthetic store: lookups by (video, frame indices), layouts, the miss rules."""

from __future__ import annotations

import numpy as np
import pytest

from p4d.cache_schema import CacheSpec, VideoEntry, create_store, read_clips, write_shard
from p4d.targets import MissingTargetsError, open_targets
from p4d.video.sampling import plan_clips
from tests.cache_schema.helpers import clip_truth

N = 4
SAMPLING = {"num_frames": N, "policy": "stride", "frame_stride": 2}


def _spec() -> CacheSpec:
    return CacheSpec(taps=(3, 7), num_frames=N, height=16, width=12, latent_frames=2, latent_height=4, latent_width=3,
                     latent_dim=8, ray_height=4, ray_width=3, clips_per_shard=2, sampling=SAMPLING,
                     teacher={"name": "synthetic", "preset": "test", "config": {}, "weights_hash": "sha256:abc"})


def _plan(video: VideoEntry) -> list[np.ndarray]:
    return plan_clips(video.num_frames, **SAMPLING)[:video.num_clips]


@pytest.fixture
def store(tmp_path):
    """Videos a (2 clips), b (2 clips), c (1 clip): clips 0-1 a, 2-3 b, 4 c. Shards {0,1} done,
    {2,3} done with clip 3 failed, {4} pending."""
    videos = [VideoEntry(path=str(tmp_path / f"{n}.mp4"), size_bytes=1, content_hash="", fps=24.0, duration=2.0,
                         num_frames=48, width=64, height=48, rotation=0, num_clips=k) for n, k in zip("abc", (2, 2, 1))]
    st = create_store(str(tmp_path / "cache.zarr"), _spec(), videos)
    frames = [f for v in videos for f in _plan(v)]
    for shard in (0, 1):
        rows = [dict(clip_truth(st.spec, i), frame_index=frames[i]) for i in st.shard_clips(shard)]
        write_shard(st, shard, {k: np.stack([r[k] for r in rows]) for k in rows[0]},
                    failures={3: "decode error: truncated file"} if shard == 1 else None)
    return st


def test_release_layout_is_the_stored_targets_channels_first(store, tmp_path):
    a, b = (_plan(v) for v in store.videos[:2])
    reader = open_targets(store, layout="release")
    out = reader.get([str(tmp_path / "b.mp4"), str(tmp_path / "a.mp4")], np.stack([b[0], a[1]]))
    truth = read_clips(store, [2, 1])
    assert set(out) == {"l4p_encs", "pred_depth", "pred_flow_2d_backward", "pred_dyn_mask", "pred_camray"}
    assert out["l4p_encs"].shape == (2, 2, 2, 8, 4, 3)  # (B, taps, N', c', h', w')
    assert out["pred_depth"].shape == (2, 1, N, 16, 12) and out["pred_flow_2d_backward"].shape == (2, 2, N, 16, 12)
    assert out["pred_dyn_mask"].shape == (2, 1, N, 16, 12) and out["pred_camray"].shape == (2, 6, N, 4, 3)
    # element by element: l4p_encs[b, t, n, c, y, x] = f4d[b, t, n, y, x, c]; maps [b, c, n, y, x] = [b, n, y, x, c]
    assert out["l4p_encs"][1, 0, 1, 5, 2, 1] == truth["f4d"][1, 0, 1, 2, 1, 5]
    assert out["pred_flow_2d_backward"][0, 1, 3, 7, 4] == truth["flow"][0, 3, 7, 4, 1]
    assert out["pred_camray"][1, 4, 2, 3, 0] == truth["camray"][1, 2, 3, 0, 4]
    p4d = open_targets(store, layout="p4d").get([str(tmp_path / "a.mp4")], a[1][None])
    np.testing.assert_array_equal(p4d["depth"], truth["depth"][1:])
    np.testing.assert_array_equal(p4d["frame_index"][0], a[1])
    assert reader.served == 2


def test_torch_device_decode_equals_the_host_decode(store, tmp_path):
    import torch

    a = _plan(store.videos[0])
    host = open_targets(store).get([str(tmp_path / "a.mp4")] * 2, np.stack(a))
    dev = open_targets(store, device="cpu").get([str(tmp_path / "a.mp4")] * 2, np.stack(a))
    for k, v in host.items():
        assert isinstance(dev[k], torch.Tensor) and dev[k].dtype == torch.float32
        np.testing.assert_array_equal(dev[k].numpy(), v)


@pytest.mark.parametrize("case, reason, match", [
    ("missing", "not_in_cache", "not in the cache"),
    ("frames", "other_frames", "holds other frames of this video"),
    ("failed", "failed_clip", "failed in precompute: decode error: truncated file"),
    ("pending", "pending_clip", "is pending"),
    ("teacher", "other_teacher", "holds teacher weights sha256:abc, not sha256:other"),
])
def test_every_miss_raises_one_clear_error_or_is_skipped_and_counted(store, tmp_path, case, reason, match):
    a, b, c = (_plan(v) for v in store.videos)
    video, frames = {"missing": ("z.mp4", a[0]), "frames": ("a.mp4", a[0] + 1), "failed": ("b.mp4", b[1]),
                     "pending": ("c.mp4", c[0]), "teacher": ("a.mp4", a[0])}[case]
    hash_ = "sha256:other" if case == "teacher" else None
    reader = open_targets(store, teacher_hash=hash_)
    with pytest.raises(MissingTargetsError, match=match) as err:
        reader.get([str(tmp_path / "a.mp4"), str(tmp_path / video)], np.stack([a[1], frames]))
    assert err.value.reason == reason and "\n" not in str(err.value)
    skip = open_targets(store, teacher_hash=hash_, on_missing="skip")
    assert skip.get([str(tmp_path / video)], frames[None]) is None
    assert skip.get([str(tmp_path / video)], frames[None]) is None
    assert skip.misses == {reason: 2} and skip.served == 0
    if case != "teacher":  # the good request alone is served
        assert skip.get([str(tmp_path / "a.mp4")], a[1][None])["l4p_encs"].shape[0] == 1


def test_relative_paths_resolve_under_video_root_and_bad_arguments_are_config_errors(store, tmp_path):
    from p4d.errors import ConfigError

    a = _plan(store.videos[0])
    reader = open_targets(store, video_root=tmp_path)
    assert reader.get(["a.mp4"], a[0][None])["pred_depth"].shape[0] == 1
    np.testing.assert_array_equal(reader.cached_frames("a.mp4", 1), a[1])  # stride 2: [8, 10, 12, 14]
    assert reader.cached_frames("a.mp4", 1).tolist() == [8, 10, 12, 14]
    with pytest.raises(MissingTargetsError, match="holds 2 clip\\(s\\) of it, not clip 2"):
        reader.cached_frames("a.mp4", 2)
    with pytest.raises(ConfigError, match="layout='nhwc'"):
        open_targets(store, layout="nhwc")
    with pytest.raises(ConfigError, match="on_missing='fallback'"):
        open_targets(store, on_missing="fallback")
    with pytest.raises(ConfigError, match=r"frame indices \(B, N\)"):
        open_targets(store).get(str(tmp_path / "a.mp4"), a[0])


def test_importing_p4d_targets_needs_no_torch():
    import subprocess
    import sys

    code = ("import sys, p4d.targets.lookup, p4d.targets.layouts; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert not [m for m in sys.modules if m.startswith(('p4d.teacher', 'p4d.precompute'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_reader_pickles_for_dataloader_workers(store, tmp_path):
    import pickle

    a = _plan(store.videos[0])
    reader = open_targets(store, on_missing="skip")
    reader.get([str(tmp_path / "z.mp4")], a[0][None])  # a miss, counted
    again = pickle.loads(pickle.dumps(reader))
    assert again.misses == {"not_in_cache": 1}
    np.testing.assert_array_equal(again.get([str(tmp_path / "a.mp4")], a[0][None])["l4p_encs"],
                                  reader.get([str(tmp_path / "a.mp4")], a[0][None])["l4p_encs"])
