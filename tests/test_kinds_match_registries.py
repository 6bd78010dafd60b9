"""The config files' kinds are the registries' keys.

config/ sits below retrieval/ and providers/ (and must load without chromadb or the SDKs), so its ``Literal`` types
cannot be built from the registries; this test is what keeps each pair one list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest

from harness.config.fleet import HostKind, load_fleet
from harness.config.grading import JudgeKind
from harness.config.suite import EmbedderKind, RetrieverKind, load_suite
from harness.errors import ConfigError
from harness.providers.base import PROVIDERS
from harness.retrieval.build import RETRIEVERS
from harness.retrieval.embedders import EMBEDDERS


@pytest.mark.parametrize(
    ("kind", "registry"),
    [(RetrieverKind, RETRIEVERS), (EmbedderKind, EMBEDDERS), (HostKind, PROVIDERS)],
    ids=["retriever", "embedder", "host"],
)
def test_each_config_kind_is_its_registry(kind: Any, registry: dict[str, Any]) -> None:
    assert sorted(get_args(kind)) == sorted(registry)


def test_a_second_judges_kinds_are_the_providers_and_anthropic_is_claudes() -> None:
    assert sorted(set(get_args(JudgeKind)) - {"anthropic"}) == sorted(PROVIDERS)


def test_an_unknown_kind_lists_the_registry(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("variants:\n  - {name: v, retriever: splade}\ncases:\n  - {id: q, question: 'q', category: c}\n")
    with pytest.raises(ConfigError) as err:
        load_suite(suite)
    assert err.value.line == 2 and all(f"'{name}'" in str(err.value) for name in RETRIEVERS)
    fleet = tmp_path / "f.yaml"
    fleet.write_text("hosts:\n  - {name: a, url: 'http://127.0.0.1:1', model: m, kind: vllm}\n")
    with pytest.raises(ConfigError) as err:
        load_fleet(fleet)
    assert all(f"'{name}'" in str(err.value) for name in PROVIDERS)
