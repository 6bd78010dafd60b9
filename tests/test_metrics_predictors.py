"""Cheap quality predictors: cosine against scipy, context support and the combined prediction by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import distance

from harness.errors import InputError
from harness.metrics.predictors import PREDICTOR_METRICS, context_support, embedding_cosine, quality_prediction


def test_embedding_cosine_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, r = rng.normal(size=16), rng.normal(size=16)
        assert embedding_cosine(a, r) == pytest.approx(1.0 - distance.cosine(a, r))
    assert embedding_cosine([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert embedding_cosine([1.0, 0.0], [-3.0, 0.0]) == pytest.approx(-1.0)
    with pytest.raises(InputError, match="differ in length"):
        embedding_cosine([1.0], [1.0, 2.0])
    with pytest.raises(InputError, match="zero"):
        embedding_cosine([0.0, 0.0], [1.0, 2.0])


def test_embedding_cosine_with_the_bundled_embedder_ranks_a_paraphrase_above_an_unrelated_answer() -> None:
    from harness.retrieval.embedders import get_embedder

    reference, close, far = get_embedder().embed(
        ["The ice barrier must reach 36 inches inside the exterior wall.",
         "It has to extend at least 36 inches past the inside of the outer wall.",
         "Replace the kitchen cabinets with the same grade of plywood."]
    )
    assert embedding_cosine(close, reference) > embedding_cosine(far, reference) + 0.2


def test_context_support_by_hand() -> None:
    passages = ["Ice barrier shall extend 24 inches inside the exterior wall.", "Valleys need underlayment."]
    # content words: ice barrier 36 inches inside wall -> found: ice barrier inches inside wall (5 of 6)
    assert context_support("The ice barrier: 36 inches inside the wall.", passages) == pytest.approx(5 / 6)
    assert context_support("the of and", passages) is None  # no content words: nothing to support
    assert context_support("Underlayment in valleys.", []) == 0.0


def test_quality_prediction_by_hand() -> None:
    metrics = {"token_f1": 0.5, "embedding_cosine": -0.2, "must_include_recall": None, "context_support": 1.0}
    assert quality_prediction(metrics, answerable=True) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert quality_prediction({"abstained": 1.0, "token_f1": None}, answerable=False) == 1.0
    assert quality_prediction({"abstained": 0.0}, answerable=False) == 0.0
    assert quality_prediction({"token_f1": None}, answerable=True) is None
    assert quality_prediction({}, answerable=False) is None


def test_the_registry_names_what_the_runner_records() -> None:
    assert set(PREDICTOR_METRICS) == {"embedding_cosine", "context_support"}
