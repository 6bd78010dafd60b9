"""Answer metrics on hand-worked examples; ROUGE-L also against an independent full-table LCS."""

from __future__ import annotations

import random

import pytest

from harness.errors import InputError
from harness.metrics.answer import (
    ANSWER_METRICS,
    abstained,
    answer_tokens,
    exact_match,
    must_include_missing,
    must_include_recall,
    normalize_answer,
    normalize_for_match,
    rouge_l,
    rouge_tokens,
    score_answer,
    token_f1,
)

# ------------------------------------------------------------------------------------------------ SQuAD


def test_normalize_answer_follows_squad() -> None:
    assert normalize_answer("The  Roof's drip-edge, an issue!") == "roofs dripedge issue"
    assert normalize_answer("A cat and THE hat") == "cat and hat"
    assert normalize_answer("theory anatomy") == "theory anatomy"  # articles only as whole words


def test_token_f1_hand_worked() -> None:
    # answer tokens: replace damaged shingles on north slope (6); reference: replace shingles on north slope (5)
    # common = 5 -> P = 5/6, R = 5/5, F1 = 2 * (5/6) / (5/6 + 1) = 10/11
    assert token_f1("Replace the damaged shingles on the north slope.", "replace shingles on north slope") == (
        pytest.approx(10 / 11)
    )
    assert token_f1("a b c", "d e") == 0.0
    # Multiset intersection: "roof roof" vs "roof" shares one token: P = 1/2, R = 1, F1 = 2/3.
    assert token_f1("roof roof", "roof") == pytest.approx(2 / 3)


def test_token_f1_empty_sides() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a") == 1.0  # both normalise to nothing
    assert token_f1("", "roof") == 0.0
    assert token_f1("roof", "") == 0.0


def test_exact_match_after_normalisation() -> None:
    assert exact_match("The Ice & Water Shield.", "ice  water shield") == 1.0
    assert exact_match("ice and water shield", "ice water shield") == 0.0


# ------------------------------------------------------------------------------------------------- ROUGE-L


def lcs_full_table(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[len(a)][len(b)]


def rouge_l_oracle(answer: str, reference: str) -> float:
    a, b = rouge_tokens(answer), rouge_tokens(reference)
    if not a or not b:
        return 0.0
    lcs = lcs_full_table(a, b)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


def test_rouge_tokens_match_rouge_score_default_tokenizer() -> None:
    assert rouge_tokens("Hello, World! It's 4,812.60 dollars") == ["hello", "world", "it", "s", "4", "812", "60",
                                                                   "dollars"]
    assert rouge_tokens("café") == ["caf"]  # non-ASCII letters are separators, as in rouge_score


def test_rouge_l_hand_worked() -> None:
    # answer: police killed the gunman; reference: police kill the gunman. LCS = police the gunman = 3.
    # P = 3/4, R = 3/4, F1 = 3/4.
    assert rouge_l("police killed the gunman", "police kill the gunman") == pytest.approx(0.75)
    assert rouge_l("the gunman police killed", "police kill the gunman") == pytest.approx(0.5)
    assert rouge_l("", "x") == 0.0
    assert rouge_l("a b", "c d") == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_rouge_l_matches_full_table_lcs(seed: int) -> None:
    rng = random.Random(seed)
    vocab = ["roof", "shingle", "drip", "edge", "code", "r905", "the", "a", "4812", "ice", "water"]
    for _ in range(100):
        answer = " ".join(rng.choices(vocab, k=rng.randint(0, 25)))
        reference = " ".join(rng.choices(vocab, k=rng.randint(0, 25)))
        assert rouge_l(answer, reference) == pytest.approx(rouge_l_oracle(answer, reference), abs=1e-12)


# ------------------------------------------------------------------------------------------- must-include


def test_normalize_for_match_numbers() -> None:
    assert normalize_for_match("Total $4,812.60") == "total 4812.60"
    assert normalize_for_match("4812.60") == "4812.60"
    assert normalize_for_match("$ 4,812.00") == "4812"
    assert normalize_for_match("per IRC R905.2.8.5") == "per irc r905.2.8.5"
    assert normalize_for_match("section 905.2.10") == "section 905.2.10"
    assert normalize_for_match("items 1,2,3") == "items 1,2,3"  # not thousands groups
    assert normalize_for_match("“Ice–water”\u00a0 shield") == '"ice-water" shield'


def test_must_include_recall_hand_worked() -> None:
    answer = "The estimate totals 4812.60 dollars and omits the ICE and water shield per R905.2.7.1."
    must = ["$4,812.60", "ice and water shield", "R905.2.7.1", "drip edge"]
    assert must_include_recall(answer, must) == pytest.approx(3 / 4)
    assert must_include_missing(answer, must) == ["drip edge"]


def test_must_include_numbers_match_whole_words_substrings() -> None:
    assert must_include_recall("Total 4812.12", ["12"]) == 0.0
    assert must_include_recall("Total 4812", ["481"]) == 0.0
    assert must_include_recall("Total 4,812.60", ["4,812"]) == 0.0  # 4812 is not 4812.60
    assert must_include_recall("Total $4,812.00", ["4812"]) == 1.0
    assert must_include_recall("12 squares", ["12"]) == 1.0
    assert must_include_recall("replace shingles", ["shingle"]) == 1.0  # words match as substrings
    assert must_include_recall("line  items\nadded", ["line items added"]) == 1.0


def test_must_include_not_applicable_and_malformed() -> None:
    assert must_include_recall("anything", None) is None
    assert must_include_recall("anything", []) is None
    with pytest.raises(InputError, match=r"must_include\[1\]"):
        must_include_recall("anything", ["ok", "  "])


# ------------------------------------------------------------------------------------------------ abstain


@pytest.mark.parametrize(
    "answer",
    [
        "I don't know.",
        "I do not know the answer to that.",
        "The provided documents do not mention the roof pitch.",
        "That information is not in the documents.",
        "I cannot find that in the context.",
        "I couldn’t find any reference to that claim.",
        "There is no information about hail damage in the provided documents.",
        "The context doesn't specify the deductible.",
        "Not enough information to answer.",
        "The policy limit is not mentioned in the provided sources.",
        "I'm unable to determine this from the excerpts.",
    ],
)
def test_abstentions_are_detected(answer: str) -> None:
    assert abstained(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "The estimate does not include drip edge.",
        "The code does not require a second layer of underlayment.",
        "Yes: R905.2.8.5 requires drip edge at eaves and gables.",
        "The total is $4,812.60.",
        "",
    ],
)
def test_factual_answers_are_not_abstentions(answer: str) -> None:
    assert not abstained(answer)


# ------------------------------------------------------------------------------------------------ registry


def test_answer_tokens_counts_words() -> None:
    assert answer_tokens("  Replace the\nroof  ") == 3
    assert answer_tokens("") == 0


def test_score_answer_returns_none_when_not_applicable() -> None:
    scores = score_answer("Replace the roof.", reference=None, must_include=None)
    assert set(scores) == set(ANSWER_METRICS)
    assert scores["token_f1"] is None
    assert scores["exact_match"] is None
    assert scores["rouge_l"] is None
    assert scores["must_include_recall"] is None
    assert scores["answer_tokens"] == 3.0
    assert scores["abstained"] == 0.0


def test_score_answer_all_metrics() -> None:
    scores = score_answer("Replace the roof.", reference="replace roof", must_include=["roof", "gutter"])
    assert scores == {
        "token_f1": 1.0,
        "exact_match": 1.0,
        "rouge_l": pytest.approx(0.8),  # tokens: replace the roof vs replace roof -> LCS 2, P 2/3, R 1
        "must_include_recall": 0.5,
        "answer_tokens": 3.0,
        "abstained": 0.0,
    }


def test_score_answer_for_a_failed_generation_is_all_unmeasured() -> None:
    assert score_answer(None, "ref", ["x"]) == dict.fromkeys(ANSWER_METRICS)


def test_score_answer_selected_and_unknown_metrics() -> None:
    assert score_answer("x", "x", metrics=["exact_match"]) == {"exact_match": 1.0}
    with pytest.raises(InputError) as info:
        score_answer("x", "x", metrics=["bleu"])
    for name in ANSWER_METRICS:
        assert name in str(info.value)


def test_spelled_out_counts_match_digits_both_ways() -> None:
    from harness.metrics.answer import must_include_recall

    assert must_include_recall("Use 6 nails per shingle.", ["six"]) == 1.0
    assert must_include_recall("Six nails per shingle.", ["6 nails"]) == 1.0
    assert must_include_recall("Sixteen nails.", ["six"]) == 0.0
    assert must_include_recall("someone said so", ["one"]) == 0.0


@pytest.mark.parametrize(
    ("answer", "needle"),
    [("a 3-inch overlap", "3 in"), ('lap it 3" at least', "3 in"), ("36 inches inside", "36 in"),
     ("19% moisture", "19 percent"), ("19 per cent", "19 percent"), ("remove 2 ft beyond", "2 feet")],
)
def test_units_after_numbers_match_however_written(answer: str, needle: str) -> None:
    from harness.metrics.answer import must_include_recall

    assert must_include_recall(answer, [needle]) == 1.0


def test_unit_normalisation_keeps_the_preposition_in() -> None:
    from harness.metrics.answer import must_include_recall

    assert must_include_recall("applied in 2023 in the valley", ["36 in"]) == 0.0
