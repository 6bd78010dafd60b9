"""The bench's requests: a suite's generation cases, retrieved and prompted exactly as a run builds them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config.fleet import Fleet
from harness.errors import InputError
from harness.providers.types import GenerationRequest


@dataclass(frozen=True)
class PromptSet:
    """One local and one cloud request per generation case (same question and context, each tier's prompt style)."""

    suite: str
    variant: str
    case_ids: tuple[str, ...]
    local: tuple[GenerationRequest, ...]
    cloud: tuple[GenerationRequest, ...]


def suite_prompts(
    suite_path: Path, fleet: Fleet, *, store_dir: Path, chroma_url: str | None = None, limit: int | None = None
) -> PromptSet:
    """Build the requests of ``suite_path``'s generation cases with its first generating variant's retriever.

    Only that variant's index is brought up to date (incrementally, as ``harness ingest`` does).

    Raises:
        InputError: the suite has no generation section or no case with ``generate: true``.
    """
    from harness.run.prompts import prompt_builder
    from harness.run.session import load_suite_and_corpus, prepare_retrieval

    suite, corpus = load_suite_and_corpus(suite_path)
    cases = [case for case in suite.cases if case.generate]
    variants = suite.generating_variants()
    if suite.generation is None or not cases or not variants:
        raise InputError(
            f"{suite_path}: no generation cases to build prompts from",
            hint="pass --prompts with a suite that has a `generation:` section and cases with `generate: true` "
            "(suites/nightly.yaml has 40)",
        )
    variant = variants[0]
    one_variant = suite.model_copy(update={"variants": [variant]})
    setup = prepare_retrieval(one_variant, corpus, store_dir, chroma_url)
    retriever = setup.retrievers[variant.name]
    build = prompt_builder(suite, fleet)
    chosen = cases[:limit] if limit else cases
    local: list[GenerationRequest] = []
    cloud: list[GenerationRequest] = []
    for case in chosen:
        hits = retriever.search(case.question, suite.k * 3)  # as the runner retrieves
        local.append(build(case.question, hits, "local"))
        cloud.append(build(case.question, hits, "cloud"))
    return PromptSet(suite.name, variant.name, tuple(c.id for c in chosen), tuple(local), tuple(cloud))
