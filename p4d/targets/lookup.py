"""Targets by video + the exact frame indices a trainer sampled; misses are errors or counted skips.

A request (video, frame indices (N,)) maps to a cache clip only if the cache holds exactly that
clip: the video is in the store (by resolved path, else by content fingerprint, as
:class:`p4d.train.data.CacheIndex` joins conversation records), the store's sampling plan
(:func:`p4d.video.sampling.plan_clips`) gave one of its clips exactly those frames, and that clip
is done. Anything else is a miss with one of :data:`MISS_REASONS`: ``not_in_cache``,
``other_frames`` (the video is cached, those frames are not), ``failed_clip``, ``pending_clip``,
``other_teacher`` (the store's teacher weights hash is not the one asked for). By default a miss
raises :class:`MissingTargetsError` (one line: what was asked, why it misses, what to do);
``on_missing="skip"`` returns None for the batch and counts the miss in ``misses`` instead. There
is no silent fallback: the caller decides what a skipped batch means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from p4d.cache_schema import STATUS_DONE, STATUS_FAILED, CacheStore, open_store, read_clips
from p4d.cache_schema.teachers import open_teacher
from p4d.errors import ClipNotAvailableError, ConfigError
from p4d.targets.layouts import check_layout, to_layout
from p4d.train.data import CacheIndex
from p4d.video.sampling import plan_clips

__all__ = ["MISS_REASONS", "MissingTargetsError", "TargetReader", "open_targets"]

MISS_REASONS = ("not_in_cache", "other_frames", "failed_clip", "pending_clip", "other_teacher")
ON_MISSING = ("raise", "skip")


class MissingTargetsError(ClipNotAvailableError):
    """The cache holds no targets for a requested (video, frame indices); ``reason`` is one of MISS_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class TargetReader:
    """A store opened for lookups by (video, frame indices). See :func:`open_targets`."""

    def __init__(self, store: CacheStore, *, layout: str = "release", on_missing: str = "raise",
                 teacher_hash: str | None = None, device=None, video_root: str | Path | None = None):
        if on_missing not in ON_MISSING:
            raise ConfigError(f"on_missing={on_missing!r}: expected one of {', '.join(ON_MISSING)}")
        self.store = store
        self.layout = check_layout(layout)
        self.on_missing = on_missing
        self.teacher_hash = teacher_hash
        self.device = device
        self.video_root = Path(video_root) if video_root else None
        self.index = CacheIndex(store)
        self.misses: Counter = Counter()
        self.served = 0
        self._plans: dict[int, dict[tuple[int, ...], int]] = {}
        self.fields = ("f4d", *store.spec.modalities, "frame_index") + (("timestamp",) if layout == "p4d" else ())

    def __repr__(self) -> str:
        return (f"TargetReader({self.store.url!r}, layout={self.layout!r}, on_missing={self.on_missing!r}, "
                f"served={self.served}, misses={dict(self.misses)})")

    # --- lookup ---------------------------------------------------------------------------------

    def _path(self, video: str) -> str:
        video = str(video)
        if self.video_root and "://" not in video and not Path(video).is_absolute():
            return str(self.video_root / video)
        return video

    def _plan(self, row: int) -> dict[tuple[int, ...], int]:
        """{frame indices: global clip} of every clip planned for video ``row``."""
        if row not in self._plans:
            v, s = self.store.videos[row], self.store.spec.sampling
            first = self.index.first_clip[row]
            clips = (plan_clips(v.num_frames, num_frames=s["num_frames"], policy=s["policy"],
                                frame_stride=s["frame_stride"]) if v.num_frames > 0 else [])
            self._plans[row] = {tuple(int(f) for f in c): first + k for k, c in enumerate(clips[:v.num_clips])}
        return self._plans[row]

    def find(self, video: str, frame_indices) -> int:
        """The global cache clip holding ``video``'s frames ``frame_indices`` (N,), done; else
        raises MissingTargetsError (whatever ``on_missing`` says)."""
        url = self.store.url
        frames = tuple(int(f) for f in np.asarray(frame_indices).reshape(-1))
        what = f"video {video} frames {_short(frames)}"
        found = self.store.spec.teacher.get("weights_hash", "")
        if self.teacher_hash is not None and found != self.teacher_hash:
            raise MissingTargetsError("other_teacher", f"{what}: the cache {url} holds teacher weights {found or '(none)'}, "
                                      f"not {self.teacher_hash}; precompute a cache with that teacher")
        path = self._path(video)
        row = self.index.find(path)
        if row is None:
            raise MissingTargetsError("not_in_cache", f"{what}: the video is not in the cache {url} (neither by path "
                                      "nor by content); add it to the video list and run `p4d precompute`")
        plan = self._plan(row)
        clip = plan.get(frames)
        if clip is None and self.store.videos[row].num_frames <= 0:  # unusable when planned: its one clip says why
            clip = self.index.first_clip[row]
        if clip is None:
            cached = "; ".join(_short(f) for f in list(plan)[:3])
            s = self.store.spec.sampling
            raise MissingTargetsError(
                "other_frames", f"{what}: the cache {url} holds other frames of this video ({cached}; sampling "
                f"{s['policy']}, N={s['num_frames']}, stride {s['frame_stride']}); sample the cached frames "
                "(the clip's frame_index) or precompute with your sampling")
        status = int(self.index.status[clip])
        if status == STATUS_DONE:
            return clip
        if status == STATUS_FAILED:
            raise MissingTargetsError("failed_clip", f"{what}: cache clip {clip} of {url} failed in precompute: "
                                      f"{self.index.failure(clip)}")
        raise MissingTargetsError("pending_clip", f"{what}: cache clip {clip} of {url} is pending; run `p4d precompute`")

    def cached_frames(self, video: str, clip: int = 0) -> np.ndarray:
        """Frame indices (N,) of ``video``'s cached clip number ``clip`` (its plan; the clip may
        still be failed or pending: :meth:`find` says). MissingTargetsError when there is none."""
        row = self.index.find(self._path(video))
        if row is None:
            raise MissingTargetsError("not_in_cache", f"video {video}: not in the cache {self.store.url} (neither by "
                                      "path nor by content); add it to the video list and run `p4d precompute`")
        plan = list(self._plan(row))
        if self.store.videos[row].num_frames <= 0:  # unusable when planned: its one clip's status says why
            self.find(video, np.zeros(self.store.spec.num_frames, np.int64))
        if not 0 <= int(clip) < len(plan):
            raise MissingTargetsError("other_frames", f"video {video}: the cache {self.store.url} holds {len(plan)} "
                                      f"clip(s) of it, not clip {clip}")
        return np.asarray(plan[int(clip)], dtype=np.int64)

    def clips(self, videos: Sequence[str], frame_indices) -> list[int] | None:
        """The cache clip of each (video, frames) pair; None (misses counted) under
        ``on_missing="skip"`` when any of them misses."""
        frame_indices = np.asarray(frame_indices)
        if isinstance(videos, (str, Path)) or frame_indices.ndim != 2 or len(videos) != len(frame_indices):
            raise ConfigError(f"targets of {self.store.url}: expected a list of B videos and frame indices (B, N), "
                              f"got {type(videos).__name__} and shape {frame_indices.shape}")
        out, missed = [], False
        for video, frames in zip(videos, frame_indices):
            try:
                out.append(self.find(video, frames))
            except MissingTargetsError as exc:
                if self.on_missing == "raise":
                    raise
                self.misses[exc.reason] += 1
                missed = True
        return None if missed else out

    # --- read -------------------------------------------------------------------------------------

    def read(self, clips: Sequence[int], frame_indices=None) -> dict:
        """Targets of done cache clips ``clips`` in this reader's layout: numpy float32 when
        ``device`` is None, else torch tensors on ``device``, decoded there from the stored parts
        (:mod:`p4d.train.device_decode`, bit-exact with the host decode). ``frame_indices`` (B, N),
        when given, must equal the clips' stored frame indices (a store planned by another rule
        than today's plan_clips would otherwise serve other frames)."""
        out = read_clips(self.store, clips, self.fields, decode=self.device is None)
        if frame_indices is not None:
            stored = out["frame_index"]
            bad = np.flatnonzero((stored != np.asarray(frame_indices)).any(axis=1))
            if bad.size:
                k = int(bad[0])
                raise MissingTargetsError("other_frames", f"cache clip {clips[k]} of {self.store.url} holds frames "
                                          f"{_short(stored[k])}, not the requested {_short(frame_indices[k])}")
        if self.device is not None:
            import torch

            from p4d.train.device_decode import decode_target_parts

            device = torch.device(self.device)
            moved = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in out.items()}
            out = decode_target_parts(self.store.spec.latent_codec, moved)
        self.served += len(clips)
        return to_layout(out, self.layout)

    def get(self, videos: Sequence[str], frame_indices) -> dict | None:
        """Targets of B (video, frame indices (N,)) requests, batch first, in this reader's layout;
        None under ``on_missing="skip"`` when any request misses (counted in ``misses``)."""
        clips = self.clips(videos, frame_indices)
        if clips is None:
            return None
        return self.read(clips, np.asarray(frame_indices))


def _short(frames) -> str:
    f = list(frames)
    return "[" + ", ".join(map(str, f if len(f) <= 6 else f[:3] + ["..."] + f[-2:])) + "]"


def open_targets(store: str | CacheStore, *, layout: str = "release", on_missing: str = "raise",
                 teacher_hash: str | None = None, device=None, video_root: str | Path | None = None,
                 teacher: str | None = None) -> TargetReader:
    """A :class:`TargetReader` on ``store`` (a url or an open store).

    ``layout``: ``"release"`` or ``"p4d"`` (:mod:`p4d.targets.layouts`). ``on_missing``: ``"raise"``
    (MissingTargetsError) or ``"skip"`` (None, counted). ``teacher_hash``: the teacher weights hash
    the caller trains against (None: any). ``device``: None for numpy arrays, else a torch device
    (``"cuda"``, ``"cpu"``) to get tensors decoded there. ``video_root``: the folder relative video
    paths are under (default: the working directory). ``teacher``: an extra teacher stored under
    ``teachers/<name>`` (:mod:`p4d.cache_schema.teachers`; None: the root store's teacher).
    """
    if teacher is not None:
        store = open_teacher(store.url if isinstance(store, CacheStore) else str(store), teacher)
    elif not isinstance(store, CacheStore):
        store = open_store(str(store))
    return TargetReader(store, layout=layout, on_missing=on_missing, teacher_hash=teacher_hash, device=device,
                        video_root=video_root)
