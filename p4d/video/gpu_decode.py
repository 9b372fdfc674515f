"""Decode on the worker's GPU (NVDEC through PyNvVideoCodec, ``pip install 'p4d[gpu]'``) and resize there.

Only the compressed bytes cross to the device: frames come out of NVDEC as (H, W, 3) uint8 RGB
in device memory (DLPack into torch), are squashed on the device to the decode size of the
teacher-input chain (:func:`p4d.video.decode_size`: the student's S x S, bicubic, for
``--teacher-input release``) with torch's antialiased filter, rounded back to uint8 as the CPU
path's Pillow output is, and handed to :func:`p4d.video.teacher_input` on the same device.

Why PyNvVideoCodec: it is on PyPI with NVDEC built in (needs only the NVIDIA driver), hands frames
to torch by DLPack, and is not tied to a torch build. torchcodec's PyPI wheel is CPU-only (its
CUDA build comes from PyTorch's own index for one torch version; here its CPU wheel does not even
load beside torch 2.13+cpu: ``libtorchcodec_image.so`` fails), and NVIDIA DALI is a 425 MB wheel
whose pipeline model would replace, not join, the decode threads.

Frame indices are the CPU path's (:mod:`p4d.video.decode`): frame i is the i-th frame in
presentation order, i.e. the rank of its pts among every packet's pts, read by demuxing with PyAV
(no decode). Each frame NVDEC returns is checked against that table by its pts; a video whose
frames cannot be matched (missing or repeated pts, another count, a pts mismatch) raises
:class:`GpuDecodeUnsupported` and the caller decodes it with PyAV instead, so the GPU path never
returns a different frame than the CPU path would. Timestamps are ``(pts - first pts) * time_base``
from the same table. Display rotation (read from the first frame, one PyAV-decoded frame per video)
is applied on the device.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from p4d.errors import ConfigError, VideoDecodeError
from p4d.video._container import DEFAULT_MAX_PIXELS, first_frame, open_video, rotation_of, video_stream
from p4d.video.decode import Clip, DecodeStats, _check_index
from p4d.video.resize import check_size

#: The package behind ``--decoder gpu`` (the ``gpu`` extra).
GPU_DECODER_PACKAGE = "PyNvVideoCodec"
DECODERS = ("auto", "cpu", "gpu")


class GpuDecodeUnsupported(VideoDecodeError):
    """This video cannot be decoded on the GPU with the CPU path's frame indices: decode it with PyAV."""


def gpu_decoder_missing(device: str) -> str | None:
    """Why ``--decoder gpu`` cannot run in this process on ``device`` (None when it can)."""
    if not str(device).startswith("cuda"):
        return f"the worker runs the teacher on {device}, not on a CUDA device"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch in this worker"
    if importlib.util.find_spec(GPU_DECODER_PACKAGE) is None:
        return f"{GPU_DECODER_PACKAGE} is not installed in this worker (pip install 'p4d[gpu]')"
    return None


def resolve_decoder(flag: str, device: str, *, missing: Callable[[str], str | None] = gpu_decoder_missing) -> str:
    """``--decoder`` as this worker runs it: ``cpu`` (PyAV) or ``gpu``. ``auto`` is ``gpu`` when the
    worker's device is a GPU and the package is installed, else ``cpu``; ``gpu`` where it cannot run
    is a ConfigError naming why."""
    if flag not in DECODERS:
        raise ConfigError(f"--decoder {flag!r}: expected one of {', '.join(DECODERS)}")
    if flag == "cpu":
        return "cpu"
    why = missing(device)
    if why is not None and flag == "gpu":
        raise ConfigError(f"--decoder gpu: {why}; use --decoder cpu (PyAV) or auto")
    return "cpu" if why is not None else "gpu"


class FrameSource(Protocol):
    """Random access to a video's decoded frames: ``frames_at(sorted unique indices)`` ->
    [(frame (H, W, 3) uint8 tensor, pts)] in the same order."""

    def frames_at(self, indices: list[int]) -> list[tuple[object, int]]: ...


class NvdecSource:
    """PyNvVideoCodec's SimpleDecoder on GPU ``gpu_id``, RGB frames in device memory."""

    def __init__(self, path: str, gpu_id: int):
        import PyNvVideoCodec as nvc

        self.decoder = nvc.SimpleDecoder(str(path), gpu_id=gpu_id, use_device_memory=True,
                                         output_color_type=nvc.OutputColorType.RGB)

    def __len__(self) -> int:
        return len(self.decoder)

    def frames_at(self, indices: list[int]) -> list[tuple[object, int]]:
        import torch

        out = []
        for frame in self.decoder.get_batch_frames_by_index(list(indices)):
            x = torch.from_dlpack(frame)
            if x.dim() == 3 and x.shape[0] == 3 and x.shape[-1] != 3:  # planar: to (H, W, 3)
                x = x.permute(1, 2, 0)
            out.append((x, int(frame.getPTS() if hasattr(frame, "getPTS") else frame.timestamp)))
        return out


def packet_table(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, Fraction, int]:
    """(every frame's pts in presentation order, the stream's time base, display rotation): demuxed
    packets (no decode) and the first frame's rotation. GpuDecodeUnsupported when indices cannot be
    mapped by pts (a packet without pts, two packets with one pts)."""
    first = first_frame(path, max_pixels)
    if first is None:
        raise VideoDecodeError(f"video {path}: no decodable frame")
    rotation = rotation_of(first)
    pts = []
    with open_video(path) as container:
        stream = video_stream(container, path, max_pixels)
        time_base = stream.time_base
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                raise GpuDecodeUnsupported(f"video {path}: a packet has no pts; frame indices need PyAV")
            pts.append(int(packet.pts))
    table = np.sort(np.asarray(pts, dtype=np.int64))
    if not len(table) or np.any(np.diff(table) == 0):
        raise GpuDecodeUnsupported(f"video {path}: repeated or missing packet pts; frame indices need PyAV")
    return table, Fraction(time_base) if time_base is not None else Fraction(1), rotation


def resize_on_device(frames, size: tuple[int, int], filter: str = "bilinear"):
    """(N, H, W, 3) uint8 tensor -> (N, h, w, 3) uint8 on the same device, ``size = (h, w)``: squash
    with torch's antialiased ``filter`` (bilinear or bicubic, Pillow's kernels), rounded to uint8 as
    the CPU path's Pillow output is. Frames already at ``size`` come back unchanged."""
    import torch
    import torch.nn.functional as F

    h, w = check_size(size)
    if filter not in ("bilinear", "bicubic"):
        raise ConfigError(f"resize_on_device: filter {filter!r}: expected bilinear or bicubic")
    if tuple(frames.shape[1:3]) == (h, w):
        return frames
    x = frames.permute(0, 3, 1, 2).to(torch.float32)
    y = F.interpolate(x, size=(h, w), mode=filter, align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def decode_clips_gpu(path: str | Path, clips: Sequence, *, size: tuple[int, int] | None = None,
                     filter: str = "bilinear", max_pixels: int = DEFAULT_MAX_PIXELS, stats: DecodeStats | None = None,
                     source: Callable[[str], FrameSource] | None = None, gpu_id: int = 0) -> list[Clip | VideoDecodeError]:
    """:func:`p4d.video.decode_clips` on the GPU: one Clip per entry of ``clips`` whose ``frames`` is an
    (N, h, w, 3) uint8 tensor on the decoder's device, or the VideoDecodeError that clip met.

    ``source(path)`` opens the frame source (default: NVDEC on GPU ``gpu_id``; tests pass a PyAV-backed
    one). Raises GpuDecodeUnsupported when the video's frames cannot be matched to the CPU path's indices.
    """
    import torch

    stats = stats if stats is not None else DecodeStats()
    indices = [_check_index(c) for c in clips]
    t0 = time.thread_time()
    table, time_base, rotation = packet_table(path, max_pixels)
    available = len(table)
    wanted = np.unique(np.concatenate(indices))
    wanted = wanted[wanted < available]
    src = source(str(path)) if source is not None else NvdecSource(str(path), gpu_id)
    got = src.frames_at([int(i) for i in wanted]) if len(wanted) else []
    if len(got) != len(wanted):
        raise GpuDecodeUnsupported(f"video {path}: the GPU decoder returned {len(got)} of {len(wanted)} wanted frames")
    row = {}
    for k, (i, (_, pts)) in enumerate(zip(wanted, got)):
        if pts != table[i]:
            raise GpuDecodeUnsupported(f"video {path}: frame {int(i)} came back with pts {pts}, expected {int(table[i])}")
        row[int(i)] = k
    stats.frames_decoded += len(got)
    stats.paths.append("gpu")
    frames = torch.stack([f for f, _ in got]) if got else None
    if frames is not None and rotation:
        frames = torch.rot90(frames, k=rotation // 90, dims=(1, 2))  # counter-clockwise, as to_display
    t1 = time.thread_time()
    stats.decode_cpu_s += t1 - t0
    if frames is not None and size is not None:
        frames = resize_on_device(frames, size, filter)
        stats.resize_cpu_s += time.thread_time() - t1
    out: list[Clip | VideoDecodeError] = []
    for index in indices:
        if int(index.max()) >= available:
            out.append(VideoDecodeError(
                f"video {path}: wanted frame {int(index.max())} but the stream ended after {available} decodable "
                f"frames (fewer frames than the header declares, or a truncated file)"))
            continue
        pick = torch.as_tensor([row[int(i)] for i in index], device=frames.device)
        ts = np.array([float((int(table[i]) - int(table[0])) * time_base) for i in index], dtype=np.float32)
        out.append(Clip(frames=frames.index_select(0, pick), frame_index=index.astype(np.int32), timestamp=ts,
                        path=str(path)))
    return out
