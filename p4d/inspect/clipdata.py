"""One clip's cached targets plus its source frames, and which clips a ``--clip`` spec names.

The frames are decoded from the source video at the stored frame indices and resized to the
store's spatial size (H, W), i.e. exactly the pixels the teacher saw. A source video that cannot
be found or decoded (e.g. the store is read from a remote URL and the videos are not local)
gives grey frames and a note instead of an error, so the maps can still be looked at.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p4d.cache_schema.labels import RANDOM_TEACHER_LABEL, is_random_teacher
from p4d.cache_schema import STATUS_DONE, CacheStore, read_clip
from p4d.errors import ClipNotAvailableError, ConfigError, VideoDecodeError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ClipData:
    """Everything inspect shows of one clip.

    maps: {modality: float32 map} as cached (depth (N, H, W, 1), flow (N, H, W, 2), motion
    (N, H, W, 1) logits, camray (N, h_p, w_p, 6)); f4d: (taps, N', h', w', c') float32;
    frames: (N, H, W, 3) uint8; frame_index (N,) int; timestamp (N,) float seconds;
    taps: the encoder layer of each F_4D tap; frames_note: why the frames are grey, else None.
    """

    store_url: str
    clip: int
    video: int
    video_path: str
    fps: float
    maps: dict[str, np.ndarray]
    f4d: np.ndarray
    frames: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray
    taps: tuple[int, ...]
    frames_note: str | None = None
    teacher_note: str | None = None   # "RANDOM TEACHER ..." when the store's teacher had random weights
    resize_note: str | None = None    # how the source frames were resized to (H, W) when the aspect changed

    @property
    def num_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames and the dense maps."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def title_lines(self) -> list[str]:
        """Clip/video identity, frame indices and timestamps, for figure titles."""
        n = self.num_frames
        lines = [self.teacher_note] if self.teacher_note else []
        lines += [
            f"clip {self.clip} of {self.store_url}",
            f"video {self.video}: {self.video_path} ({self.fps:.3g} fps)",
            f"frames {int(self.frame_index[0])}..{int(self.frame_index[-1])} (N={n}), "
            f"t = {float(self.timestamp[0]):.3f}..{float(self.timestamp[-1]):.3f} s",
        ]
        if self.resize_note:
            lines.append(self.resize_note)
        if self.frames_note:
            lines.append(f"source frames unavailable: {self.frames_note}")
        return lines


def resolve_video_path(path: str, video_root: str | os.PathLike | None) -> Path:
    """The recorded video path; with ``video_root``, a relative path is taken under it and a
    missing absolute path is looked up there by its file name."""
    p = Path(path)
    if video_root is None:
        return p
    root = Path(video_root)
    if not p.is_absolute():
        return root / p
    return p if p.exists() else root / p.name


def load_clip(store: CacheStore, clip: int, *, video_root: str | os.PathLike | None = None,
              flag: str = "--clip") -> ClipData:
    """Read clip ``clip`` (a done clip) and decode its source frames.

    ClipNotAvailableError naming ``flag`` for an out-of-range, pending or failed clip (with the
    recorded failure reason).
    """
    from p4d.video import decode_frames

    if isinstance(clip, bool) or not isinstance(clip, (int, np.integer)):
        raise ConfigError(f"{flag}: expected a clip index, found {clip!r}")
    try:
        data = read_clip(store, int(clip))
    except ClipNotAvailableError as exc:
        raise ClipNotAvailableError(f"{flag} {clip}: {exc}") from exc
    spec = store.spec
    video = int(data["video"])
    entry = store.videos[video] if 0 <= video < len(store.videos) else None
    path = entry.path if entry else f"<video {video} not in videos.json>"
    h, w = spec.height, spec.width
    note = None
    try:
        if entry is None:
            raise VideoDecodeError(f"video row {video} is not in {store.url}/videos.json")
        frames = decode_frames(resolve_video_path(entry.path, video_root), data["frame_index"], size=(h, w)).frames
    except VideoDecodeError as exc:
        log.warning("clip %d: %s; showing grey frames", clip, exc)
        note = str(exc)
        frames = np.full((spec.num_frames, h, w, 3), 128, np.uint8)
    return ClipData(
        store_url=store.url, clip=int(clip), video=video, video_path=path, fps=float(entry.fps) if entry else 0.0,
        maps={m: data[m] for m in spec.modalities}, f4d=data["f4d"], frames=frames,
        frame_index=np.asarray(data["frame_index"]), timestamp=np.asarray(data["timestamp"], np.float64),
        taps=tuple(spec.taps), frames_note=note, teacher_note=random_teacher_note(spec),
        resize_note=resize_note(entry.width, entry.height, rotation=entry.rotation, size=(h, w)) if entry else None,
    )


def random_teacher_note(spec) -> str | None:
    """The warning line every picture of a random-teacher store carries (None for real weights)."""
    if not is_random_teacher(spec):
        return None
    return f"{RANDOM_TEACHER_LABEL}: random weights, so these maps are not real depth, flow, motion or rays"


def resize_note(width: int, height: int, *, rotation: int, size: tuple[int, int]) -> str | None:
    """"frames squashed from 96x64 to 112x112 (aspect 1.50 -> 1.00), as the teacher saw them" when the
    resize to the teacher's (H, W) changed the aspect ratio; None otherwise or when unknown."""
    if rotation in (90, 270):
        width, height = height, width
    h, w = size
    if not width or not height or abs(width / height - w / h) < 0.01:
        return None
    return (f"frames squashed from {width}x{height} to {w}x{h} (aspect {width / height:.2f} -> {w / h:.2f}), "
            "as the teacher saw them")


def parse_clip_spec(spec: str | int | None, num_clips: int, *, flag: str = "--clip") -> list[int] | None:
    """``"3"``, ``"0-4,7"`` or ``"all"`` → sorted clip indices (None for None or "all").

    ConfigError naming ``flag`` for malformed text; out-of-range indices are kept (they give a
    ClipNotAvailableError when read, or an "out of range" row in HTML).
    """
    if spec is None:
        return None
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return [int(spec)]
    text = str(spec).strip()
    if text.lower() == "all":
        return None
    out: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError(part)
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise ConfigError(f"{flag} {spec!r}: expected a clip index, a list/range such as 0-4,7, or 'all' "
                          f"(the store has clips 0..{num_clips - 1})") from None
    return sorted(out)


def done_clips(store: CacheStore) -> list[int]:
    """Indices of the clips that are done now (a store still being written has fewer)."""
    return [int(i) for i in np.flatnonzero(store.clip_status() == STATUS_DONE)]
