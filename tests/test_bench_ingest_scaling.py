"""``bench/ingest.py --docs``: the synthetic corpus it ingests (N documents of restoration sections, no chunk text
repeated), the line it fits through the sizes, its input errors, and a small run end to end."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from harness.config.suite import ChunkingConfig
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import load_corpus
from harness.retrieval.onnx_export import MODELS_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "corpora" / "restoration"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.md"))}


def test_synthetic_corpus_has_n_documents_of_source_sections_and_no_repeated_chunk(tmp_path: Path) -> None:
    # 300 documents use about 750 of the 568 sections: past one pass through them, so sections are reused.
    target = bench.write_synthetic_corpus(SOURCE, tmp_path / "synthetic", 300, seed=0)
    corpus = load_corpus(target)
    assert len(corpus) == 300
    assert sorted(corpus.ids) == [f"syn-{i:06d}" for i in range(300)]
    chunks = chunk_corpus(corpus, ChunkingConfig())
    assert len(chunks) > 600 and len({chunk.text for chunk in chunks}) == len(chunks)
    bodies = Counter(chunk.text.split("\n\n", 1)[1] for chunk in chunks)
    assert max(bodies.values()) >= 2  # the same section text under two titles: only the heading path tells them apart

    source = load_corpus(SOURCE)
    for doc in corpus:
        assert doc.title == f"Synthetic document {doc.id.removeprefix('syn-')}"
        parts = re.split(r"^## (.*) \(([^()]+)\)\n\n", doc.body, flags=re.M)[1:]
        headed = [(parts[i], parts[i + 1], parts[i + 2].strip()) for i in range(0, len(parts), 3)]
        assert len(headed) in (2, 3)
        sources = [source_id for _, source_id, _ in headed]
        assert len(set(sources)) == len(sources), f"{doc.id} repeats a source document"
        for heading, source_id, text in headed:
            original = source.get(source_id)
            assert text in original.body  # the section's text, word for word
            assert heading == original.title or re.search(rf"^#+ {re.escape(heading)}\s*$", original.body, re.M)


def test_the_draw_is_seeded_and_a_smaller_corpus_is_the_start_of_a_larger(tmp_path: Path) -> None:
    small = _files(bench.write_synthetic_corpus(SOURCE, tmp_path / "small", 10, seed=0))
    large = _files(bench.write_synthetic_corpus(SOURCE, tmp_path / "large", 30, seed=0))
    other = _files(bench.write_synthetic_corpus(SOURCE, tmp_path / "other", 30, seed=1))
    assert len(small) == 10 and all(large[name] == text for name, text in small.items())
    assert other.keys() != large.keys() or any(other[name] != large[name] for name in large)
    with pytest.raises(SystemExit, match="not empty"):
        bench.write_synthetic_corpus(SOURCE, tmp_path / "small", 10, seed=0)


def test_sections_are_dealt_evenly() -> None:
    sections = bench.corpus_sections(load_corpus(SOURCE))
    groups = bench.draw_documents(sections, 1000, seed=0)
    uses = Counter(id(section) for group in groups for section in group)
    counts = [uses[id(section)] for section in sections]
    assert min(counts) >= 1 and max(counts) - min(counts) <= 1
    assert all(len({s.doc.id for s in group}) == len(group) for group in groups)


def test_fit_line_recovers_an_exact_line_and_matches_the_textbook_interval() -> None:
    exact = bench.fit_line([1000, 5000, 10000], [2 + 0.03 * x for x in (1000, 5000, 10000)])
    assert exact.slope == pytest.approx(0.03) and exact.intercept == pytest.approx(2)
    assert exact.r_squared == pytest.approx(1.0) and max(map(abs, exact.residuals)) < 1e-9

    x = np.array([2825.0, 14100.0, 28250.0, 56500.0])
    y = np.array([95.0, 470.0, 1010.0, 2150.0])
    fit = bench.fit_line(list(x), list(y))
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (intercept + slope * x)
    stderr = np.sqrt(residuals @ residuals / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    t_975_2df = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
    assert fit.residuals == pytest.approx(list(residuals))
    assert fit.r_squared == pytest.approx(1 - residuals @ residuals / np.sum((y - y.mean()) ** 2))
    assert fit.slope_stderr == pytest.approx(stderr)
    assert (fit.slope_low, fit.slope_high) == pytest.approx((slope - t_975_2df * stderr, slope + t_975_2df * stderr))

    two = bench.fit_line([1, 2], [1, 3])
    assert two.slope == pytest.approx(2) and two.slope_stderr is None and two.slope_low is None
    with pytest.raises(ValueError, match="two or more"):
        bench.fit_line([5, 5], [1, 2])


def _row(chunks: int, embed: float, other: float) -> dict[str, float]:
    return {"chunks": chunks, "embed_s": embed, "other_s": other, "ingest_s": embed + other}


def test_linearity_flags_the_first_step_whose_marginal_cost_leaves_the_tolerance() -> None:
    steady = [_row(1000, 30, 2), _row(5000, 150, 10), _row(10000, 300, 20)]
    assert bench.load_factors(steady) == pytest.approx([1, 1, 1])
    assert [s["linear"] for s in bench.linearity(steady)] == [True, True]
    # 1,000 -> 5,000 chunks at the same cost, then Chroma's part triples per chunk from 5,000 -> 10,000.
    bent = bench.linearity([_row(1000, 30, 10), _row(5000, 150, 50), _row(10000, 300, 200)])
    assert [s["linear"] for s in bent] == [True, False]
    assert bent[1]["raw_s"] == pytest.approx((500 - 200) / 5)  # seconds per 1,000 chunks
    assert bent[1]["adjusted_ratio"] == pytest.approx(60 / 40)


def test_a_busier_machine_is_divided_out_and_does_not_read_as_non_linear() -> None:
    # The 5,000-chunk run shares the cores: embedding and the rest both take 1.5x as long per chunk.
    busy = [_row(1000, 30, 2), _row(5000, 150 * 1.5, 10 * 1.5)]
    assert bench.load_factors(busy) == pytest.approx([1, 1.5])
    step = bench.linearity(busy)[0]
    assert step["raw_ratio"] == pytest.approx((240 - 32) / 4 / 32)
    assert step["adjusted_s"] == pytest.approx((160 - 32) / 4) and step["linear"]
    # The factor is relative to the fastest run, wherever it falls.
    assert bench.load_factors([_row(1000, 60, 1), _row(2000, 60, 1)]) == pytest.approx([2, 1])


@pytest.mark.parametrize(("args", "message"), [
    (["--docs", "ten"], "--docs: 'ten' is not a whole number"),
    (["--docs", "100,0"], "--docs: 0 documents is outside"),
    (["--docs", "10", "--backend", "tensorflow"], "--backend: invalid choice"),
    (["--docs", "10", "--backends", "torch,onnx"], "with --docs, choose one with --backend"),
    (["--backend", "onnx"], "--backend chooses the backend for --docs"),
    (["--report-rows", "/nonexistent/rows.json"], "--report-rows: cannot read /nonexistent/rows.json"),
])
def test_bad_scaling_arguments_exit_2_naming_the_flag(args: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_scaling_mode_end_to_end_on_two_small_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """About 20-40 s: the ONNX export is made afresh, then two sizes each in a child process."""
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))  # the repository's .harness stays untouched
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    saved = tmp_path / "rows.json"
    assert bench.main(["--docs", "40,20", "--save-rows", str(saved)]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^ +(\d+) +(\d+) +([\d.]+) +([\d.]+) .*$", out, flags=re.M)
    assert [int(docs) for docs, *_ in rows] == [20, 40]  # ascending, each measured
    chunks = [int(c) for _, c, *_ in rows]
    assert chunks[0] > 20 and chunks[1] > chunks[0]
    assert "every chunk text distinct: True" in out
    assert "slope" in out and "no interval from two points" in out and "R²" in out
    assert re.search(r"query p50: [\d.]+ ms at [\d,]+ .*, [\d.]+ ms at [\d,]+", out)
    assert re.search(r"^(linear|not linear)", out, flags=re.M)
    assert not list(tmp_path.glob("bench-scale-*"))  # the scratch corpora and stores are gone
    # The saved figures give the same analysis again without measuring.
    assert [row["docs"] for row in json.loads(saved.read_text())] == [20, 40]
    assert bench.main(["--report-rows", str(saved)]) == 0
    again = capsys.readouterr().out
    assert again.strip() and again.strip() in out
