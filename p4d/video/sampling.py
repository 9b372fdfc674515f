"""Clip plans: which source frames make up each clip of N frames.

Two policies, both deterministic functions of the video's frame count:

- ``"uniform"``: one clip of N indices spread over the whole video,
  ``numpy.round(numpy.linspace(0, n - 1, N))`` (numpy rounds halves to even). A video shorter than
  N frames repeats frames (e.g. n=2, N=4 gives [0, 0, 1, 1]).
- ``"stride"``: clips of N frames ``frame_stride`` apart, laid back to back so that clip k holds
  ``k*N*s + s*arange(N)``; as many whole clips as fit in the video. A video too short for one whole
  clip (n <= (N - 1)*s) falls back to one uniform clip.
"""

from __future__ import annotations

import numpy as np

from p4d.errors import ConfigError

SAMPLING_POLICIES = ("uniform", "stride")


def plan_clips(num_frames_in_video: int, *, num_frames: int = 16, policy: str = "uniform",
               frame_stride: int = 1) -> list[np.ndarray]:
    """Source-frame indices per clip: a list of (N,) int32 arrays, N = ``num_frames``."""
    if policy not in SAMPLING_POLICIES:
        raise ConfigError(
            f"--policy {policy!r}: unknown sampling policy; expected one of {', '.join(SAMPLING_POLICIES)}"
        )
    if int(num_frames) < 1:
        raise ConfigError(f"--num-frames {num_frames}: expected at least 1 frame per clip")
    if int(frame_stride) < 1:
        raise ConfigError(f"--frame-stride {frame_stride}: expected a stride of at least 1 frame")
    n = int(num_frames_in_video)
    if n < 1:
        raise ConfigError(f"num_frames_in_video={num_frames_in_video}: a video needs at least 1 frame to plan clips")
    if policy == "stride":
        clips = _stride_clips(n, int(num_frames), int(frame_stride))
        if clips:
            return clips
    return [np.round(np.linspace(0, n - 1, int(num_frames))).astype(np.int32)]


def _stride_clips(n: int, num_frames: int, stride: int) -> list[np.ndarray]:
    span = (num_frames - 1) * stride  # last index of clip 0
    if span > n - 1:
        return []
    count = (n - 1 - span) // (num_frames * stride) + 1
    offsets = stride * np.arange(num_frames, dtype=np.int64)
    return [(k * num_frames * stride + offsets).astype(np.int32) for k in range(count)]
