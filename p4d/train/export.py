"""The trained student for inference: export with the recipe, and load it back as a question
answerer for ``p4d eval``.

:func:`export_trained` merges LoRA adapters, writes :func:`~p4d.train.model.export_student`'s
NVILA-Lite folder (no D_4DP, no D_m) and adds the recipe to ``p4d_student.json`` under
``"preset"`` = {strategy, loss, time_cue, trainable}, the keys ``p4d eval report`` groups by.

:func:`load_exported_student` (``p4d.train.load_exported_student``, what ``p4d eval --model``
calls) returns a :class:`StudentAnswerer` with ``answer(frames (N, H, W, 3) uint8, timestamps (N,)
s, question_text, options, video=None) -> str``. Students of the 4d-concat / 4d-pe strategies read
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
from p4d.train.model import STUDENT_FILE, encode_chat, export_student, merge_lora
from p4d.train.model import load_exported_student as load_student_model

log = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def export_trained(model, path: str | os.PathLike, preset: dict[str, str], *, lora: bool = False) -> Path:
    """Export ``model`` for inference (LoRA merged in place first) with its recipe ``preset``."""
    if lora:
        merged = merge_lora(model)
        log.info("merged %d LoRA layers before export", merged)
    path = export_student(model, path)
    file = Path(path) / STUDENT_FILE
    record = json.loads(file.read_text())
    record["preset"] = dict(preset)
    file.write_text(json.dumps(record, indent=2, sort_keys=True))
    return Path(path)


def format_question(question: str, options: Sequence[str]) -> str:
    """The prompt of a multiple-choice or numeric item (the same text as ``p4d.eval``'s prompt):
    the question, lettered options and the answer instruction."""
    if not options:
        return f"{question}\nAnswer with a single number."
    lines = [question, *(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))]
    return "\n".join(lines) + "\nAnswer with the option's letter from the given choices directly."


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

    @torch.no_grad()
    def answer(self, frames: np.ndarray, timestamps: np.ndarray, question_text: str, options: Sequence[str] = (),
               video: str | None = None) -> str:
        m = self.model
        frames_t = torch.as_tensor(np.ascontiguousarray(frames), dtype=torch.uint8)[None]
        ts = torch.as_tensor(np.asarray(timestamps, dtype=np.float32))[None]
        prompt = format_question(question_text, list(options))
        ids = encode_chat(m.tokenizer, m.cfg, [(prompt, None)], num_frames=frames_t.shape[1],
                          timestamps=ts[0].tolist())["input_ids"]
        out = m.generate(frames_t, ts, torch.tensor([ids]), f4d=self._f4d(video), max_new_tokens=self.max_new_tokens)
        return m.tokenizer.decode(out[0].tolist(), skip_special_tokens=True).strip()


def load_exported_student(path: str | os.PathLike, *, cache: str | None = None, attn: str | None = None,
                          dtype: str | None = None, device: str | None = None,
                          max_new_tokens: int = 32) -> StudentAnswerer:
    """An exported student (``OUT/export`` of ``p4d train``) ready for ``p4d eval``."""
    model = load_student_model(path, device=device, attn=attn, dtype=dtype)
    return StudentAnswerer(model, cache=cache, max_new_tokens=max_new_tokens)
