"""The prompt a student reads for a benchmark item: the one home of the prompt text, used by
``p4d eval``, the exported student's answerer (``p4d.train.export``) and the lmms-eval task
(``p4d/eval/lmms_eval_task/``).

Two styles:

- ``release`` (default; R4D-Bench's lmms-eval task as released, notes/release.md §6): four parts
  joined by a blank line (``"\n\n"``): the SoM preamble (two sentences) when the item has a SoM
  image, the question, ``Options:`` with one ``(A) …`` line per option, then "Answer with only the
  letter of the correct option."::

      The first image is a set-of-mark annotation of a key frame from the video, with bounding boxes labeled <obj_1>, <obj_2>, etc. References to <obj_N> in the question correspond to those labeled regions.

      How far did <obj_1> move?

      Options:
      (A) 0.5
      (B) 1

      Answer with only the letter of the correct option.

- ``p4d`` (p4d's own earlier format): the question, ``A. …`` lines, "Answer with the option's
  letter from the given choices directly."

Items without options (numeric, p4d's own format) end with "Answer with a single number." in
both styles. Options are shown as the release normalises them (:func:`option_text`): ``str(value)``,
None as the empty string (so a None option reads ``"(D) "``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from p4d.errors import ConfigError

LETTERS = string.ascii_uppercase
PROMPT_STYLES = ("release", "p4d")
SOM_PREAMBLE = ("The first image is a set-of-mark annotation of a key frame from the video, with bounding boxes "
                "labeled <obj_1>, <obj_2>, etc. References to <obj_N> in the question correspond to those labeled "
                "regions.")
RELEASE_INSTRUCTION = "Answer with only the letter of the correct option."
P4D_INSTRUCTION = "Answer with the option's letter from the given choices directly."
NUMERIC_INSTRUCTION = "Answer with a single number."


def option_text(value) -> str:
    """How an option value is shown, as the release normalises ``test.json``: ``str(value)`` (0 → "0",
    "2 m " kept as written), None → ""."""
    return "" if value is None else str(value)


def format_prompt(question: str, options: Sequence, *, style: str = "release", som: bool = False) -> str:
    """The text after the visual input. ``som``: a SoM image comes first (release style only adds
    the preamble then)."""
    if style not in PROMPT_STYLES:
        raise ConfigError(f"--protocol {style!r}: expected one of {', '.join(PROMPT_STYLES)}")
    head = [SOM_PREAMBLE] if som and style == "release" else []
    if not options:
        return "\n".join([*head, question, NUMERIC_INSTRUCTION])
    texts = [option_text(o) for o in options]
    if style == "release":
        lines = "\n".join(f"({LETTERS[i]}) {t}" for i, t in enumerate(texts))
        return "\n\n".join([*head, question, f"Options:\n{lines}", RELEASE_INSTRUCTION])
    return "\n".join([question, *(f"{LETTERS[i]}. {t}" for i, t in enumerate(texts)), P4D_INSTRUCTION])
