"""RAG prompts: completion style for base models, chat style for instruction-tuned ones.

The bundled Gemma 3 270M is a *base* model: it continues text, it does not follow instructions. So its prompt is a
document whose natural continuation is the answer: a short instruction line, two worked examples (context, question,
one-line answer that quotes the figure or section and names the document), then the real context and question ending in
``Answer:``. Stop sequences end the answer at the line break where the examples' answers end, so the model does not
go on to invent the next question.

The examples come first and never change, so a llama.cpp server keeps their tokens in its context between calls and
only evaluates the part after them. They use a claim number and a code section that are *not* in the corpus, so they
cannot hand the model an answer it should have found in the context.

Instruction models (Ollama chat models, Claude) get the chat style: the instructions as the system message and the
context plus question as the user message, with no examples and no stop sequences.

Which style a host gets follows its fleet entry: ``endpoint: completion`` hosts get the completion style
(:func:`style_for_endpoint`); the cloud tier always gets the chat style.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from harness.errors import InputError
from harness.money.tokens import estimate_tokens
from harness.providers.types import GenerationRequest

if TYPE_CHECKING:
    from harness.config.fleet import Fleet

PromptStyle = Literal["completion", "chat"]

#: Tokens kept free besides the answer: the estimate's error on the frame, and the BOS token.
SAFETY_TOKENS = 32

#: Ends an answer. The prompt shows every answer as one line (prose in the context is unwrapped for the same reason),
#: so the first line break ends it; left alone, the model goes on to write another passage or question. The other two
#: catch a run-on that starts the next example on the same line.
COMPLETION_STOP: tuple[str, ...] = ("\n", "Question:", "Context:")

COMPLETION_HEADER = """\
Answer each question from its context in one sentence. Quote the figure or code section that answers it and cite the \
passage number. If the context does not answer the question, say so.

Context:
[1] est-23-0042-carrier (Summary): Line item total $12,480.00. Overhead (10%) $1,248.00. Profit (10%) $1,248.00. \
Replacement cost value $14,976.00.
Question: How much overhead does the carrier estimate include?
Answer: $1,248.00 of overhead, 10% of the $12,480.00 line item total [1].

Context:
[1] code-r806-2-model (R806.2 Minimum vent area): The minimum net free ventilating area shall be 1/150 of the area \
of the vented space.
[2] code-r806-3-model (R806.3 Vent clearance): Where eave vents are installed, insulation shall not block the free \
flow of air. A minimum 1-inch space shall be provided between the insulation and the roof sheathing at the vent.
Question: How much air space must be left between attic insulation and the roof sheathing at an eave vent?
Answer: At least 1 inch, per R806.3 [2].

"""

CHAT_SYSTEM = (
    "You answer questions about insurance restoration claims: estimates, building codes and supplement arguments. "
    "Answer only from the context you are given, in one or two sentences. Quote the figure or code section that "
    "answers the question and name the document id it comes from. If the context does not answer the question, "
    "say that it does not."
)


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk as the prompt shows it: ``[n] source: text``."""

    text: str
    source: str = ""


def as_passage(item: object) -> Passage:
    """Accept a Passage, a plain string, or any chunk object with ``text`` (and optionally ``doc_id``/``section``).

    Corpus chunks and retrieved ``ScoredChunk`` objects carry their heading path at the top of ``text``, so their
    label is the document id alone.
    """
    if isinstance(item, Passage):
        return item
    if isinstance(item, str):
        return Passage(item)
    text = getattr(item, "text", None)
    if not isinstance(text, str):
        raise InputError(f"cannot use {type(item).__name__} as a context passage: it has no text",
                         hint="pass strings, Passage objects or chunks with a .text attribute")
    doc_id = str(getattr(item, "doc_id", "") or "")
    section = str(getattr(item, "section", "") or "")
    source = f"{doc_id} ({section})" if doc_id and section else doc_id or section
    return Passage(text, source)


_LINE_STARTS = ("|", "#", "- ", "* ", "+ ")


def _keeps_own_line(line: str) -> bool:
    head = line.split(" ", 1)[0]
    return line.startswith(_LINE_STARTS) or (head[:-1].isdigit() and head.endswith((".", ")")))


def _flatten(text: str) -> str:
    """Unwrap hard-wrapped prose into one line per paragraph; keep table rows, headings and list items apart.

    A base model copies its answer out of the context; with the corpus's hard line breaks it copies a line break into
    the middle of the answer. Bold markers are dropped for the same reason. Blank lines go, so passages stay visibly
    separate.
    """
    lines: list[str] = []
    for raw in text.replace("**", "").splitlines():
        line = raw.strip()
        if not line:
            lines.append("")
        elif lines and lines[-1] and not _keeps_own_line(line) and not lines[-1].startswith(("|", "#")):
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return "\n".join(line for line in lines if line)


def _render_passage(index: int, passage: Passage) -> str:
    text = _flatten(passage.text)
    label = f"[{index}] {passage.source}: " if passage.source else f"[{index}] "
    return label + text


def _truncate(index: int, passage: Passage, max_tokens: int) -> Passage | None:
    """The longest prefix of the passage (cut at a word boundary, marked with an ellipsis) that fits ``max_tokens``."""
    text = _flatten(passage.text)

    def fits(n_chars: int) -> bool:
        return estimate_tokens(_render_passage(index, Passage(text[:n_chars] + " …", passage.source))) <= max_tokens

    if not fits(1):
        return None
    low, high = 1, len(text)  # the estimate only grows with the prefix, so bisect on its length
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    cut = text[:low]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > low // 2:  # cut at a word boundary unless that loses too much
        cut = cut[:space]
    return Passage(cut.rstrip() + " …", passage.source)


def fit_passages(passages: Iterable[object], budget_tokens: int, *, min_tail_tokens: int = 48) -> list[Passage]:
    """Keep passages in rank order while they fit ``budget_tokens``; cut the first one that does not fit.

    The cut passage is kept only if at least ``min_tail_tokens`` of it fit (a few words of a table help nobody), except
    the top passage, which is always kept in part: an answer from part of the best chunk beats an answer from none.

    Returns:
        The passages to show, their rendered size within the budget.
    """
    kept: list[Passage] = []
    used = 0
    for rank, item in enumerate(passages):
        passage = as_passage(item)
        cost = estimate_tokens(_render_passage(rank + 1, passage)) + 1  # +1: the newline between passages
        if used + cost <= budget_tokens:
            kept.append(passage)
            used += cost
            continue
        room = budget_tokens - used - 1
        if room >= min_tail_tokens or (rank == 0 and room > 0):
            cut = _truncate(rank + 1, passage, room)
            if cut is not None:
                kept.append(cut)
        break
    return kept


def shown_texts(passages: Iterable[object], budget_tokens: int) -> list[str]:
    """The passages' text as a prompt with this context budget shows it: fitted, cut and unwrapped, without labels.

    Each text's estimate is at most its share of ``budget_tokens``, so the texts together stay within the budget.
    """
    return [_flatten(passage.text) for passage in fit_passages(passages, budget_tokens)]


def render_context(passages: Sequence[Passage]) -> str:
    return "\n".join(_render_passage(i + 1, p) for i, p in enumerate(passages))


def _completion_prompt(question: str, context: str) -> str:
    return f"{COMPLETION_HEADER}Context:\n{context}\nQuestion: {question}\nAnswer:"


def _chat_prompt(question: str, context: str) -> str:
    return f"Context:\n{context}\n\nQuestion: {question}"


def style_for_endpoint(endpoint: str) -> PromptStyle:
    """The prompt style for a fleet host's ``endpoint`` (``completion`` hosts serve base models)."""
    return "completion" if endpoint == "completion" else "chat"


def fleet_prompt_style(fleet: Fleet, source: Path | str | None = None) -> PromptStyle:
    """The one prompt style every host of the fleet takes: one request goes to every host of a race or hedge.

    Raises:
        InputError: the fleet mixes completion and chat hosts; the message names the hosts of each style.
    """
    by_style: dict[PromptStyle, list[str]] = {}
    for host in fleet.hosts:
        by_style.setdefault(style_for_endpoint(host.endpoint), []).append(host.name)
    if len(by_style) > 1:
        detail = "; ".join(f"{style}: {', '.join(names)}" for style, names in sorted(by_style.items()))
        raise InputError(
            f"{source or 'fleet'}: hosts: the fleet mixes completion and chat endpoints ({detail}); "
            "one request cannot be put in both prompt styles",
            hint="use one `endpoint:` for every host, or put the completion hosts and the chat hosts in separate "
            "fleet files",
        )
    (style,) = by_style
    return style


def build_request(
    question: str,
    passages: Iterable[object],
    *,
    style: PromptStyle = "chat",
    max_tokens: int = 96,
    n_ctx: int = 2048,
    context_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    stream: bool = False,
) -> GenerationRequest:
    """Build the generation request for one RAG question.

    Args:
        question: the user's question.
        passages: retrieved chunks, best first (strings, :class:`Passage`, or chunk objects with ``text``).
        style: ``completion`` for base models (few-shot document + stop sequences), ``chat`` for instruction models.
        max_tokens: answer length cap.
        n_ctx: the model's context window; the prompt plus ``max_tokens`` is kept inside it.
        context_tokens: a tighter cap on the passages alone, e.g. to compare context sizes.
        temperature: sampling temperature; ``None`` sends none, except that the completion style defaults to 0 (a
            base model sampled warm wanders off the answer).
        seed: sampling seed, when the server supports one.
        stream: ask for a streamed answer (gives time to first token).

    Raises:
        InputError: the question alone does not fit the context window.
    """
    question = " ".join(question.split())
    budget = _context_budget(question, style, max_tokens, n_ctx, context_tokens)
    if style == "completion":
        system = None
        stop = COMPLETION_STOP
        if temperature is None:
            temperature = 0.0
    else:
        system = CHAT_SYSTEM
        stop = ()
    context = render_context(fit_passages(passages, budget))
    prompt = _completion_prompt(question, context) if style == "completion" else _chat_prompt(question, context)
    return GenerationRequest(prompt=prompt, system=system, max_tokens=max_tokens, temperature=temperature, seed=seed,
                             stop=stop, num_ctx=n_ctx, stream=stream)


def _context_budget(question: str, style: PromptStyle, max_tokens: int, n_ctx: int, context_tokens: int | None) -> int:
    """Tokens left for the passages once the frame, the system prompt and the answer are counted."""
    question = " ".join(question.split())
    if not question:
        raise InputError("empty question", hint="every case needs a question")
    if style == "completion":
        overhead = estimate_tokens(_completion_prompt(question, ""))
    elif style == "chat":
        overhead = estimate_tokens(_chat_prompt(question, "")) + estimate_tokens(CHAT_SYSTEM)
    else:
        raise InputError(f"unknown prompt style {style!r}", hint="use 'completion' or 'chat'")
    overhead += SAFETY_TOKENS
    budget = n_ctx - max_tokens - overhead
    if context_tokens is not None:
        budget = min(budget, context_tokens)
    if budget <= 0:
        raise InputError(
            f"the question and prompt frame (~{overhead} tokens) plus max_tokens={max_tokens} exceed n_ctx={n_ctx}",
            hint="shorten the question, lower max_tokens, or raise the context window",
        )
    return budget


def passages_in_prompt(
    question: str,
    passages: Sequence[object],
    *,
    style: PromptStyle = "chat",
    max_tokens: int = 96,
    n_ctx: int = 2048,
    context_tokens: int | None = None,
) -> int:
    """How many of ``passages`` (a prefix, in rank order) :func:`build_request` puts in the prompt, in whole or cut.

    The run records their chunk ids with the answer, so a failure can be put on retrieval (the relevant document was
    never shown) or on generation (it was shown and not used).
    """
    return len(fit_passages(passages, _context_budget(question, style, max_tokens, n_ctx, context_tokens)))
