"""The GPU decode path's CPU-side logic (p4d.video.gpu_decode): decoder selection and its errors,
frame indices and timestamps matched to the CPU path by pts, the fallback signal, and the on-device
resize against Pillow. NVDEC itself needs a GPU (bench/gpu_precompute_check.sh); here a PyAV-backed
frame source stands in for it, returning what NVDEC returns: raw frames (display rotation not
applied) with their pts."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from p4d.errors import ConfigError, VideoDecodeError
from p4d.video import decode_clips, decode_size, resize_frames, teacher_input, write_synthetic_video
from p4d.video.gpu_decode import (GpuDecodeUnsupported, decode_clips_gpu, gpu_decoder_missing, resize_on_device,
                                  resolve_decoder)


class PyAVSource:
    """Every frame of the file in presentation order (as NVDEC outputs them), selected by index."""

    def __init__(self, path: str, shift_pts: int = 0, drop: int = 0):
        with av.open(path) as c:
            self.frames = [(torch.from_numpy(f.to_ndarray(format="rgb24")), int(f.pts) + shift_pts)
                           for f in c.decode(video=0)]
        self.drop = drop

    def frames_at(self, indices):
        got = [self.frames[i] for i in indices]
        return got[:len(got) - self.drop]


def test_resolve_decoder_selection_and_fallback():
    none = lambda device: None  # noqa: E731 - a worker with a GPU and the package
    missing = lambda device: "no CUDA device is visible to torch in this worker"  # noqa: E731
    assert resolve_decoder("auto", "cuda:0", missing=none) == "gpu"
    assert resolve_decoder("auto", "cuda:0", missing=missing) == "cpu"
    assert resolve_decoder("cpu", "cuda:0", missing=none) == "cpu"
    assert resolve_decoder("gpu", "cuda:1", missing=none) == "gpu"
    with pytest.raises(ConfigError) as err:
        resolve_decoder("gpu", "cuda:0", missing=missing)
    msg = str(err.value)
    assert msg.startswith("--decoder gpu: no CUDA device") and "\n" not in msg and "--decoder cpu" in msg
    with pytest.raises(ConfigError, match="--decoder 'nvdec': expected one of auto, cpu, gpu"):
        resolve_decoder("nvdec", "cpu")


def test_this_machine_without_a_gpu_resolves_to_pyav():
    assert "not on a CUDA device" in gpu_decoder_missing("cpu")
    if not torch.cuda.is_available():
        assert "no CUDA device" in gpu_decoder_missing("cuda")
        assert resolve_decoder("auto", "cuda") == "cpu"
        with pytest.raises(ConfigError, match="^--decoder gpu: no CUDA device"):
            resolve_decoder("gpu", "cuda")
    assert resolve_decoder("auto", "cpu") == "cpu"


@pytest.mark.parametrize("kind", ["cfr", "vfr", "rotated"])
def test_same_frames_indices_and_timestamps_as_the_cpu_path(tmp_path, kind):
    kwargs = {"cfr": {}, "vfr": {"vfr_timestamps": [0.0, 0.05, 0.3, 0.31, 0.6, 0.62, 0.9, 1.3, 1.31, 1.5,
                                                    1.9, 2.0]},
              "rotated": {"rotation": 90}}[kind]
    path = write_synthetic_video(tmp_path / f"{kind}.mp4", num_frames=12, fps=10, size=(64, 48), seed=3, **kwargs)
    clips = [np.array([0, 2, 4, 6]), np.array([9, 3, 3, 11]), np.array([5])]
    cpu = decode_clips(path, clips)
    gpu = decode_clips_gpu(path, clips, source=PyAVSource)
    for c, g in zip(cpu, gpu):
        np.testing.assert_array_equal(g.frame_index, c.frame_index)
        np.testing.assert_array_equal(g.timestamp, c.timestamp)
        np.testing.assert_array_equal(g.frames.numpy(), c.frames)  # same decoder: bit-identical, rotation applied


def test_a_clip_past_the_end_fails_alone_as_on_the_cpu_path(cfr_video):
    clips = [np.array([0, 1]), np.array([40, 60])]
    cpu, gpu = decode_clips(cfr_video, clips), decode_clips_gpu(cfr_video, clips, source=PyAVSource)
    np.testing.assert_array_equal(gpu[0].frames.numpy(), cpu[0].frames)
    assert isinstance(cpu[1], VideoDecodeError) and isinstance(gpu[1], VideoDecodeError)
    assert "wanted frame 60 but the stream ended after 48" in str(gpu[1])


def test_frames_that_do_not_match_the_index_table_are_refused(cfr_video):
    """A decoder that numbers frames otherwise (e.g. by an assumed fps) or loses one is never trusted."""
    with pytest.raises(GpuDecodeUnsupported, match="frame 0 came back with pts"):
        decode_clips_gpu(cfr_video, [np.arange(4)], source=lambda p: PyAVSource(p, shift_pts=1))
    with pytest.raises(GpuDecodeUnsupported, match="returned 3 of 4 wanted frames"):
        decode_clips_gpu(cfr_video, [np.arange(4)], source=lambda p: PyAVSource(p, drop=1))


#: The on-device resize (torch antialiased, rounded to uint8) against Pillow's: stated tolerance.
RESIZE_MAX_ABS, RESIZE_MEAN_ABS = 8, 0.5


@pytest.mark.parametrize("filter_, size", [("bicubic", (32, 32)), ("bilinear", (24, 40))])
def test_device_resize_matches_pillow_within_tolerance(cfr_video, filter_, size):
    frames = decode_clips(cfr_video, [np.arange(0, 48, 6)])[0].frames  # 48 x 64 -> smaller, as 720p -> 448
    ref = resize_frames(frames, size, filter_).astype(int)
    got = resize_on_device(torch.from_numpy(frames), size, filter_).numpy().astype(int)
    assert got.shape == ref.shape
    diff = np.abs(got - ref)
    assert diff.max() <= RESIZE_MAX_ABS and diff.mean() <= RESIZE_MEAN_ABS, (diff.max(), diff.mean())


def test_teacher_input_from_device_frames_matches_the_cpu_chain(cfr_video):
    """--teacher-input release: S x S frames resized on the device, then the same teacher_input."""
    spatial = {"teacher_input": "release", "student_size": 40, "input_size": [28, 28]}
    norm = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    (size, filter_) = decode_size(spatial)
    cpu = decode_clips(cfr_video, [np.arange(8)], size=size, filter=filter_)[0].frames
    gpu = decode_clips_gpu(cfr_video, [np.arange(8)], size=size, filter=filter_, source=PyAVSource)[0].frames
    a, b = teacher_input(cpu[None], spatial, norm), teacher_input(gpu[None], spatial, norm)
    assert a.shape == b.shape == (1, 3, 8, 28, 28)
    d = (a - b).abs()
    assert float(d.max()) <= RESIZE_MAX_ABS / 255 / 0.224 and float(d.mean()) <= 0.01, (float(d.max()), float(d.mean()))
