"""Tokenizer and chat-prompt helpers for the student.

The prompt layout is NVILA-Lite's (qwen2 chat template): the first user turn starts with the
video block, N frames of h·w ``<vila/video>`` ids each followed by the frame-end token ``"\\n"``,
expanded in the ids (HF style), so the model finds the visual positions with
``input_ids == video_token_id``. Labels are −100 everywhere except the assistant answers (and
their closing ``<|im_end|>``), so L_SFT is CE on answer tokens only.

``build_tiny_tokenizer`` makes a ~300-token byte-level BPE in code (no download) for tests and
the ``tiny`` preset; real checkpoints bring their tokenizer in ``llm/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from p4d.errors import CheckpointError, ConfigError
from p4d.train.model.config import StudentConfig
from p4d.train.model.tpe import time_prompt

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
DEFAULT_SYSTEM = "You are a helpful assistant."
TINY_SPECIAL_TOKENS = ("<unk>", "<pad>", "<|im_start|>", "<|im_end|>", "<image>", "<vila/video>", "<vila/sentinel>")

_TINY_CORPUS = (
    "You are a helpful assistant.",
    "What is the depth of the red car at 2.5 s? The car is 12.3 meters away.",
    "How far did the camera move between the first and the last frame?",
    "Which object moves faster, [1] or [2]? A. [1] B. [2] C. same D. neither",
    "Answer with the option's letter from the given choices directly. The answer is A.",
    "The video lasts 8.0 seconds and 16 frames were sampled at 2.00 fps.",
    "Is the person walking towards the camera? Yes. No. The distance shrinks by 0.5 m per second.",
    "0 1 2 3 4 5 6 7 8 9 10 100 meters seconds frames left right up down speed direction",
)


def build_tiny_tokenizer(vocab_size: int = 300):
    """A byte-level BPE tokenizer trained in code on a fixed corpus (deterministic), with the
    NVILA-Lite special tokens: ids 0 <unk>, 1 <pad>, 2 <|im_start|>, 3 <|im_end|> (eos),
    4 <image>, 5 <vila/video>, 6 <vila/sentinel>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_TINY_CORPUS), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<image>", "<vila/video>", "<vila/sentinel>"],
    )


def load_tokenizer(path: str | os.PathLike, *, fingerprint: str | None = None):
    """The tokenizer saved in ``path`` (an NVILA-Lite ``llm/`` folder or an export), offline and as
    saved: ``tokenizer.json`` (normalizer, pre-tokenizer, BPE, added tokens) is loaded unchanged.

    Not through ``AutoTokenizer``: next to ``llm/config.json`` (model_type ``qwen2``) it picks
    ``Qwen2Tokenizer``, which rebuilds its own pre-tokenizer (digits split off one by one) over the
    saved one, so a tokenizer trained with another pre-tokenizer (the tiny one: " 1" is one token)
    would encode differently after export (" 1" -> " ", "1"). ``fingerprint``: the
    :func:`tokenizer_fingerprint` recorded at export; a loaded tokenizer that differs is a CheckpointError.
    Folders without ``tokenizer.json`` (sentencepiece only) go through ``AutoTokenizer``."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(path)
    try:
        if (folder / "tokenizer.json").is_file():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: no loadable tokenizer (tokenizer.json / tokenizer_config.json): {exc}") from exc
    if fingerprint is not None and tokenizer_fingerprint(tokenizer) != fingerprint:
        raise CheckpointError(
            f"{folder / 'tokenizer.json'}: the loaded tokenizer (sha256 {tokenizer_fingerprint(tokenizer)[:12]}…) is not "
            f"the one the student was trained and exported with ({fingerprint[:12]}…); re-export the student")
    return tokenizer


def save_tokenizer(tokenizer, folder: str | os.PathLike) -> str | None:
    """Write ``tokenizer`` (the training one, unchanged) to ``folder`` for :func:`load_tokenizer`;
    returns its :func:`tokenizer_fingerprint` (recorded by the export)."""
    tokenizer.save_pretrained(str(folder))
    return tokenizer_fingerprint(tokenizer)


def tokenizer_fingerprint(tokenizer) -> str | None:
    """sha256 of the tokenizer's full definition (``tokenizers`` JSON: normalizer, pre-tokenizer,
    model, added tokens); None for a tokenizer without a ``tokenizers`` backend."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SpecialIds:
    """Ids the student needs: the visual placeholder, the frame-end token, eos and pad."""

    video: int
    frame_end: int
    eos: int
    pad: int


def special_ids(tokenizer, cfg: StudentConfig) -> SpecialIds:
    """Resolve :class:`SpecialIds`; the video and frame-end tokens must be single tokens."""
    vocab = tokenizer.get_vocab()
    if cfg.video_token not in vocab:
        raise ConfigError(
            f"tokenizer: the video token {cfg.video_token!r} (StudentConfig.video_token) is not in the vocabulary"
        )
    end = tokenizer.encode(cfg.frame_end_token, add_special_tokens=False)
    if len(end) != 1:
        raise ConfigError(
            f"tokenizer: the frame-end token {cfg.frame_end_token!r} must encode to one id, found {end}"
        )
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in vocab else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise ConfigError("tokenizer: no <|im_end|> / eos token")
    return SpecialIds(video=vocab[cfg.video_token], frame_end=end[0], eos=int(eos), pad=int(pad))


def video_block(ids: SpecialIds, cfg: StudentConfig, num_frames: int) -> list[int]:
    """The expanded placeholder: N × (h·w video ids + frame-end id)."""
    h, w = cfg.token_grid
    return ([ids.video] * (h * w) + [ids.frame_end]) * num_frames


def encode_chat(
    tokenizer,
    cfg: StudentConfig,
    turns: Sequence[tuple[str, str | None]],
    *,
    num_frames: int,
    timestamps: Sequence[float] | None = None,
    system: str = DEFAULT_SYSTEM,
) -> dict[str, list[int]]:
    """Token ids and labels of a conversation about one video.

    turns: (question, answer) pairs; the video block opens the first question. A last answer of
    None ends the ids with the assistant header, ready for generation.
    timestamps: needed with ``tpe="prompt"`` (the duration/fps sentence precedes the first question).
    Returns {"input_ids": [...], "labels": [...]} (labels −100 except answers + their <|im_end|>).
    """
    if not turns:
        raise ConfigError("encode_chat: expected at least one (question, answer) turn, found none")
    if any(a is None for _, a in turns[:-1]):
        raise ConfigError("encode_chat: only the last turn may have answer None")
    if num_frames <= 0:
        raise ConfigError(f"encode_chat: num_frames must be positive, found {num_frames}")
    ids = special_ids(tokenizer, cfg)

    def enc(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    input_ids: list[int] = []
    labels: list[int] = []

    def add(tokens: list[int], learn: bool) -> None:
        input_ids.extend(tokens)
        labels.extend(tokens if learn else [IGNORE_INDEX] * len(tokens))

    add(enc(f"<|im_start|>system\n{system}<|im_end|>\n"), False)
    for i, (question, answer) in enumerate(turns):
        add(enc("<|im_start|>user\n"), False)
        if i == 0:
            add(video_block(ids, cfg, num_frames), False)
            add(enc("\n"), False)
            if cfg.tpe == "prompt":
                if timestamps is None:
                    raise ConfigError("encode_chat: tpe='prompt' needs the frame timestamps")
                question = time_prompt(timestamps) + question
        add(enc(f"{question}<|im_end|>\n<|im_start|>assistant\n"), False)
        if answer is not None:
            add(enc(answer) + [ids.eos], True)
            add(enc("\n"), False)
    return {"input_ids": input_ids, "labels": labels}


def pad_batch(
    examples: Sequence[dict[str, list[int]]], *, pad_id: int, side: str = "right"
) -> dict[str, torch.Tensor]:
    """Stack :func:`encode_chat` outputs: input_ids (B, L), labels (B, L), attention_mask (B, L).
    ``side="left"`` for generation."""
    if side not in ("left", "right"):
        raise ConfigError(f"pad_batch: side must be 'left' or 'right', found {side!r}")
    length = max(len(e["input_ids"]) for e in examples)
    out = {
        "input_ids": torch.full((len(examples), length), pad_id, dtype=torch.long),
        "labels": torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long),
        "attention_mask": torch.zeros((len(examples), length), dtype=torch.long),
    }
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        span = slice(length - n, length) if side == "left" else slice(0, n)
        out["input_ids"][row, span] = torch.tensor(e["input_ids"])
        out["labels"][row, span] = torch.tensor(e.get("labels", [IGNORE_INDEX] * n))
        out["attention_mask"][row, span] = 1
    return out
