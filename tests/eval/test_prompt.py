"""The one prompt builder: the release's R4D-Bench prompt and p4d's own, written out literally."""

import pytest

from p4d.errors import ConfigError
from p4d.eval.prompt import format_prompt


def test_release_prompt_with_som_preamble_and_mixed_options():
    """The release's template: preamble (two sentences), question, "Options:" block and instruction
    joined by blank lines; a None option shown as "(D) " (empty text), values as str()."""
    assert format_prompt("How many times does <obj_1> turn?", [0, 1, "2", None], som=True) == (
        "The first image is a set-of-mark annotation of a key frame from the video, with bounding boxes labeled "
        "<obj_1>, <obj_2>, etc. References to <obj_N> in the question correspond to those labeled regions.\n"
        "\n"
        "How many times does <obj_1> turn?\n"
        "\n"
        "Options:\n(A) 0\n(B) 1\n(C) 2\n(D) \n"
        "\n"
        "Answer with only the letter of the correct option.")
    assert format_prompt("Q?", ["x", "y "]) == "Q?\n\nOptions:\n(A) x\n(B) y \n\nAnswer with only the letter of the correct option."


def test_p4d_prompt_and_numeric_items():
    assert format_prompt("Q?", ["x", "y"], style="p4d", som=True) == (
        "Q?\nA. x\nB. y\nAnswer with the option's letter from the given choices directly.")
    assert format_prompt("How far?", [], style="p4d") == "How far?\nAnswer with a single number."
    assert format_prompt("How far?", []) == "How far?\nAnswer with a single number."
    with pytest.raises(ConfigError, match="--protocol 'vila'"):
        format_prompt("Q?", ["x"], style="vila")
