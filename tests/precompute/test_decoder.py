"""--decoder in the worker: the GPU path's fallback to PyAV, frames handed to the device either way,
the resolved decoder recorded per shard, and a clear error for --decoder gpu without a GPU."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from p4d.errors import ConfigError
from p4d.precompute import worker
from p4d.video import decode_clips, write_synthetic_video
from p4d.video import gpu_decode


@pytest.fixture()
def video(tmp_path):
    return write_synthetic_video(tmp_path / "v.mp4", num_frames=20, fps=10, size=(64, 48), seed=5)


def _plan(clips):
    return {i: (0, c) for i, c in enumerate(clips)}


@pytest.mark.parametrize("error", [gpu_decode.GpuDecodeUnsupported("repeated or missing packet pts"),
                                   RuntimeError("CUDA_ERROR_NO_DEVICE")])  # an NVDEC/driver error: same fallback
def test_a_video_the_gpu_cannot_match_is_decoded_by_pyav_and_counted(video, monkeypatch, error):
    def unsupported(*a, **k):
        raise error

    monkeypatch.setattr(gpu_decode, "decode_clips_gpu", unsupported)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())  # no GPU here
    clips = [np.arange(0, 8, 2), np.arange(8, 16, 2)]
    out, stats = worker._decode_video(str(video), [0, 1], _plan(clips), (24, 24), "bicubic", None, gpu=0)
    ref = decode_clips(video, clips, size=(24, 24), filter="bicubic")
    assert stats.fallbacks == 1 and stats.paths == ["sequential"]
    for i in (0, 1):
        np.testing.assert_array_equal(out[i].frames, ref[i].frames)


def test_gpu_decoded_clips_reach_the_device_as_pyav_ones_do(video, monkeypatch):
    from tests.video.test_gpu_decode import PyAVSource

    real = gpu_decode.decode_clips_gpu
    monkeypatch.setattr(gpu_decode, "decode_clips_gpu", lambda *a, **k: real(*a, **{**k, "source": PyAVSource}))
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    clips = [np.arange(0, 16, 4), np.arange(1, 17, 4)]
    out, stats = worker._decode_video(str(video), [0, 1], _plan(clips), None, "bilinear", None, gpu=0)
    assert stats.paths == ["gpu"] and stats.fallbacks == 0
    ref = decode_clips(video, clips)
    on_device = worker._frames_on_device([out[0].frames, out[1].frames], "cpu")
    assert isinstance(out[0].frames, torch.Tensor)
    torch.testing.assert_close(on_device, worker._frames_on_device([r.frames for r in ref], "cpu"), rtol=0, atol=0)
    np.testing.assert_array_equal(out[1].timestamp, ref[1].timestamp)
    mixed = worker._frames_on_device([out[0].frames, ref[1].frames], "cpu")  # a GPU clip beside a PyAV fallback
    torch.testing.assert_close(mixed, on_device, rtol=0, atol=0)


def test_worker_decoder_is_cpu_on_a_cpu_worker_and_gpu_is_refused():
    job = worker.TeacherJob(preset=None, weights=None, seed=0, device="cpu", dtype="fp32", batch_size=1,
                            max_pixels=None, decoder="auto")
    place = worker.Placement("cpu", "fp32", "none")
    assert worker.worker_decoder(job, place) == "cpu"
    with pytest.raises(ConfigError, match="^--decoder gpu: the worker runs the teacher on cpu"):
        worker.worker_decoder(worker.TeacherJob(**{**job.__dict__, "decoder": "gpu"}), place)


@pytest.mark.slow
def test_decoder_gpu_without_a_gpu_is_one_line_before_any_shard(tmp_path, video):
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    cfg = PrecomputeConfig(videos=str(video.parent), store=str(tmp_path / "c.zarr"), teacher="tiny", policy="stride",
                           workers=1, device="cpu", decoder="gpu", progress=False)
    with pytest.raises(ConfigError) as err:
        run_precompute(cfg)
    assert str(err.value).startswith("--decoder gpu: ") and "\n" not in str(err.value)
    assert not (tmp_path / "c.zarr").exists()  # refused before planning


def test_bad_decoder_flag_is_refused_by_the_config(tmp_path):
    from p4d.precompute.config import PrecomputeConfig

    with pytest.raises(ConfigError, match="--decoder: expected auto | cpu | gpu, got 'nvdec'"):
        PrecomputeConfig(videos=str(tmp_path), store=str(tmp_path / "c.zarr"), teacher="tiny",
                         decoder="nvdec").validate()
