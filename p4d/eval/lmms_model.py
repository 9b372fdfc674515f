"""A p4d student as an lmms-eval model (``--model p4d``), on lmms-eval's documented "simple" model API.

Install in an environment of its own (lmms-eval 0.7's own requirements move torch and PyAV):
``bash bench/lmms_env.sh`` builds ``.venv-lmms`` (docs/eval.md, "lmms-eval"), then::

    .venv-lmms/bin/python -m lmms_eval --model p4d --model_args pretrained=RUN/export,num_frames=16 \
        --tasks r4d_bench --include_path p4d/eval/lmms_eval_task --batch_size 8

Registration: the entry point ``p4d = p4d.eval.lmms_model:model_manifest`` (setup.cfg, group
``lmms_eval.models``, which lmms-eval 0.7.3 loads) hands lmms-eval a
``ModelManifest(model_id="p4d", simple_class_path="p4d.eval.lmms_model.P4DStudent")``;
``@register_model("p4d")`` also enters it in lmms-eval's older ``MODEL_REGISTRY`` on import.

Per request (``Instance.args = (context, gen_kwargs, doc_to_visual, doc_id, task, split)``): the
task's visuals are read in order: images (PIL images or image paths) become the images shown before
the video (R4D-Bench's SoM image), the video path gives N frames sampled uniformly with their
timestamps (:func:`p4d.video.sample_clip`, as ``p4d eval``); the context is the full prompt. Greedy
generation, ``max_new_tokens`` from ``gen_kwargs``, the text cut at the first ``until`` string;
``--batch_size`` requests answered together (left-padded batches). A video that cannot be decoded gets
the empty answer (the task scores it as unparsed, as ``p4d eval`` does). ``loglikelihood`` is not offered.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from p4d.errors import ConfigError, P4DError

log = logging.getLogger(__name__)

MODEL_ID = "p4d"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _lmms_base():
    """lmms-eval's model base class, or ``object`` where lmms-eval is not installed (the adapter's
    logic is then still importable and testable)."""
    try:
        from lmms_eval.api.model import lmms
    except ImportError:
        return object
    return lmms


def _register(cls):
    try:
        from lmms_eval.api.registry import register_model
    except ImportError:
        return cls
    return register_model(MODEL_ID)(cls)


def model_manifest():
    """The ``lmms_eval.models`` entry point: p4d's model, a "simple" (doc_to_visual + doc_to_text) model."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.P4DStudent")


@_register
class P4DStudent(_lmms_base()):
    """lmms-eval model wrapping an exported p4d student (``pretrained``: the ``p4d train`` export folder)."""

    is_simple = True

    def __init__(self, pretrained: str, num_frames: int = 16, device: str = "auto", dtype: str | None = None,
                 attn: str | None = None, cache: str | None = None, batch_size: int | str = 1,
                 student=None, **kwargs) -> None:
        super().__init__()
        if not hasattr(self, "task_dict"):
            self.task_dict = {}
        if kwargs:
            log.warning("p4d lmms-eval model: ignoring model_args %s", ", ".join(sorted(kwargs)))
        self.num_frames = int(num_frames)
        self.batch_size_per_gpu = 1 if str(batch_size) == "auto" else int(batch_size)
        if self.num_frames < 1 or self.batch_size_per_gpu < 1:
            raise ConfigError(f"--model_args num_frames={num_frames}, batch_size={batch_size}: expected at least 1")
        if student is None:
            from p4d.eval.run import check_cache_requirement, load_student, read_student_config
            from p4d.train.model.placement import resolve_placement

            check_cache_requirement(Path(pretrained), read_student_config(pretrained), cache)
            device, dtype = resolve_placement(device, None if dtype in (None, "auto") else dtype)
            student = load_student(pretrained, cache=cache, attn=attn, dtype=dtype, device=device)
        self.student = student

    def request_of(self, context: str, visuals) -> dict:
        """One request of the student's ``answer``/``answer_batch`` from a task's visuals and context."""
        from p4d.eval.run import _read_image
        from p4d.video import sample_clip

        images, video = [], None
        for v in visuals:
            if isinstance(v, (str, Path)) and Path(v).suffix.lower() in IMAGE_SUFFIXES:
                images.append(_read_image(Path(v)))
            elif isinstance(v, (str, Path)):
                if video is not None:
                    raise ConfigError(f"p4d lmms-eval model: one video per request, got {video} and {v}")
                video = str(v)
            elif hasattr(v, "convert"):  # a PIL image
                images.append(np.asarray(v.convert("RGB")))
            else:
                raise ConfigError(f"p4d lmms-eval model: unsupported visual {type(v).__name__}; expected image or video")
        if video is None:
            raise ConfigError("p4d lmms-eval model: the request holds no video; p4d students answer about videos")
        clip = sample_clip(video, num_frames=self.num_frames, policy="uniform")
        return {"frames": clip.frames, "timestamps": clip.timestamp.astype(np.float64), "question_text": context,
                "options": [], "video": video, "prompt": context, "images": images}

    def generate_until(self, requests) -> list[str]:
        """Greedy answers, ``batch_size`` requests at a time, in the order asked."""
        answers: list[str] = []
        for start in range(0, len(requests), self.batch_size_per_gpu):
            chunk = requests[start:start + self.batch_size_per_gpu]
            prepared, stops = [], []
            for instance in chunk:
                context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
                visuals = doc_to_visual(self.task_dict[task][split][doc_id])
                try:
                    prepared.append(self.request_of(context, visuals))
                except P4DError as exc:  # an unreadable video: an empty answer, which the task scores as unparsed
                    log.warning("%s/%s doc %s: %s; answering ''", task, split, doc_id, exc)
                    prepared.append(None)
                stops.append(list((gen_kwargs or {}).get("until") or []))
                if gen_kwargs and gen_kwargs.get("max_new_tokens"):
                    self.student.max_new_tokens = int(gen_kwargs["max_new_tokens"])
            readable = [r for r in prepared if r is not None]
            texts = iter(self.student.answer_batch(readable) if readable else [])
            answers += [_cut(next(texts), until) if r is not None else "" for r, until in zip(prepared, stops, strict=True)]
        return answers

    def loglikelihood(self, requests):
        raise NotImplementedError("p4d students generate answers; loglikelihood tasks are not supported")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("p4d students answer one round")


def _cut(text: str, until: list[str]) -> str:
    """``text`` up to the first of the ``until`` strings."""
    for stop in until:
        if isinstance(stop, str) and stop and stop in text:
            text = text[: text.index(stop)]
    return text
