"""Cheap, deterministic answer metrics, computed for every case.

Each metric takes ``(answer, reference, must_include)`` and returns a float, or ``None`` when it does not apply
to the case (no reference answer, no must-include list). ``None`` means *unmeasured*: report it as such and
never average it in as 0 or NaN.

* ``token_f1`` / ``exact_match``: SQuAD v1.1 definitions (lowercase, drop punctuation and the articles
  a/an/the, split on whitespace; F1 over the bag of tokens).
* ``rouge_l``: ROUGE-L F1 (longest common subsequence of tokens), tokenised like the ``rouge_score`` package's
  default tokenizer (lowercase, runs of ``[a-z0-9]``, no stemming).
* ``must_include_recall``: fraction of required strings found in the answer (see :func:`normalize_for_match`).
* ``answer_tokens``: answer length in whitespace-separated words (not model tokens).
* ``abstained``: 1.0 when the answer declines ("not in the documents", "I don't know"), else 0.0.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.errors import InputError

__all__ = [
    "ANSWER_METRICS",
    "AnswerMetric",
    "abstained",
    "answer_tokens",
    "exact_match",
    "must_include_missing",
    "must_include_recall",
    "normalize_answer",
    "normalize_for_match",
    "rouge_l",
    "rouge_tokens",
    "score_answer",
    "token_f1",
]

# ------------------------------------------------------------------------------------ SQuAD token metrics

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, remove punctuation, remove articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(answer: str, reference: str) -> float:
    """SQuAD token F1 between ``answer`` and ``reference`` after :func:`normalize_answer`.

    ``P = |common| / |answer tokens|``, ``R = |common| / |reference tokens|``, ``F1 = 2PR / (P + R)``, where
    ``common`` is the multiset intersection of tokens. When either side has no tokens, F1 is 1.0 if both are
    empty and 0.0 otherwise (as in the SQuAD script).
    """
    pred = normalize_answer(answer).split()
    gold = normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    p = same / len(pred)
    r = same / len(gold)
    return 2 * p * r / (p + r)


def exact_match(answer: str, reference: str) -> float:
    """1.0 when ``answer`` and ``reference`` are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(answer) == normalize_answer(reference))


# ------------------------------------------------------------------------------------------------- ROUGE-L

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Tokens as ``rouge_score``'s default tokenizer makes them: lowercase runs of ``[a-z0-9]``."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    # One row of the DP table over the shorter sequence.
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1: ``P = LCS / |answer|``, ``R = LCS / |reference|``, ``F1 = 2PR / (P + R)``.

    ``LCS`` is the length of the longest common subsequence of :func:`rouge_tokens`. 0.0 when either side has no
    tokens (as in ``rouge_score``).
    """
    pred = rouge_tokens(answer)
    gold = rouge_tokens(reference)
    if not pred or not gold:
        return 0.0
    lcs = _lcs_length(pred, gold)
    if lcs == 0:
        return 0.0
    p = lcs / len(pred)
    r = lcs / len(gold)
    return 2 * p * r / (p + r)


def answer_tokens(answer: str) -> int:
    """Answer length in whitespace-separated words."""
    return len(answer.split())


# ------------------------------------------------------------------------------------------- must-include

# Typographic variants a model emits that an author rarely types.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)

# A standalone number, optionally with a currency sign and thousands separators. The look-arounds keep it from
# matching inside words, codes and dotted section numbers ("R905.2.8", "905.2.10"), which stay as written.
_NUMBER = re.compile(
    r"(?<![\w.,])"
    r"(?:[$€£]\s?)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)"
    r"(?:\.(?P<frac>\d+))?"
    r"(?![.,]?\d)(?!\w)"
)


# Counts a writer spells out ("six nails") and a model may give as digits ("6 nails"), or the other way round.
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
    )
}
_NUMBER_WORD = re.compile(r"\b(?:" + "|".join(_NUMBER_WORDS) + r")\b")


# Units written several ways after a number ("3-inch", '3"', "3 inches"; "19%", "19 per cent"; "2 feet", "2 ft").
_UNITS = [
    (re.compile(r"(?P<n>\d)\s*-?\s*(?:inches|inch|in\.|\")"), "in"),
    (re.compile(r"(?P<n>\d)\s*-?\s*(?:feet|foot|ft\.?)(?!\w)"), "ft"),
    (re.compile(r"(?P<n>\d)\s*(?:%|per\s?cent|percent)"), "percent"),
]


def _canonical_number(match: re.Match[str]) -> str:
    whole = match["int"].replace(",", "")
    frac = match["frac"] or ""
    # An all-zero fraction adds nothing ("$4,812.00" is "4812"); other decimals stay as written, so "2.10" and
    # "2.1" (often section numbers) remain distinct.
    return f"{whole}.{frac}" if frac.strip("0") else whole


def normalize_for_match(text: str) -> str:
    """Normalise text for must-include matching, the same way on both sides.

    Unicode compatibility forms (NFKC), case folding, ASCII quotes and dashes, collapsed whitespace, and numbers
    written canonically: currency signs and thousands separators dropped, an all-zero fraction removed
    (``"$4,812.60"`` and ``"4812.60"`` both become ``"4812.60"``; ``"$4,812.00"`` and ``"4812"`` become ``"4812"``).
    Other decimals stay as written. Numbers inside words or dotted codes (``"R905.2.8"``) are left alone. Number
    words up to twenty become digits (``"six"`` and ``"6"`` match), and common units after a number are written one
    way (``"3-inch"``, ``'3"'`` and ``"3 in"``; ``"19%"`` and ``"19 percent"``; ``"2 feet"`` and ``"2 ft"``).
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_TYPOGRAPHY)
    text = " ".join(text.split())
    text = _NUMBER_WORD.sub(lambda match: _NUMBER_WORDS[match[0]], text)
    for pattern, unit in _UNITS:
        text = pattern.sub(rf"\g<n> {unit}", text)
    return _NUMBER.sub(_canonical_number, text)


def _splits_number(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] begins or ends in the middle of a longer number (``12`` inside ``4812.12``)."""
    if start > 0 and text[start].isdigit():
        before = text[start - 1]
        if before.isdigit() or (before in ".," and start > 1 and text[start - 2].isdigit()):
            return True
    if end < len(text) and text[end - 1].isdigit():
        after = text[end]
        if after.isdigit() or (after in ".," and end + 1 < len(text) and text[end + 1].isdigit()):
            return True
    return False


def _contains(haystack: str, needle: str) -> bool:
    # Words match as substrings (so "shingle" finds "shingles"); numbers must match whole.
    start = haystack.find(needle)
    while start >= 0:
        if not _splits_number(haystack, start, start + len(needle)):
            return True
        start = haystack.find(needle, start + 1)
    return False


def _normalized_needles(must_include: Sequence[str]) -> list[tuple[str, str]]:
    if isinstance(must_include, str):
        must_include = [must_include]
    needles = []
    for i, raw in enumerate(must_include):
        if not isinstance(raw, str) or not normalize_for_match(raw):
            raise InputError(
                f"must_include[{i}] is {raw!r}, not a non-empty string",
                hint="list the strings the answer must contain, each non-empty",
            )
        needles.append((raw, normalize_for_match(raw)))
    return needles


def must_include_missing(answer: str, must_include: Sequence[str]) -> list[str]:
    """The ``must_include`` strings (as written) that the answer does not contain."""
    text = normalize_for_match(answer)
    return [raw for raw, needle in _normalized_needles(must_include) if not _contains(text, needle)]


def must_include_recall(answer: str, must_include: Sequence[str] | None) -> float | None:
    """Fraction of ``must_include`` strings found in ``answer``; ``None`` when the list is empty or missing.

    Both sides go through :func:`normalize_for_match`. A word matches anywhere (``"shingle"`` is found in
    ``"shingles"``); a number only as a whole number (``"12"`` is not found in ``"4812.12"``).

    Raises:
        InputError: an entry that is empty or not a string.
    """
    if not must_include:
        return None
    needles = _normalized_needles(must_include)
    return 1.0 - len(must_include_missing(answer, must_include)) / len(needles)


# ------------------------------------------------------------------------------------------------ abstain

_DOCS = (
    r"(?:(?:provided|given|available|supplied|retrieved)\s+)?(?:documents?|context|sources?|excerpts?|passages?|"
    r"materials?|information|text|knowledge base|records?)"
)
_ABSTAIN_PATTERNS = [
    r"\bi\s+(?:do\s+not|don't|dont)\s+know\b",
    r"\bi\s+(?:cannot|can't|cant|could\s+not|couldn't|am\s+unable\s+to|was\s+unable\s+to)\s+"
    r"(?:find|locate|determine|answer|say|tell)\b",
    r"\b(?:unable|not\s+able)\s+to\s+(?:find|locate|determine|answer)\b",
    rf"\bnot\s+(?:found|mentioned|covered|addressed|specified|stated|provided|included|available|present)\s+"
    rf"(?:in|within|by)\s+(?:the\s+)?{_DOCS}",
    rf"\b(?:the\s+)?{_DOCS}\s+(?:do|does|did)\s*(?:not|n't)\s+"
    r"(?:contain|mention|include|say|specify|provide|state|address|cover|discuss)\b",
    rf"\bno\s+(?:relevant\s+|such\s+)?(?:information|mention|details?|data)\s+(?:about|on|regarding|of|in)\b.*?\b{_DOCS}",
    rf"\bno\s+(?:relevant\s+)?{_DOCS}\s+(?:about|on|regarding|for)\b",
    r"\b(?:insufficient|not\s+enough)\s+(?:information|context|data)\b",
    r"\bnot\s+in\s+(?:the\s+)?" + _DOCS,
]
_ABSTAIN = re.compile("|".join(f"(?:{p})" for p in _ABSTAIN_PATTERNS), re.IGNORECASE | re.DOTALL)


def abstained(answer: str) -> bool:
    """Whether the answer declines to answer: "not in the documents", "I don't know", "cannot find" and kin.

    Refusals are recognised by phrases that point at the model's own knowledge or at the documents
    ("the provided documents do not mention ..."), so a factual negative such as "the estimate does not include
    drip edge" is not a refusal. An empty answer is not a refusal either.
    """
    text = unicodedata.normalize("NFKC", answer).translate(_TYPOGRAPHY)
    return _ABSTAIN.search(text) is not None


# ----------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class AnswerMetric:
    """One answer metric: ``fn(answer, reference, must_include) -> float | None`` and what it needs to apply."""

    fn: Callable[[str, str | None, Sequence[str] | None], float | None]
    needs: str
    description: str


def _with_reference(
    metric: Callable[[str, str], float],
) -> Callable[[str, str | None, Sequence[str] | None], float | None]:
    def fn(answer: str, reference: str | None, must_include: Sequence[str] | None) -> float | None:
        return None if reference is None else metric(answer, reference)

    return fn


# The only list of answer metrics.
ANSWER_METRICS: dict[str, AnswerMetric] = {
    "token_f1": AnswerMetric(_with_reference(token_f1), "reference", "SQuAD token F1 against the reference"),
    "exact_match": AnswerMetric(_with_reference(exact_match), "reference", "SQuAD exact match against the reference"),
    "rouge_l": AnswerMetric(_with_reference(rouge_l), "reference", "ROUGE-L F1 against the reference"),
    "must_include_recall": AnswerMetric(
        lambda answer, reference, must_include: must_include_recall(answer, must_include),
        "must_include",
        "fraction of must_include strings found in the answer",
    ),
    "answer_tokens": AnswerMetric(
        lambda answer, reference, must_include: float(answer_tokens(answer)), "", "answer length in words"
    ),
    "abstained": AnswerMetric(
        lambda answer, reference, must_include: float(abstained(answer)), "", "1.0 if the answer declined"
    ),
}


def score_answer(
    answer: str | None,
    reference: str | None = None,
    must_include: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """Compute answer metrics for one case.

    Args:
        answer: the generated answer; ``None`` when generation failed (every metric is then ``None``).
        reference: the reference answer, if the case has one.
        must_include: strings the answer must contain, if any.
        metrics: names from :data:`ANSWER_METRICS`; all of them by default.

    Returns:
        ``{metric name: value}``, with ``None`` for metrics that do not apply to this case.

    Raises:
        InputError: an unknown metric name or a malformed ``must_include`` entry.
    """
    names = list(ANSWER_METRICS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in ANSWER_METRICS]
    if unknown:
        raise InputError(
            f"unknown answer metric(s): {', '.join(map(repr, unknown))}",
            hint=f"use some of: {', '.join(ANSWER_METRICS)}",
        )
    if answer is None:
        return dict.fromkeys(names)
    return {name: ANSWER_METRICS[name].fn(answer, reference, must_include) for name in names}
