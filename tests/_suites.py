"""Eval suites for the tests that run the CLI: one suite on the fixture corpus, and the few ways tests vary it.

:func:`suite` is the mini suite: three retrieval variants and four cases (one whose answer is not in the corpus), three
of them answered by the local tier from the dense and hybrid contexts. A test names only what its suite changes::

    write_suite(path, name="graded", variants=variants("bm25"), grading={"rate": 0.5})
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"

CASES: dict[str, dict[str, Any]] = {
    "marlow-ice": {
        "id": "marlow-ice",
        "question": "How far inside the exterior wall must the ice barrier reach in Marlow County?",
        "reference": "At least 36 inches inside the exterior wall line.",
        "relevant": {"code-r905-1-2-marlow": 3, "code-r905-1-2-model": 1},
        "category": "jurisdiction",
        "must_include": ["36 inches"],
        "generate": True,
    },
    "valleys": {
        "id": "valleys",
        "question": "Does Marlow County require ice barrier in valleys?",
        "reference": "Yes, in every valley, 18 inches each side of the centre line.",
        "relevant": {"code-r905-1-2-marlow": 3},
        "category": "code-section",
        "generate": True,
    },
    "port-ellis": {
        "id": "port-ellis",
        "question": "What does Port Ellis require instead of an ice barrier?",
        "reference": "An enhanced underlayment for wind.",
        "relevant": {"code-r905-1-2-port-ellis": 3},
        "category": "jurisdiction",
    },
    "nowhere": {
        "id": "nowhere",
        "question": "What is the hail-resistance class required for metal roofing in Anchorage?",
        "reference": "Not covered by the corpus.",
        "relevant": {},
        "category": "not-in-corpus",
        "generate": True,
    },
}
"""The mini suite's cases, by id, in suite order."""


def case(case_id: str, **changes: Any) -> dict[str, Any]:
    """One of :data:`CASES`, with ``changes`` to its fields."""
    return {**copy.deepcopy(CASES[case_id]), **changes}


def variants(*names: str) -> list[dict[str, str]]:
    """Retrieval variants named after their retriever (``dense``, ``bm25``, ``hybrid``)."""
    return [{"name": name, "retriever": name} for name in names]


def generation(**changes: Any) -> dict[str, Any]:
    """A ``generation:`` section: two context chunks, 32 tokens, the local tier; ``changes`` replace or add fields."""
    return {"context_chunks": 2, "max_tokens": 32, "tiers": ["local"], **changes}


def suite(**sections: Any) -> dict[str, Any]:
    """The mini suite, with ``sections`` replacing or adding top-level sections; a section given as None is left out."""
    mini: dict[str, Any] = {
        "name": "mini",
        "corpus": str(FIXTURE),
        "chunking": {"max_chars": 600, "overlap": 80},
        "k": 5,
        "metrics": ["recall@5", "precision@5", "hit@5", "mrr", "ndcg@5", "map"],
        "variants": variants("dense", "bm25", "hybrid"),
        "generation": generation(variants=["dense", "hybrid"]),
        "cases": [case(case_id) for case_id in CASES],
    }
    mini.update(sections)
    return {key: value for key, value in mini.items() if value is not None}


def write_suite(path: Path, **sections: Any) -> Path:
    """Write :func:`suite` (with ``sections``) to ``path`` as YAML."""
    path.write_text(yaml.safe_dump(suite(**sections), sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    return path
