"""Hostile and careless suite and fleet files: every one is an input error naming its line, found before any model."""

from __future__ import annotations

import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _wait import GENEROUS_S
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config.fleet import load_fleet
from harness.config.suite import load_suite
from harness.config.yaml_positions import MAX_YAML_BYTES
from harness.errors import ConfigError, InputError

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"

VALID = """\
name: mini
corpus: mini
k: 5
metrics: [recall@5, ndcg@5]
variants:
  - {name: dense, retriever: dense}
  - {name: bm25, retriever: bm25}
cases:
  - id: q1
    question: What width must the ice barrier be?
    reference: 36 inches
    relevant: {doc-a: 3, doc-b: 1}
    category: code-section
  - id: q2
    question: Not covered anywhere?
    category: not-in-corpus
"""

# Nine levels of ten aliases each: 10**9 nodes once expanded, from a few hundred bytes.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
) + "name: mini\ncases: *i\n"


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_alias_bomb_is_refused_quickly_and_small(tmp_path: Path) -> None:
    path = write(tmp_path, ALIAS_BOMB)
    assert path.stat().st_size < 500
    tracemalloc.start()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The 291-byte original grew to 4.6 GB and never finished: a generous timeout tells the two apart.
            refused = pool.submit(_load_error, path).result(timeout=GENEROUS_S)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(refused, ConfigError) and "aliases expand this document past" in str(refused), refused
    assert peak < 200 * 2**20, peak
    assert f"{path}:" in str(refused) and "&name" in refused.hint


def _load_error(path: Path) -> Exception | None:
    try:
        load_suite(path)
    except Exception as exc:  # noqa: BLE001 -- handed back to the test to check
        return exc
    return None


def test_a_self_referring_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "tags: &loop [a, *loop]\n")
    with pytest.raises(ConfigError, match="refers to the node that contains it") as err:
        load_suite(path)
    assert err.value.line == 17


def test_modest_aliases_still_load(tmp_path: Path) -> None:
    text = VALID.replace("  - {name: dense, retriever: dense}", "  - &dense {name: dense, retriever: dense}")
    suite = load_suite(write(tmp_path, text))
    assert [v.name for v in suite.variants] == ["dense", "bm25"]


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "description: " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_suite(path)


def test_deep_nesting_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        load_suite(path)


def test_non_utf8_suite_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_bytes(VALID.replace("Not covered anywhere?", "Caf\xe9 covered?").encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8") as err:
        load_suite(path)
    assert err.value.line == 15 and f"{path}:15:" in str(err.value)


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", "..", "a.b", "x" * 101])
def test_suite_names_must_be_identifiers(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, VALID.replace("name: mini", f"name: '{name}'"))
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert err.value.line == 1 and err.value.field == "name"


def test_a_file_stem_that_is_not_an_identifier_needs_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("name: mini\n", ""), name="my suite.yaml")
    with pytest.raises(ConfigError, match="cannot name the run directory"):
        load_suite(path)


def test_a_metric_listed_twice_names_its_line(tmp_path: Path) -> None:
    text = VALID.replace("metrics: [recall@5, ndcg@5]", "metrics:\n  - recall@5\n  - ndcg@5\n  - recall@5")
    with pytest.raises(ConfigError, match="listed twice \\(first at line 5\\)") as err:
        load_suite(write(tmp_path, text))
    assert err.value.line == 7 and err.value.field == "metrics[2]"


def test_a_cutoff_deeper_than_k_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("k: 5", "k: 3").replace("[recall@5, ndcg@5]", "[recall@50, ndcg]")
    with pytest.raises(ConfigError, match="deeper than the retrieval depth k: 3") as err:
        load_suite(write(tmp_path, text))
    assert err.value.line == 4 and "raise `k:`" in err.value.hint


@pytest.mark.parametrize("value", ["1e309", ".inf", ".nan", "-.inf"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    suite = VALID.replace("cases:", f"generation: {{temperature: {value}}}\ncases:")
    with pytest.raises(ConfigError, match="finite") as err:
        load_suite(write(tmp_path, suite))
    assert err.value.line == 8
    fleet = write(tmp_path, f"timeout_s: {value}\nhosts:\n  - {{name: a, url: 'http://127.0.0.1:1', model: m}}\n",
                  name="fleet.yaml")
    with pytest.raises(ConfigError, match="finite") as err:
        load_fleet(fleet)
    assert err.value.line == 1 and err.value.field == "timeout_s"


def test_a_missing_corpus_names_the_corpus_line(tmp_path: Path) -> None:
    from harness.run.session import load_suite_and_corpus

    path = write(tmp_path, VALID.replace("corpus: mini", "corpus: no-such-corpus"))
    with pytest.raises(ConfigError, match="not found") as err:
        load_suite_and_corpus(path)
    assert err.value.line == 2 and err.value.field == "corpus"


def test_a_corpus_that_is_a_file_says_so(tmp_path: Path) -> None:
    from harness.run.session import load_suite_and_corpus

    (tmp_path / "notes.md").write_text("hello", encoding="utf-8")
    path = write(tmp_path, VALID.replace("corpus: mini", "corpus: ./notes.md"))
    with pytest.raises(ConfigError, match="which is a file, not a directory") as err:
        load_suite_and_corpus(path)
    assert err.value.line == 2


# --------------------------------------------------------------------------------------------------- fuzzing

_PIECES = [":", "-", " ", "\n", "  ", "[", "]", "{", "}", "&a ", "*a", "!!python/object:os.system ", "'", '"', "#",
           "@", "\t", "\x00", "\ufeff", "~", "1e309", ".nan", "? ", "<<: ", "|", ">", "%YAML 1.2\n", "---\n", "\\"]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.sampled_from(_PIECES), st.text(max_size=4)))
        end = min(len(text), at + draw(st.integers(0, 12)))
        if op == "insert":
            text = text[:at] + piece + text[at:]
        elif op == "delete":
            text = text[:at] + text[end:]
        else:
            text = text[:at] + piece + text[end:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_mutated())
def test_mutated_suites_load_or_raise_input_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    try:
        suite = load_suite(path, corpus_ids={"doc-a", "doc-b"})
    except InputError as exc:  # anything else (a traceback) fails the test
        assert str(path) in str(exc)  # and the error names the file
    else:
        assert suite.cases and suite.name
