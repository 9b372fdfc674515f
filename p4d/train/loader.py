"""The training data path: samples → (frames, timestamps, token ids, cache targets) batches.

- :class:`ClipDataset`: samples by key, a batch at a time (``__getitems__``). ``video`` samples
  read the targets their recipe uses from the cache (one :func:`p4d.cache_schema.read_clips`
  call per batch) and decode the frames at exactly the clip's stored
  frame indices (rotation applied), draw the SoM region marks on frame 0, and squash to the
  student's S×S with :func:`p4d.video.student_frames` (the one resize eval and export use too); TPE uses the
  stored timestamps. ``video-sft`` samples are sampled from the video with the cache's policy,
  without targets; ``image`` samples load their images (time cue off). A sample that fails to
  load (a video changed or vanished, a torn shard) comes back as an error record and is dropped
  by the collate, counted, never raised mid-epoch.
- :class:`ShardBatchSampler`: global batches of ``batch_size × world_size`` samples of one
  bucket (kind, N); cached clips in shard-then-clip order (shards shuffled, clips shuffled within
  a shard, so reads stay sequential), other buckets shuffled and interleaved; deterministic given
  (seed, epoch); rank r takes its slice; ``state_dict`` = (epoch, next batch) resumes mid-epoch.
  The trainer runs it ``endless`` (one loader iterator for all epochs), so the workers keep
  prefetching across epoch boundaries instead of stalling at each.
- :func:`make_loader`: a torch DataLoader with the spawn start method for workers (zarr's
  background threads can deadlock forked workers; each worker reopens the store lazily) and
  pinned memory on CUDA.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from p4d.cache_schema import CacheStore, read_clips
from p4d.cache_schema.map_codecs import QUANT_PART
from p4d.errors import P4DError
from p4d.train.augment import flip_frames, flip_region, flip_targets, should_flip
from p4d.train.data import Sample
from p4d.train.model import IGNORE_INDEX, StudentConfig, encode_chat, pad_batch
from p4d.video import decode_frames, sample_clip, student_frames
from p4d.video.marks import Region, decode_rle, draw_marks, polygon_mask

log = logging.getLogger(__name__)

MAP_NAMES = ("depth", "flow", "motion", "camray")


def region_for(spec: dict, shape: tuple[int, int]) -> Region:
    """A record's region (box / COCO RLE mask / polygon) as a marks Region on an (H, W) frame."""
    if spec.get("box") is not None:
        return Region(label=spec["label"], box=tuple(float(v) for v in spec["box"]))
    if spec.get("mask") is not None:
        mask = decode_rle(spec["mask"])
        if mask.shape != tuple(shape):
            raise P4DError(f"region {spec['label']!r}: mask size {list(mask.shape)} does not match the first frame "
                           f"{list(shape)} (h, w)")
    else:
        mask = polygon_mask(spec["polygon"], shape)
    if spec.get("_flip"):
        mask = mask[:, ::-1]
    return Region(label=spec["label"], mask=np.ascontiguousarray(mask))


class ClipDataset(torch.utils.data.Dataset):
    """Samples by ``(index, epoch)`` keys (the epoch seeds the flip decision).

    targets: the cache targets to read (subset of ``f4d``, depth, flow, motion, camray);
    f4d_input: also return F_4D as the student's input (4d-concat / 4d-pe);
    decode_on_device: hand the targets over as stored (int8 residuals + scales, float16 maps or
    quant16 codes with their `<m>_quant`;
    ``batch["target_codec"]`` names the codec) for :mod:`p4d.train.device_decode` on the
    trainer's device; else (and always with ``f4d_input``) decode to float32 here.
    """

    def __init__(self, samples: Sequence[Sample], store: CacheStore, *, student: StudentConfig, tokenizer,
                 targets: Sequence[str] = (), f4d_input: bool = False, hflip: float = 0.0, seed: int = 0,
                 decode_on_device: bool = False, max_length: int | None = None):
        self.samples = list(samples)
        self.max_length = max_length
        self.store = store  # picklable; zarr arrays reopen lazily in each worker
        self.student = student
        self.no_time_cue = student.replace(tpe="off")
        self.tokenizer = tokenizer
        self.targets = tuple(targets)
        self.f4d_input = f4d_input
        self.hflip = hflip
        self.seed = seed
        self.decode_on_device = decode_on_device and not f4d_input

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key) -> dict[str, Any]:
        return self._get(key)

    def __getitems__(self, keys: list) -> list[dict[str, Any]]:
        """One batch (the DataLoader's batched fetch): the cached targets of its video samples come
        from one :func:`read_clips` call, so each array is read once per batch rather than once
        per clip (the sampler keeps a batch inside one or two shards)."""
        videos = [(j, self.samples[k[0] if isinstance(k, tuple) else k]) for j, k in enumerate(keys)]
        videos = [(j, s) for j, s in videos if s.kind == "video"]
        read: dict[int, dict[str, np.ndarray]] = {}
        if len(videos) > 1:
            try:
                clips = read_clips(self.store, [s.clip for _, s in videos], fields=self._fields(),
                                   decode=not self.decode_on_device)
                read = {j: {k: v[n] for k, v in clips.items()} for n, (j, _) in enumerate(videos)}
            except (P4DError, OSError):
                read = {}  # a bad clip in the batch: every sample reads (and reports) on its own
        return [self._get(key, read.get(j)) for j, key in enumerate(keys)]

    def _fields(self) -> tuple[str, ...]:
        """The cache fields this recipe uses (nothing else is read)."""
        return ("frame_index", "timestamp", *self.targets, *(("f4d",) if self.f4d_input else ()))

    def _get(self, key, clip: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        s = self.samples[index]
        try:
            return self._load(s, index, epoch, clip)
        except (P4DError, OSError) as exc:
            return {"error": f"sample {index} (record {s.record_id}, {s.media[0]}): {exc}", "index": index}

    def _load(self, s: Sample, index: int, epoch: int, clip: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        flip = should_flip(self.hflip, self.seed, epoch, index)
        targets: dict[str, np.ndarray] = {}
        f4d = None
        if s.kind == "video":
            if clip is None:
                clip = read_clips(self.store, [s.clip], fields=self._fields(), decode=not self.decode_on_device)
                clip = {k: v[0] for k, v in clip.items()}
            frames = decode_frames(s.media[0], clip["frame_index"]).frames
            timestamps = clip["timestamp"].astype(np.float32)
            targets = {k: v for k, v in clip.items() if k in self.targets or (k.startswith("f4d_") and "f4d" in self.targets)
                       or (k.endswith(f"_{QUANT_PART}") and k[:-len(QUANT_PART) - 1] in self.targets)}
            f4d = clip["f4d"] if self.f4d_input else None
        elif s.kind == "video-sft":
            sampling = self.store.spec.sampling
            decoded = sample_clip(s.media[0], num_frames=s.num_frames, policy=sampling["policy"], clip=s.clip,
                                  frame_stride=int(sampling.get("frame_stride", 1)))
            frames, timestamps = decoded.frames, decoded.timestamp.astype(np.float32)
        else:
            frames = np.stack([self._image(p) for p in s.media])
            timestamps = np.zeros(len(s.media), np.float32)
        regions = list(s.regions)
        if flip:
            frames = flip_frames(frames)
            targets = flip_targets(targets)
            regions = [flip_region(r, frames.shape[2]) for r in regions]
        if regions:
            frames = frames.copy()
            frames[0], _ = draw_marks(frames[0], [region_for(r, frames.shape[1:3]) for r in regions])
        frames = student_frames(frames, self.student.image_size, self.student.resize)
        cfg = self.no_time_cue if s.kind == "image" else self.student
        ids = encode_chat(self.tokenizer, cfg, list(s.turns), num_frames=len(frames), timestamps=timestamps.tolist())
        if self.max_length is not None and len(ids["input_ids"]) > self.max_length:
            raise P4DError(f"{len(ids['input_ids'])} tokens exceed --data.max-length {self.max_length}")
        return {"index": index, "kind": s.kind, "frames": np.ascontiguousarray(frames), "timestamps": timestamps,
                "ids": ids, "targets": targets, "f4d": f4d, "flipped": flip,
                "target_codec": self.store.spec.latent_codec if self.decode_on_device and targets else None}

    def _image(self, path: str) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        return student_frames(rgb[None], self.student.image_size, self.student.resize)[0]


def _stack_targets(targets: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack per-sample targets; a part only some samples carry (the codec's bfloat16 fallback
    ``f4d_bf16``, read for a batch that needed it) is zeros for the others, as a batch read gives."""
    keys = list(dict.fromkeys(k for t in targets for k in t))
    out = {}
    for k in keys:
        like = next(t[k] for t in targets if k in t)
        out[k] = torch.from_numpy(np.stack([t[k] if k in t else np.zeros_like(like) for t in targets]))
    return out


class Collate:
    """Stack the samples of one bucket; drop (and report) the ones that failed to load."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict[str, Any]:
        errors = [it["error"] for it in items if "error" in it]
        good = [it for it in items if "error" not in it]
        batch: dict[str, Any] = {"errors": errors, "size": len(good), "indices": [it["index"] for it in good]}
        if not good:
            return batch
        padded = pad_batch([it["ids"] for it in good], pad_id=self.pad_id, side="right")
        batch.update(padded)
        batch["frames"] = torch.from_numpy(np.stack([it["frames"] for it in good]))
        batch["timestamps"] = torch.from_numpy(np.stack([it["timestamps"] for it in good]))
        batch["targets"] = _stack_targets([it["targets"] for it in good])
        batch["f4d"] = torch.from_numpy(np.stack([it["f4d"] for it in good])) if good[0]["f4d"] is not None else None
        batch["target_codec"] = good[0].get("target_codec")
        batch["kind"] = good[0]["kind"]
        batch["tpe"] = good[0]["kind"] != "image"
        batch["answer_tokens"] = int((padded["labels"][:, 1:] != IGNORE_INDEX).sum())
        return batch


class ShardBatchSampler(torch.utils.data.Sampler):
    """See the module docstring. Yields this rank's ``[(sample index, epoch), ...]`` per step:
    the rest of the current epoch, or with ``endless`` every epoch after it too (so the loader's
    workers prefetch across epoch boundaries instead of stalling at each one)."""

    def __init__(self, samples: Sequence[Sample], *, batch_size: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0, endless: bool = False):
        self.samples = list(samples)
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.endless = endless
        self.epoch = 0
        self.start = 0  # next global batch of self.epoch
        self._memo: dict[int, list[list[int]]] = {}

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batches of one epoch, in order (each a list of sample indices)."""
        if epoch in self._memo:
            return self._memo[epoch]
        rng = np.random.default_rng([self.seed, epoch])
        g = self.global_batch
        cached = [i for i, s in enumerate(self.samples) if s.shard >= 0]
        by_shard: dict[int, list[int]] = {}
        for i in cached:
            by_shard.setdefault(self.samples[i].shard, []).append(i)
        streams: list[list[list[int]]] = []
        order: list[int] = []
        for shard in rng.permutation(sorted(by_shard)).tolist() if by_shard else []:
            members = by_shard[shard]
            order += [members[k] for k in rng.permutation(len(members))]
        # cached clips share one bucket per N; chunk the shard-then-clip order per bucket
        buckets: dict[tuple[str, int], list[int]] = {}
        for i in order:
            buckets.setdefault(self.samples[i].bucket, []).append(i)
        for i in (i for i, s in enumerate(self.samples) if s.shard < 0):
            buckets.setdefault(self.samples[i].bucket, []).append(i)
        for bucket in sorted(buckets):
            members = buckets[bucket]
            if self.samples[members[0]].shard < 0:
                members = [members[k] for k in rng.permutation(len(members))]
            streams.append([members[k:k + g] for k in range(0, len(members) - g + 1, g)])
        # interleave the buckets' batch streams at random, each stream keeping its own order
        labels = np.concatenate([np.full(len(s), k) for k, s in enumerate(streams)]) if streams else np.zeros(0)
        if len(streams) > 1:
            rng.shuffle(labels)
        cursors = [0] * len(streams)
        batches = []
        for k in labels.astype(int).tolist():
            batches.append(streams[k][cursors[k]])
            cursors[k] += 1
        self._memo = {e: b for e, b in self._memo.items() if e == epoch - 1}  # the loader runs ahead by one epoch
        self._memo[epoch] = batches
        return batches

    def __len__(self) -> int:
        return max(0, len(self.epoch_batches(self.epoch)) - self.start)

    def __iter__(self):
        epoch, start, lo, hi = self.epoch, self.start, self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        while True:
            for batch in self.epoch_batches(epoch)[start:]:
                yield [(i, epoch) for i in batch[lo:hi]]
            if not self.endless:
                return
            epoch, start = epoch + 1, 0

    def advance(self) -> None:
        """Move the resumable position past one consumed batch (into the next epoch at the end)."""
        self.start += 1
        if self.start >= len(self.epoch_batches(self.epoch)):
            self.epoch, self.start = self.epoch + 1, 0

    # ---- resumable position -----------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.start, "seed": self.seed, "global_batch": self.global_batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.start = int(state["epoch"]), int(state["batch"])
        if self.start >= len(self.epoch_batches(self.epoch)):  # "after the last batch" = the next epoch's first
            self.epoch, self.start = self.epoch + 1, 0


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: ClipDataset, sampler: ShardBatchSampler, *, pad_id: int, num_workers: int = 0,
                pin_memory: bool = False, prefetch_factor: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader over ``sampler``'s batches (spawned, persistent workers when ``num_workers`` > 0)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = dict(multiprocessing_context="spawn", persistent_workers=True, prefetch_factor=prefetch_factor,
                      worker_init_fn=_worker_init)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=Collate(pad_id),
                                       num_workers=num_workers, pin_memory=pin_memory, **kwargs)
