"""Reading the chosen option (or number) out of a model's free-form answer.

:func:`parse_choice` tries, in order, and returns the first rule that gives exactly one letter:

1. the whole answer is an option's text (case, surrounding punctuation and a trailing period ignored);
2. an explicit marker: "answer/option/choice (is) (X)", e.g. "Answer: b", "The answer is (C).";
3. the answer starts with a letter: "B", "(B)", "B.", "b)", "B: 3 m", or "B 3 m" when what follows is B's
   text (a leading "A " starting a sentence such as "A car ..." is not read as option A);
4. one distinct bracketed letter anywhere: "... so (D)";
5. exactly one option's text appears in the answer as whole words (the longest wins when one option's
   text contains another's, e.g. "13 m" over "3 m");
6. exactly one distinct stand-alone capital letter among the options' letters ("I think C is right";
   "A"/"I" followed by a lower-case word are taken as words).

Anything else is unparsed (None), which scores 0. :func:`parse_number` reads the first number after
an "answer" marker, else the first number in the text (digits, decimals, signs, exponents, thousands
separators, and the words zero..twenty).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase
_MARKER = re.compile(r"\b(?:answer|option|choice)\b(?:\s+is)?\s*[:=]?\s*(?:option\s+)?[\(\[]?\s*([A-Za-z])\s*[\)\]]?(?![A-Za-z])",
                     re.IGNORECASE)
_LEADING = re.compile(r"^[\(\[]?\s*([A-Za-z])\s*(?:[\)\]\.:,]|$)")
_LEADING_SPACE = re.compile(r"^([A-Z])\s+(.+)$", re.DOTALL)
_BRACKETED = re.compile(r"[\(\[]\s*([A-Za-z])\s*[\)\]]")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen twenty").split()
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
_ANSWER_MARKER = re.compile(r"\banswer\b(?:\s+is)?\s*[:=]?", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(text.lower().strip().strip(".,;:!?\"'`*").split())


def parse_choice(text: str | None, options: Sequence[str]) -> str | None:
    """The option letter ``text`` chooses among ``options`` (A, B, ...), or None if it cannot tell."""
    if not text or not text.strip():
        return None
    letters = LETTERS[: len(options)]
    raw = text.strip().strip("*`\"'")
    norm = _norm(raw)
    for rule in (_by_exact_text, _by_marker, _by_leading_letter, _by_bracketed, _by_option_text, _by_standalone):
        found = rule(raw, norm, options, letters)
        if found is not None:
            return found
    return None


def _one(candidates, letters: str) -> str | None:
    found = {c.upper() for c in candidates if c.upper() in letters}
    return found.pop() if len(found) == 1 else None


def _by_exact_text(raw, norm, options, letters):
    matches = [letters[i] for i, o in enumerate(options) if _norm(o) == norm]
    return matches[0] if len(matches) == 1 else None


def _by_marker(raw, norm, options, letters):
    candidates = []
    for match in _MARKER.finditer(raw):
        letter, after = match.group(1), raw[match.end(1):].lstrip()
        bracketed = match.group(0).rstrip().endswith((")", "]"))
        if letter.islower() and not (bracketed or not after or after[0] in ".,:;!?)]"):
            continue  # "the answer is a car": a word, not option a
        named = re.match(r"(?i)(?:option|choice)\b", match.group(0)) or re.search(r"(?i)\boption\s+\S*$", match.group(0)[:-1])
        if not named and letter in "AI" and after[:1].islower() and raw[match.end(1):match.end(1) + 1] == " ":
            continue  # "the answer is A car" (but "Option A is correct" names option A)
        candidates.append(letter)
    return _one(candidates, letters)


def _by_leading_letter(raw, norm, options, letters):
    match = _LEADING.match(raw)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    match = _LEADING_SPACE.match(raw)
    if match and match.group(1) in letters:
        rest = _norm(match.group(2))
        if rest and rest == _norm(options[letters.index(match.group(1))]):
            return match.group(1)
    return None


def _by_bracketed(raw, norm, options, letters):
    return _one(_BRACKETED.findall(raw), letters)


def _by_option_text(raw, norm, options, letters):
    hits = []
    for i, option in enumerate(options):
        o = _norm(option)
        if o and re.search(r"(?<![\w.])" + re.escape(o) + r"(?![\w])", norm):
            hits.append((len(o), i, o))
    if not hits:
        return None
    longest = max(hits)
    # drop options whose text only appears inside a longer hit's text
    kept = [h for h in hits if h is longest or h[2] not in longest[2]]
    return letters[longest[1]] if len(kept) == 1 else None


def _by_standalone(raw, norm, options, letters):
    candidates = []
    for match in _STANDALONE.finditer(raw):
        letter = match.group(1)
        after = raw[match.end():match.end() + 2]
        if letter in "AI" and len(after) == 2 and after[0] == " " and after[1].islower():
            continue  # the article "A" or the pronoun "I"
        candidates.append(letter)
    return _one(candidates, letters)


def parse_number(text: str | None) -> float | None:
    """The number ``text`` answers with, or None."""
    if not text or not text.strip():
        return None
    marker = _ANSWER_MARKER.search(text)
    for chunk in ([text[marker.end():]] if marker else []) + [text]:
        value = _first_number(chunk)
        if value is not None:
            return value
    return None


def _first_number(text: str) -> float | None:
    best: tuple[int, float] | None = None
    for match in _NUMBER.finditer(text):
        token = match.group(0)
        if not any(ch.isdigit() for ch in token):
            continue
        try:
            best = (match.start(), float(token.replace(",", "")))
        except ValueError:
            continue
        break
    word = _WORD_NUMBER.search(text)
    if word and (best is None or word.start() < best[0]):
        return float(_WORDS.index(word.group(1).lower()))
    return best[1] if best else None


# ---- the release's parsing (R4D-Bench's lmms-eval task, notes/release.md §6) -------------------

#: Answer prefixes the release removes, in its order, case-sensitively (``str.replace``), before
#: reading a letter.
ANSWER_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The best option is",
                   "The correct option is", "Best answer:", "Best option:", "Answer:")


def parse_release_letter(text: str | None, num_options: int) -> str | None:
    """The release's reading of a model's answer: the text stripped of surrounding white space, every
    :data:`ANSWER_PREFIXES` occurrence removed (case-sensitive, in order), then the first ``(X)``
    (regex ``\\(([A-X])\\)``, X an option letter, capital only), else the first ``\\b([A-X])\\b``;
    None when neither matches (the caller draws a random letter). ``"(b)"``, ``"Option_B"`` and
    ``"B_"`` hold no letter for it (``_`` is a word character)."""
    if not text:
        return None
    s = text.strip()
    for prefix in ANSWER_PREFIXES:
        s = s.replace(prefix, "")
    letters = LETTERS[:num_options]
    for pattern in (rf"\(([{letters}])\)", rf"\b([{letters}])\b"):
        match = re.search(pattern, s)
        if match:
            return match.group(1)
    return None


def random_letter(num_options: int, seed: int | None, item_id: str) -> str:
    """A uniformly random option letter for an unparsed answer. ``seed`` None: Python's global
    generator, unseeded (the release's ``random.choice``); an int: a generator seeded by
    (seed, item id), so the same letter on every rerun and resume, whatever the item order."""
    if seed is None:
        return random.choice(LETTERS[:num_options])
    return random.Random(f"r4d:{seed}:{item_id}").choice(LETTERS[:num_options])


# ---- STI-Bench's official parsing (MINT-SJTU/STI-Bench opensource_test.py) -------------------------

#: The official cascade: the first pattern that matches (case-insensitive, multi-line) gives the
#: letter, upper-cased.
STI_PATTERNS = (r"\(([A-E])\)", r"Ans\s*=\s*['\"]?([A-E])['\"]?", r"Answer\s*[:=]\s*([A-E])", r"Option\s+([A-E])",
                r"\b([A-E])\s*(?:is|was)\s*correct", r"\b([A-E])[\.\)]\s*$")


def parse_sti_letter(text: str | None) -> str | None:
    """STI-Bench's official reading: :data:`STI_PATTERNS` in order; when none matches, the script keeps
    the stripped answer and scores its last character, so a last character in ``ABCDE`` (capital) is
    the letter; else None (scored 0)."""
    if not text:
        return None
    for pattern in STI_PATTERNS:
        match = re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE)
        if match:
            return match.group(1).upper()
    stripped = text.strip()
    return stripped[-1] if stripped and stripped[-1] in "ABCDE" else None


# ---- the "matched" rule: an answer that states an option's value ---------------------------------

def match_option_value(text: str | None, options: Sequence[str]) -> str | None:
    """The option whose value the answer states: the whole answer is that option's text (case,
    surrounding punctuation ignored), else exactly one option's text appears in it as whole words
    (the longest when one contains another, e.g. "13 m" over "3 m"); None otherwise."""
    if not text or not text.strip():
        return None
    letters = LETTERS[: len(options)]
    raw = text.strip().strip("*`\"'")
    norm = _norm(raw)
    return _by_exact_text(raw, norm, options, letters) or _by_option_text(raw, norm, options, letters)
