"""The RAG prompt builder: completion style for base models, chat style for instruction models, context budgets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.errors import InputError
from harness.localfleet.prompt import (
    CHAT_SYSTEM,
    COMPLETION_HEADER,
    COMPLETION_STOP,
    Passage,
    as_passage,
    build_request,
    estimate_tokens,
    fit_passages,
    render_context,
    style_for_endpoint,
)

ICE = Passage(
    "The ice barrier shall extend from the lowest edges of all roof surfaces to a point not less than\n"
    "**36 inches inside the exterior wall line** of the building, measured horizontally.",
    "code-r905-1-2-marlow (R905.1.2 Ice barriers)",
)
TABLE = Passage(
    "## Summary\n\n| Summary | Amount |\n|---|---:|\n| Line item total | $21,897.30 |\n| Deductible | ($2,500.00) |",
    "est-24-0117-contractor (Summary)",
)


def test_completion_prompt_is_a_few_shot_document_ending_in_answer() -> None:
    request = build_request("How far must the ice barrier extend?", [ICE, TABLE], style="completion")
    assert request.prompt.startswith(COMPLETION_HEADER)
    assert request.prompt.endswith("\nQuestion: How far must the ice barrier extend?\nAnswer:")
    assert request.system is None
    # Every worked example's answer is followed by a line break; the stop set must end the real answer there.
    assert "\n" in COMPLETION_STOP and request.stop == COMPLETION_STOP
    for marker in ("Question:", "Context:"):
        assert marker in request.stop
    assert request.temperature == 0.0  # a base model is decoded greedily unless told otherwise
    assert COMPLETION_HEADER.count("\nAnswer: ") == 2


def test_examples_answer_in_one_line_so_the_newline_stop_ends_an_answer() -> None:
    for block in COMPLETION_HEADER.split("\n\n")[1:]:
        if not block.strip():
            continue
        answer_lines = [line for line in block.splitlines() if line.startswith("Answer:")]
        assert len(answer_lines) == 1
        assert block.splitlines()[-1] == answer_lines[0]  # nothing follows the answer but the blank line


def test_context_passages_are_numbered_unwrapped_and_labelled() -> None:
    request = build_request("q?", [ICE, TABLE], style="completion")
    context = request.prompt[len(COMPLETION_HEADER):]
    assert "[1] code-r905-1-2-marlow (R905.1.2 Ice barriers): The ice barrier shall extend" in context
    # hard-wrapped prose becomes one line and bold markers go, so a copied answer has no line break in it
    assert "not less than 36 inches inside the exterior wall line of the building" in context
    assert "**" not in context
    # table rows keep their own lines, blank lines are dropped
    assert "[2] est-24-0117-contractor (Summary): ## Summary\n| Summary | Amount |\n|---|---:|\n" in context
    assert "\n\n" not in context.split("Context:\n", 1)[1]


def test_chat_style_puts_instructions_in_the_system_message() -> None:
    request = build_request("How far must the ice barrier extend?", [ICE], style="chat", max_tokens=64)
    assert request.system == CHAT_SYSTEM
    assert request.stop == ()
    assert request.temperature is None  # not sent: some cloud models reject sampling parameters
    assert request.prompt == f"Context:\n{render_context([ICE])}\n\nQuestion: How far must the ice barrier extend?"
    assert COMPLETION_HEADER not in request.prompt
    assert request.max_tokens == 64 and request.num_ctx == 2048


def test_style_follows_the_host_endpoint() -> None:
    assert style_for_endpoint("completion") == "completion"
    assert style_for_endpoint("chat") == "chat"


def test_context_is_trimmed_to_the_budget_in_rank_order() -> None:
    passages = [Passage(f"passage {i} " + "word " * 100, f"doc-{i}") for i in range(10)]
    one = estimate_tokens(render_context(passages[:1])) + 1
    kept = fit_passages(passages, budget_tokens=3 * one + 10)
    assert [p.source for p in kept] == ["doc-0", "doc-1", "doc-2"]  # the fourth would need 48+ tokens of room
    assert estimate_tokens(render_context(kept)) <= 3 * one + 10
    # enough room for part of the fourth: it is cut at a word boundary and marked
    kept = fit_passages(passages, budget_tokens=3 * one + 60)
    assert [p.source for p in kept] == ["doc-0", "doc-1", "doc-2", "doc-3"]
    assert kept[3].text.endswith("word …")
    assert estimate_tokens(render_context(kept)) + len(kept) <= 3 * one + 60


def test_the_top_passage_is_always_kept_in_part() -> None:
    big = Passage("alpha " * 2000, "doc-big")
    kept = fit_passages([big, ICE], budget_tokens=30)
    assert len(kept) == 1 and kept[0].source == "doc-big"
    assert kept[0].text.endswith(" …") and 0 < len(kept[0].text) < len(big.text)
    assert estimate_tokens(render_context(kept)) <= 30


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_whole_request_stays_inside_the_context_window(style: str) -> None:
    passages = [Passage("| 1 | RFG 240S | shingles | 32.67 | SQ | 284.62 | 9,298.54 |\n" * 80, f"est-{i}")
                for i in range(6)]
    request = build_request("What does line 2 cost?", passages, style=style, max_tokens=96, n_ctx=1024)  # type: ignore[arg-type]
    used = estimate_tokens(request.prompt) + estimate_tokens(request.system or "") + request.max_tokens
    assert used <= 1024
    assert "[1] est-0:" in request.prompt


def test_context_tokens_caps_the_passages_below_the_window() -> None:
    passages = [Passage("word " * 300, f"doc-{i}") for i in range(5)]

    def context_of(prompt: str) -> str:
        return prompt[len(COMPLETION_HEADER) + len("Context:\n"):].split("\nQuestion:")[0]

    wide = context_of(build_request("q?", passages, style="completion", n_ctx=8192).prompt)
    narrow = context_of(build_request("q?", passages, style="completion", n_ctx=8192, context_tokens=200).prompt)
    assert wide.count("[") == 5
    assert 1 <= narrow.count("[") < 5
    assert estimate_tokens(narrow) <= 200


def test_a_question_that_cannot_fit_is_an_input_error() -> None:
    with pytest.raises(InputError) as info:
        build_request("why " * 3000, [ICE], style="completion", n_ctx=2048)
    assert "n_ctx=2048" in info.value.message and info.value.hint


def test_unknown_style_and_empty_question_are_input_errors() -> None:
    with pytest.raises(InputError):
        build_request("q?", [ICE], style="haiku")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        build_request("   ", [ICE])


def test_estimate_counts_digits_and_symbols_as_tokens() -> None:
    # Gemma splits numbers into single digits: a table of figures costs far more than its length in prose suggests.
    assert estimate_tokens("1234567890") >= 10
    assert estimate_tokens("| 9,298.54 |") >= 9
    assert estimate_tokens("") == 0
    text = "The ice barrier shall extend 36 inches."
    assert all(estimate_tokens(text[:i]) <= estimate_tokens(text[: i + 1]) for i in range(len(text)))


def test_chunk_objects_become_labelled_passages() -> None:
    @dataclass
    class Chunk:
        text: str
        doc_id: str
        section: str

    chunk = Chunk("body", "code-r905-2-2-model", "R905.2.2")
    assert as_passage(chunk) == Passage("body", "code-r905-2-2-model (R905.2.2)")
    assert as_passage("plain") == Passage("plain")
    with pytest.raises(InputError):
        as_passage(42)
