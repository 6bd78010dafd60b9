"""The grading rubric: one registry of criteria, the template it is rendered into, and the grader's prompts.

The criteria live in ``CRITERIA`` only (:mod:`harness.config.criteria`): the rubric text's scales, the output schema
(``RubricOutput``) and the scoring step are all built from it, so a criterion cannot be added in one place and
forgotten in another.
The prose around them is the template ``rubric.md`` beside this module.

The prompts are blind: they carry the question, the reference, the retrieved passages and the answer, never the
tier, host or model that wrote the answer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from harness.config.criteria import CRITERIA, SCALE_MAX

RATIONALE_MAX_CHARS = 600

Score = Literal[0, 1, 2, 3]


def _output_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (Score, Field(description=f"{c.asks} 0..{SCALE_MAX}, see the rubric anchors"))
        for name, c in CRITERIA.items()
    }
    fields["confident_but_wrong"] = (
        bool,
        Field(description="an assured statement that contradicts the reference or the passages"),
    )
    fields["rationale"] = (str, Field(description="one or two sentences naming the decisive point"))
    return create_model("RubricOutput", __config__=ConfigDict(extra="forbid"), **fields)


RubricOutput: type[BaseModel] = _output_model()
"""The grader's structured output, parsed with pydantic (also the JSON schema sent to the API)."""


@cache
def template() -> str:
    return resources.files("harness.grading").joinpath("rubric.md").read_text(encoding="utf-8")


@cache
def system_prompt() -> str:
    """The rubric with its criteria rendered from the registry. Identical for every call, so it can be cached."""
    blocks = []
    for c in CRITERIA.values():
        scale = "\n".join(f"- {score}: {text}" for score, text in enumerate(c.anchors))
        blocks.append(f"### {c.name}\n\n{c.asks}\n\n{scale}")
    return template().replace("{criteria}", "\n\n".join(blocks))


class GradeInput(BaseModel):
    """What the grader may see of one answer. No tier, host or model: the grade is blind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str
    reference: str
    context: tuple[str, ...]
    answer: str


def user_prompt(item: GradeInput) -> str:
    """The per-answer message. Untrusted text is HTML-escaped so it cannot close our tags or open new ones."""
    passages = "\n".join(f'<passage n="{i}">{_esc(text)}</passage>' for i, text in enumerate(item.context, 1))
    return (
        f"<question>{_esc(item.question)}</question>\n"
        f"<reference>{_esc(item.reference)}</reference>\n"
        f"<passages>\n{passages}\n</passages>\n"
        f"<answer>{_esc(item.answer)}</answer>\n\n"
        "Grade the answer with the rubric."
    )


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def grade_inputs(question: str, reference: str, context: Sequence[str], answer: str) -> GradeInput:
    return GradeInput(question=question, reference=reference, context=tuple(context), answer=answer)
