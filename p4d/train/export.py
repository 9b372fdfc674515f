"""The trained student for inference: export with the recipe, and load it back as a question
answerer for ``p4d eval``.

:func:`export_trained` merges LoRA adapters, writes :func:`~p4d.train.model.export_student`'s
NVILA-Lite folder (no D_4DP, no D_m; weights in bf16 unless ``--export-dtype fp32``) and adds the recipe to ``p4d_student.json`` under
``"preset"`` = {strategy, loss, time_cue, trainable}, the keys ``p4d eval report`` groups by.

:func:`load_exported_student` (``p4d.train.load_exported_student``, what ``p4d eval --model``
calls) returns a :class:`StudentAnswerer` with ``answer(frames (N, H, W, 3) uint8, timestamps (N,)
s, question_text, options, video=None) -> str`` and ``answer_batch([{those by name}, ...]) -> [str]``
(left-padded batched greedy generation). Students of the 4d-concat / 4d-pe strategies read
the cached F_4D of the video's first clip from ``cache``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from p4d.errors import ConfigError
from p4d.eval.prompt import format_prompt
from p4d.train.model import STUDENT_FILE, encode_chat, export_student, merge_lora, pad_batch
from p4d.train.model import load_exported_student as load_student_model
from p4d.video import student_frames

log = logging.getLogger(__name__)

def export_trained(model, path: str | os.PathLike, preset: dict[str, str], *, lora: bool = False,
                   dtype: str = "bf16") -> Path:
    """Export ``model`` for inference (LoRA merged in place first) with its recipe ``preset``, the
    floating weights stored in ``dtype`` (``bf16`` | ``fp32``; ``--export-dtype``)."""
    if lora:
        merged = merge_lora(model)
        log.info("merged %d LoRA layers before export", merged)
    path = export_student(model, path, dtype=dtype)
    file = Path(path) / STUDENT_FILE
    record = json.loads(file.read_text())
    record["preset"] = dict(preset)
    file.write_text(json.dumps(record, indent=2, sort_keys=True))
    return Path(path)


class StudentAnswerer:
    """Greedy answers of an exported student to video questions."""

    def __init__(self, model, *, cache: str | None = None, max_new_tokens: int = 32):
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.cache = cache
        self._store = None
        self._index = None

    def _f4d(self, video: str | None) -> torch.Tensor | None:
        if not self.model.cfg.needs_f4d_input:
            return None
        if self.cache is None or video is None:
            raise ConfigError(f"--cache: the student's strategy {self.model.cfg.strategy!r} reads F_4D at inference; "
                              "give the cache of the benchmark videos and the item's video")
        from p4d.cache_schema import open_store, read_clip
        from p4d.train.data import CacheIndex

        if self._store is None:
            self._store = open_store(self.cache)
            self._index = CacheIndex(self._store)
        row = self._index.find(str(video))
        if row is None:
            raise ConfigError(f"--cache {self.cache}: video {video} is not in the cache")
        return torch.from_numpy(read_clip(self._store, self._index.first_clip[row], fields=("f4d",))["f4d"])[None]

    def _request(self, frames: np.ndarray, timestamps: np.ndarray, question_text: str, options: Sequence = (),
                 video: str | None = None, prompt: str | None = None, images: Sequence[np.ndarray] = ()):
        """(frames (1, V, S, S, 3) uint8, timestamps (1, V) s, prompt token ids, F_4D or None) of one question."""
        m = self.model
        size = m.cfg.image_size
        parts = [student_frames(np.asarray(im)[None], size, m.cfg.resize) for im in images]
        parts.append(student_frames(np.asarray(frames), size, m.cfg.resize))
        times = np.asarray(timestamps, dtype=np.float32)
        times = np.concatenate([np.full(len(images), times[0] if len(times) else 0.0, np.float32), times])
        frames_t = torch.from_numpy(np.ascontiguousarray(np.concatenate(parts)))[None]
        ts = torch.from_numpy(times)[None]
        if prompt is None:
            prompt = format_prompt(question_text, list(options), som=bool(len(images)))
        ids = encode_chat(m.tokenizer, m.cfg, [(prompt, None)], num_frames=frames_t.shape[1],
                          timestamps=ts[0].tolist())
        return frames_t, ts, ids, self._f4d(video)

    def answer(self, frames: np.ndarray, timestamps: np.ndarray, question_text: str, options: Sequence = (),
               video: str | None = None, prompt: str | None = None, images: Sequence[np.ndarray] = ()) -> str:
        """Greedy answer. ``prompt``: the full text (default: :func:`p4d.eval.prompt.format_prompt`
        of the question and options, release style). ``images``: (H, W, 3) uint8 images shown before
        the video (R4D-Bench's SoM key frame); each enters as one more visual block at the first
        frame's timestamp (the SoM image is the clip's key frame). Frames and images are brought to
        the student's S×S by :func:`p4d.video.student_frames`, as in training."""
        return self.answer_batch([dict(frames=frames, timestamps=timestamps, question_text=question_text,
                                       options=options, video=video, prompt=prompt, images=images)])[0]

    @torch.no_grad()
    def answer_batch(self, requests: Sequence[dict]) -> list[str]:
        """Greedy answers to several questions at once: each request holds :meth:`answer`'s arguments
        by name. Questions with the same number of visual blocks V (frames + images) are generated
        together, prompts left-padded (:func:`~p4d.train.model.tokenizer.pad_batch`); answers come
        back in the order asked and equal one-at-a-time answers in float32 (tests/eval)."""
        m = self.model
        prepared = [self._request(**r) for r in requests]
        answers: list[str] = [""] * len(prepared)
        groups: dict[int, list[int]] = {}
        for i, (frames_t, *_rest) in enumerate(prepared):
            groups.setdefault(frames_t.shape[1], []).append(i)
        for rows in groups.values():
            batch = pad_batch([prepared[i][2] for i in rows], pad_id=m.ids.pad, side="left")
            f4d = [prepared[i][3] for i in rows]
            out = m.generate(torch.cat([prepared[i][0] for i in rows]), torch.cat([prepared[i][1] for i in rows]),
                             batch["input_ids"], batch["attention_mask"],
                             f4d=None if f4d[0] is None else torch.cat(f4d), max_new_tokens=self.max_new_tokens)
            for row, i in enumerate(rows):
                ids = out[row].tolist()
                if m.ids.eos in ids:  # a finished row of a batch is padded after its end token
                    ids = ids[: ids.index(m.ids.eos) + 1]
                answers[i] = m.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return answers


def load_exported_student(path: str | os.PathLike, *, cache: str | None = None, attn: str | None = None,
                          dtype: str | None = None, device: str | None = None,
                          max_new_tokens: int = 32) -> StudentAnswerer:
    """An exported student (``OUT/export`` of ``p4d train``) ready for ``p4d eval``, on ``device``
    (auto/None: CUDA when available) in ``dtype`` (auto/None: bfloat16 on CUDA, float32 on the CPU)."""
    model = load_student_model(path, device=device, attn=attn, dtype=dtype)
    return StudentAnswerer(model, cache=cache, max_new_tokens=max_new_tokens)
