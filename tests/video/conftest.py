"""Fixtures for p4d.video tests: tiny real H.264 files written with PyAV, and broken copies of them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from p4d.video.synthetic import read_frame_code, write_synthetic_video

FPS = 24
NUM_FRAMES = 48  # 2 s at 24 fps
SIZE = (64, 48)  # (width, height) as stored


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def cfr_video(video_dir) -> Path:
    """48 frames, 24 fps, 64x48, frame i at exactly i/24 s."""
    return write_synthetic_video(video_dir / "cfr.mp4", num_frames=NUM_FRAMES, fps=FPS, size=SIZE, seed=1)


@pytest.fixture(scope="session")
def faststart_video(video_dir) -> Path:
    """Like cfr_video but with the mp4 index (moov) first, so truncated copies keep a header."""
    return write_synthetic_video(video_dir / "faststart.mp4", num_frames=NUM_FRAMES, fps=FPS, size=SIZE,
                                 seed=2, faststart=True)


def packets_in_file_order(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of every video packet, read with plain PyAV."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size > 0]


def decoded_codes(path: Path) -> list[int]:
    """Frame codes of every frame plain PyAV decodes, in output order (independent of p4d.video.decode)."""
    with av.open(str(path)) as container:
        return [read_frame_code(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def truncated_copy(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def cut_at_packet(src: Path, dst: Path, packet: int) -> Path:
    """Copy of ``src`` ending exactly where its ``packet``-th video packet starts (clean early end)."""
    offset = packets_in_file_order(src)[packet][0]
    dst.write_bytes(src.read_bytes()[:offset])
    return dst


def empty_file(dst: Path) -> Path:
    dst.write_bytes(b"")
    return dst


def text_file(dst: Path) -> Path:
    dst.write_text("this is not a video, just text renamed to .mp4\n" * 20)
    return dst


def random_bytes_file(dst: Path, seed: int = 0) -> Path:
    dst.write_bytes(np.random.default_rng(seed).bytes(20_000))
    return dst


def y4m_header_only(dst: Path, width: int, height: int) -> Path:
    """A raw YUV4MPEG2 file declaring ``width`` x ``height`` frames but holding only a few bytes of data."""
    dst.write_bytes(f"YUV4MPEG2 W{width} H{height} F24:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + b"\x80" * 1000)
    return dst


def audio_only_file(dst: Path) -> Path:
    """A valid .m4a file with one AAC audio stream and no video stream."""
    with av.open(str(dst), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return dst
