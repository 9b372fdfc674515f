"""The two input transforms p4d shares between jobs (one home each).

- :func:`student_frames`: the student's frames in training (the loader), eval and the exported
  student's answerer: (N, H, W, 3) uint8 squashed (no crop) to S×S with Pillow, bicubic by default,
  as the release's ``image_aspect_ratio resize`` (Pillow ``Image.resize``, whose default filter is
  bicubic); the student then scales to [0, 1] and normalises with mean = std = 0.5, i.e. to [-1, 1].
- :func:`teacher_input`: the teacher's input tensor, built by precompute and by
  ``p4d bench train``'s online-teacher path from the same decoded frames. With the release's
  transform (``spatial["teacher_input"] == "release"``, notes/release.md §2): the student's S×S frames
  in [-1, 1] are resized to the teacher's 224 × 224 (squash; **torch bilinear, antialiased**, the
  filter p4d documents since the notes do not state the release's), mapped back to [0, 1] with
  (x + 1) / 2, then L4P's own normalisation (x − mean) / std. With ``"direct"`` (p4d's earlier
  transform) the frames were decoded straight to 224 × 224 (Pillow bilinear) and are only
  normalised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from p4d.errors import ConfigError
from p4d.video.resize import resize_frames

#: How the teacher's input is made (the cache's ``spatial["teacher_input"]``).
TEACHER_INPUTS = ("release", "direct")
#: The release path's resize to the teacher size, as recorded in the cache's spatial attrs.
RELEASE_TEACHER_RESIZE = ("student S x S (Pillow bicubic, squash) in [-1, 1] -> torch bilinear antialiased "
                          "to the teacher size -> (x + 1) / 2, non-aspect-preserving")
DIRECT_TEACHER_RESIZE = "bilinear, non-aspect-preserving"


def student_frames(frames: np.ndarray, size: int, filter: str = "bicubic") -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, S, S, 3) uint8, S = ``size``: squash with Pillow ``filter``.
    Frames already S×S come back unchanged."""
    return resize_frames(frames, (int(size), int(size)), filter)


def decode_size(spatial: Mapping) -> tuple[tuple[int, int], str]:
    """((h, w), Pillow filter) the frames are decoded to before :func:`teacher_input`."""
    mode = spatial.get("teacher_input", "direct")
    if mode not in TEACHER_INPUTS:
        raise ConfigError(f"spatial['teacher_input'] {mode!r}: expected one of {', '.join(TEACHER_INPUTS)}")
    if mode == "release":
        s = int(spatial["student_size"])
        return (s, s), str(spatial.get("student_resize", "bicubic"))
    h, w = spatial["input_size"]
    return (int(h), int(w)), "bilinear"


def teacher_input(frames, spatial: Mapping, normalisation: Mapping):
    """Frames (B, N, H, W, 3) uint8 at :func:`decode_size` (numpy or torch, any device) → the
    teacher's normalised float32 input (B, 3, N, h, w), (h, w) = ``spatial["input_size"]``."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(frames)
    if x.dim() != 5 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ConfigError(f"teacher_input: expected (B, N, H, W, 3) uint8 frames, found {tuple(x.shape)} {x.dtype}")
    (dh, dw), _ = decode_size(spatial)
    if tuple(x.shape[2:4]) != (dh, dw):
        raise ConfigError(f"teacher_input: frames are {tuple(x.shape[2:4])}, expected the decode size {(dh, dw)}")
    b, n = x.shape[:2]
    h, w = (int(v) for v in spatial["input_size"])
    # in place on the fresh float tensor (.to always copies uint8): the same ops in the same order, so
    # the same bits, without a new full-size float32 temporary per step
    x = x.permute(0, 1, 4, 2, 3).reshape(b * n, 3, dh, dw).to(torch.float32).div_(255.0)
    if spatial.get("teacher_input", "direct") == "release":
        x = x.mul_(2.0).sub_(1.0)  # the student's pixels: (x - 0.5) / 0.5
        if (dh, dw) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        x = x.add_(1.0).div_(2.0)
    mean = torch.tensor([float(v) for v in normalisation["mean"]], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([float(v) for v in normalisation["std"]], device=x.device).view(1, 3, 1, 1)
    x = x.sub_(mean).div_(std)
    return x.reshape(b, n, 3, h, w).permute(0, 2, 1, 3, 4).contiguous()
