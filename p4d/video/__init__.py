"""Video input for p4d: PyAV decoding, clip sampling, resize, and synthetic videos.

- :func:`probe` -> :class:`VideoInfo` (header + one decoded frame; display size, rotation, frame count).
- :func:`plan_clips`: deterministic source-frame indices per clip ("uniform" or "stride").
- :func:`decode_frames`: one sequential decode pass (no seeking) -> :class:`Clip` with frames
  (N, H, W, 3) uint8 (display rotation applied), source frame indices and timestamps in seconds since
  the stream's first decoded frame, ``(pts - first_pts) * time_base`` (never an assumed fps).
- :func:`sample_clip` = probe + plan_clips + decode_frames.
- :func:`resize_frames`: Pillow bilinear or bicubic, non-aspect-preserving, ``size = (h, w)``.
- :func:`student_frames` / :func:`teacher_input`: the student's frames (train, eval, export) and
  the teacher's input tensor (precompute, online-teacher bench), :mod:`p4d.video.preprocess`.
- :mod:`p4d.video.synthetic`: H.264 test/demo videos with the frame index coded in the pixels.

Every unreadable input (missing, empty, non-video, corrupt, truncated, no video stream, a declared
frame size above ``max_pixels``) raises :class:`p4d.errors.VideoDecodeError` naming the file.
"""

from p4d.video._container import DEFAULT_MAX_PIXELS
from p4d.video.decode import Clip, decode_frames, sample_clip
from p4d.video.preprocess import TEACHER_INPUTS, decode_size, student_frames, teacher_input
from p4d.video.probe import VideoInfo, frame_shortfall, probe
from p4d.video.resize import resize_frames
from p4d.video.sampling import SAMPLING_POLICIES, plan_clips
from p4d.video.synthetic import read_frame_code, write_demo_videos, write_synthetic_video

__all__ = [
    "DEFAULT_MAX_PIXELS", "SAMPLING_POLICIES", "TEACHER_INPUTS", "Clip", "VideoInfo", "decode_frames", "decode_size",
    "frame_shortfall", "plan_clips", "probe", "read_frame_code", "resize_frames", "sample_clip", "student_frames", "teacher_input",
    "write_demo_videos", "write_synthetic_video",
]
