"""Cheap predictors of an answer's graded quality that need more than the answer text: the reference's embedding and
the retrieved context. Pure functions; the runner supplies the vectors and passages.

* ``embedding_cosine``: cosine similarity of the answer's and the reference's embeddings (suite's embedder).
* ``context_support``: share of the answer's content words that occur in the retrieved passages — a cheap sign
  the answer was drawn from the context rather than made up.

Together with the text metrics in :mod:`harness.metrics.answer` they feed :func:`quality_prediction`, the single
number per answer that prediction-powered inference corrects with the sampled grades.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.errors import InputError
from harness.metrics.answer import normalize_answer

__all__ = ["PREDICTOR_METRICS", "PredictorMetric", "context_support", "embedding_cosine", "quality_prediction"]

# Function words carry no support either way; without this list every answer is "supported" by any passage.
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for", "from", "has",
    "have", "if", "in", "into", "is", "it", "its", "may", "must", "no", "not", "of", "on", "or", "per", "shall",
    "should", "so", "such", "than", "that", "the", "their", "then", "there", "these", "this", "to", "was", "were",
    "will", "with", "within", "without", "you", "your", "i", "we", "they", "he", "she", "them", "our",
})
_WORD = re.compile(r"[a-z0-9]+")


def embedding_cosine(answer_vector: Sequence[float] | np.ndarray, reference_vector: Sequence[float] | np.ndarray
                     ) -> float:
    """cos(a, r) = a·r / (|a| |r|), in [-1, 1]; the suite's embedders return unit vectors, but this does not assume it.

    Raises:
        InputError: vectors of different length, or a zero vector (no direction to compare).
    """
    a = np.asarray(answer_vector, dtype=np.float64).ravel()
    r = np.asarray(reference_vector, dtype=np.float64).ravel()
    if a.shape != r.shape:
        raise InputError(f"vectors differ in length ({a.size} and {r.size})", hint="embed both with one embedder")
    norms = float(np.linalg.norm(a) * np.linalg.norm(r))
    if norms == 0.0 or math.isnan(norms):
        raise InputError("a zero or NaN embedding has no direction", hint="check the embedder's output")
    return float(np.clip(a @ r / norms, -1.0, 1.0))


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(normalize_answer(text)) if w not in _STOPWORDS]


def context_support(answer: str, passages: Sequence[str]) -> float | None:
    """|answer content words found in the passages| / |answer content words|; None when the answer has none.

    Words are SQuAD-normalised (lowercase, no punctuation or articles) and function words are left out, so the
    figure says how much of what the answer asserts the retrieved context contains.
    """
    words = _content_words(answer)
    if not words:
        return None
    context = set()
    for passage in passages:
        context.update(_content_words(passage))
    return sum(word in context for word in words) / len(words)


@dataclass(frozen=True)
class PredictorMetric:
    needs: str
    description: str


# The only list of the predictor metrics the runner records beside the answer metrics.
PREDICTOR_METRICS: dict[str, PredictorMetric] = {
    "embedding_cosine": PredictorMetric("reference", "cosine of the answer's and the reference's embeddings"),
    "context_support": PredictorMetric("", "share of the answer's content words found in the retrieved passages"),
}

#: Metrics averaged into the quality prediction of an answerable case (each in [0, 1] or clipped to it).
_ANSWERABLE_SIGNALS = ("token_f1", "embedding_cosine", "must_include_recall", "context_support")


def quality_prediction(metrics: Mapping[str, float | None], *, answerable: bool) -> float | None:
    """One cheap prediction in [0, 1] of the graded score, from an answer's recorded metrics.

    Answerable case: the mean of the measured signals among token F1, embedding cosine (clipped at 0), must-include
    recall and context support. Not-in-corpus case: 1 when the answer declined, else 0. None when nothing was
    measured. The scale need not match the grades: PPI++ weighs the prediction by how well it tracks them and
    removes its bias with the graded sample.
    """
    if not answerable:
        declined = metrics.get("abstained")
        return None if declined is None or math.isnan(declined) else float(declined)
    values = [metrics.get(name) for name in _ANSWERABLE_SIGNALS]
    present = [min(1.0, max(0.0, float(v))) for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None
