"""The prompt a run sends each tier: built from the question and its retrieved chunks, in the style the tier's hosts
expect (a cloud tier always gets chat), and the chunk ids that prompt carries once fitted to the context budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.config.fleet import Fleet
from harness.config.suite import Suite
from harness.providers.types import GenerationRequest
from harness.retrieval.base import ScoredChunk

if TYPE_CHECKING:
    from harness.localfleet.prompt import PromptStyle


def _prompt_styles(fleet: Fleet | None, fleets: dict[str, Fleet] | None) -> dict[str, PromptStyle]:
    """Tier name -> the prompt style its hosts' endpoint expects; a tier not listed (a cloud tier) gets chat."""
    from harness.localfleet.prompt import fleet_prompt_style

    given = dict(fleets) if fleets is not None else ({"local": fleet} if fleet is not None else {})
    return {name: fleet_prompt_style(served) for name, served in given.items()}


def prompt_builder(suite: Suite, fleet: Fleet | None, fleets: dict[str, Fleet] | None = None) -> Any:
    """(question, hits, tier name) -> request. ``fleets`` maps each fleet tier to its fleet (default: ``local``)."""
    from harness.localfleet.prompt import build_request

    generation = suite.generation
    if generation is None:
        return None
    styles = _prompt_styles(fleet, fleets)

    def build(question: str, hits: Sequence[ScoredChunk], tier: str) -> GenerationRequest:
        # A cloud tier always gets the chat prompt; a fleet tier gets what its hosts' endpoint expects.
        style = styles.get(tier, "chat")
        passages = list(hits[: generation.context_chunks])  # chunks, so each passage is labelled with its doc id
        return build_request(
            question,
            passages,
            style=style,
            max_tokens=generation.max_tokens,
            context_tokens=generation.max_context_tokens,
            temperature=generation.temperature,
            seed=generation.seed,
        )

    return build


def prompt_context(suite: Suite, fleet: Fleet | None, fleets: dict[str, Fleet] | None = None) -> Any:
    """(question, hits, tier) -> the chunk ids the tier's prompt carries, as :func:`prompt_builder` fits them."""
    from harness.localfleet.prompt import passages_in_prompt

    generation = suite.generation
    if generation is None:
        return None
    styles = _prompt_styles(fleet, fleets)

    def context(question: str, hits: Sequence[ScoredChunk], tier: str) -> list[str]:
        offered = list(hits[: generation.context_chunks])
        shown = passages_in_prompt(
            question,
            offered,
            style=styles.get(tier, "chat"),
            max_tokens=generation.max_tokens,
            context_tokens=generation.max_context_tokens,
        )
        return [hit.chunk_id for hit in offered[:shown]]

    return context
