"""Answer parsing on a table of hand-written model outputs."""

from __future__ import annotations

import pytest

from p4d.eval.parse import parse_choice, parse_number, parse_release_letter, random_letter

OPTIONS = ["3 m", "13 m", "a car", "2.5 m"]

CHOICES = [
    ("B", "B"),
    ("b", "B"),
    ("(B)", "B"),
    ("[C]", "C"),
    ("B.", "B"),
    ("d)", "D"),
    ("Answer: b", "B"),
    ("answer:C", "C"),
    ("The answer is (C).", "C"),
    ("The answer is D because it moved farther.", "D"),
    ("Option A is correct", "A"),
    ("The correct choice is B", "B"),
    ("**B**", "B"),
    ("B: 13 m", "B"),
    ("B 13 m", "B"),
    ("D) 2.5 m", "D"),
    ("13 m", "B"),           # the option text itself
    ("3 m.", "A"),           # ... with a trailing period
    ("A car", "C"),          # the text of option C, not option A
    ("answer is a car", "C"),  # "a" is an article here
    ("It moved 13 m in total.", "B"),  # "13 m" wins over the "3 m" inside it
    ("I think C is right", "C"),
    ("after comparing, (D)", "D"),
    ("A", "A"),
    ("", None),
    ("   ", None),
    ("I don't know", None),
    ("B or C", None),        # two letters: ambiguous
    ("E", None),             # not among the four options
    ("The object moves 7 m", None),
]


@pytest.mark.parametrize("text, expected", CHOICES)
def test_parse_choice(text, expected):
    assert parse_choice(text, OPTIONS) == expected


def test_parse_choice_five_options_reaches_e():
    assert parse_choice("E", ["a", "b", "c", "d", "e5"]) == "E"
    assert parse_choice(None, OPTIONS) is None


NUMBERS = [
    ("3.5", 3.5),
    ("3.5 meters", 3.5),
    ("about -2 m", -2.0),
    ("1,234.5 cm", 1234.5),
    ("2e1", 20.0),
    (".5 s", 0.5),
    ("There are three people.", 3.0),
    ("I count 4 people in frame 16; answer: 5", 5.0),  # the number after "answer" wins
    ("The answer is 7.25 m", 7.25),
    ("no idea", None),
    ("", None),
]


@pytest.mark.parametrize("text, expected", NUMBERS)
def test_parse_number(text, expected):
    assert parse_number(text) == expected


# The release's parser (R4D-Bench's lmms-eval task): answer prefixes removed case-sensitively, then the
# first "(X)" (capital X among the options' letters), else the first r"\b([A-X])\b"; None -> random letter.
# Expected letters worked out by hand from those rules, four options (A-D).
RELEASE = [
    ("B", "B"),
    ("(C)", "C"),
    ("The best answer is (D).", "D"),
    ("The answer is B", "B"),
    ("Answer: A", "A"),
    ("answer: c", None),                      # no capital letter anywhere
    ("(b) because it turns", None),           # "(b)" is not "(B)": the release reads capitals only
    ("B: 13 m", "B"),
    ("It is (E), no wait, B", "B"),           # (E) is no option letter of four: the bare B
    ("I think 2", None),                      # "I" is a capital word but not an option letter
    ("two", None),
    ("", None),
    (None, None),
    ("the answer is (b)", None),              # prefix strip is case-sensitive; (b) is lower case
    ("(b)", None),
    ("Option_B", None),                       # "_" is a word character: no \b before B
    ("B_", None),                             # ... nor after it
    ("Answer: (C)", "C"),
    ("The correct answer is A.", "A"),
    ("Best option: D", "D"),
    ("A car is moving left", "A"),            # the article reads as option A
    ("The answer is A car", "A"),
    ("C) 3 m", "C"),                          # no "(C)": the bare C
    ("[B]", "B"),
    ("Answer:B", "B"),                        # "Answer:" removed, then "B"
    ("The answer is (A) or (B)", "A"),        # the first bracketed letter
    ("D, and then (B)", "B"),                 # any "(X)" before a bare letter, wherever it is
    ("E", None),                              # not among four options
    ("ABCD", None),                           # no one-letter word
    ("The best answer is: C", "C"),
    ("THE ANSWER IS D", "D"),
    ("Answer: The best answer is B", "B"),    # both prefixes removed
]


@pytest.mark.parametrize("text, expected", RELEASE)
def test_release_letter_parser(text, expected):
    assert parse_release_letter(text, 4) == expected


def test_release_letter_parser_reads_only_the_options_letters():
    assert parse_release_letter("C", 2) is None and parse_release_letter("(C) or B", 2) == "B"
    assert parse_release_letter("Z", 26) == "Z"


def test_unseeded_random_letter_is_the_global_generator():
    """Unseeded (the release's behaviour): random.choice on Python's global generator."""
    import random

    random.seed(11)
    drawn = [random_letter(4, None, f"q{k}") for k in range(20)]
    reference = random.Random(11)
    assert drawn == [reference.choice("ABCD") for _ in range(20)]


def test_random_letter_is_seeded_per_item_and_uniform():
    assert random_letter(4, 0, "q1") == random_letter(4, 0, "q1")
    draws = [random_letter(4, 0, f"q{k}") for k in range(4000)]
    for letter in "ABCD":  # 1000 expected each; sd = sqrt(4000 * 0.25 * 0.75) = 27.4
        assert abs(draws.count(letter) - 1000) < 5 * 27.4
    assert set(draws) == set("ABCD")
    other_seed = [random_letter(4, 1, f"q{k}") for k in range(200)]
    assert other_seed != draws[:200]
