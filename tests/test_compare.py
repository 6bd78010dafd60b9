"""`harness compare` on real runs of the fixture suite, with its statistics checked against statsmodels and scipy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _runs import invoke, main_exit, records, write_records
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from harness.analysis.compare import compare
from harness.metrics.stats.tests import mcnemar_exact
from harness.store.loaded import load_run


@pytest.fixture
def runs(mini_runs: Path, tmp_path: Path) -> Path:
    """A private copy of the shared runs, so a test may change them."""
    target = tmp_path / "mini"
    shutil.copytree(mini_runs, target)
    return target


def test_an_aa_pair_shows_no_effect_and_every_case_paired(runs: Path) -> None:
    data = json.loads(invoke("compare", str(runs / "base"), str(runs / "cand"), "--json"))
    assert data["differences"] == [] and data["only_in_a"] == [] and data["only_in_b"] == []
    rows = data["rows"]
    retrieval = [r for r in rows if r["tier"] is None]
    assert {r["metric"] for r in retrieval} == {"recall@5", "precision@5", "hit@5", "mrr", "ndcg@5", "map"}
    assert {r["variant"] for r in retrieval} == {"dense", "bm25", "hybrid"}
    assert {r["category"] for r in retrieval} >= {"(all)", "jurisdiction", "code-section"}
    assert all(r["effect"] == 0 and r["p_value"] == 1.0 for r in rows)
    answers = [r for r in rows if r["tier"] == "local"]
    assert {r["metric"] for r in answers} >= {"token_f1", "must_include_recall"}
    hit = next(r for r in retrieval if r["metric"] == "hit@5" and r["category"] == "(all)")
    assert hit["test"] == "mcnemar exact" and hit["n"] == 3  # three answerable cases per variant


def test_a_changed_run_gets_paired_effects_matching_independent_oracles(runs: Path) -> None:
    rows = records(runs / "cand")
    for row in rows:  # hybrid loses its best document on two cases
        if row["variant"] == "hybrid" and row["case_id"] in ("marlow-ice", "valleys"):
            row["retrieval"]["metrics"].update({"ndcg@5": 0.1, "hit@5": 0.0, "mrr": 0.2})
    write_records(runs / "cand", [r for r in rows if r["case_id"] != "port-ellis" or r["variant"] != "bm25"])
    a, b = load_run(runs / "base"), load_run(runs / "cand")
    result = compare(a, b, resamples=2000)
    assert result.only_in_a == ["port-ellis|bm25"] and result.only_in_b == []
    group = [r for r in result.rows if r.variant == "hybrid" and r.category == "(all)" and r.tier is None]
    by_metric = {r.metric: r for r in group}
    base = {(r.case_id, r.variant): r.retrieval.metrics for r in a.records}
    cand = {(r.case_id, r.variant): r.retrieval.metrics for r in b.records}
    keys = [k for k in base if k[1] == "hybrid" and base[k]["ndcg@5"] is not None]
    xs = np.array([base[k]["ndcg@5"] for k in keys])
    ys = np.array([cand[k]["ndcg@5"] for k in keys])
    assert by_metric["ndcg@5"].effect == pytest.approx(float(np.mean(ys - xs)))
    # the exact sign-flip p-value, enumerated by scipy
    oracle = sps.permutation_test((ys - xs,), np.mean, permutation_type="samples", n_resamples=np.inf)
    assert by_metric["ndcg@5"].p_value == pytest.approx(oracle.pvalue)
    # McNemar on hit@5 against statsmodels' exact test
    hx = [base[k]["hit@5"] for k in keys]
    hy = [cand[k]["hit@5"] for k in keys]
    table = [[sum(1 for x, y in zip(hx, hy, strict=True) if x == i and y == j) for j in (1, 0)] for i in (1, 0)]
    assert by_metric["hit@5"].p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue)
    # Holm across the metrics of the group, against statsmodels
    ps = [r.p_value for r in group]
    assert [r.p_holm for r in group] == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_mcnemar_is_exact_at_every_count_of_discordant_pairs() -> None:
    rng = np.random.default_rng(3)
    for n in (30, 200):  # about 9 and 60 discordant pairs: one policy on both sides of the old switch at 25
        a = rng.random(n) < 0.6
        b = np.where(rng.random(n) < 0.3, ~a, a)
        ours = mcnemar_exact(a.tolist(), b.tolist())
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        assert ours.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue)


def test_different_suites_are_refused_unless_allowed(runs: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((runs / "cand" / "manifest.json").read_text())
    manifest["suite"]["name"] = "other"
    manifest["corpus"]["fingerprint"] = "f" * 64
    (runs / "cand" / "manifest.json").write_text(json.dumps(manifest))
    assert main_exit(monkeypatch, "compare", str(runs / "base"), str(runs / "cand")) == 2
    err = capsys.readouterr().err
    assert "suite: 'mini' vs 'other'" in err and "corpus fingerprint" in err and "--allow-different" in err
    out = invoke("compare", str(runs / "base"), str(runs / "cand"), "--allow-different")
    assert "**differs**" in out and "| ndcg@5 | hybrid |" in out


def test_a_variant_whose_embedder_differs_is_named_in_the_notes(runs: Path) -> None:
    manifest = json.loads((runs / "cand" / "manifest.json").read_text())
    config = manifest["suite"]["config"]
    base_embedder = dict(config["embedder"])
    assert base_embedder["backend"] == "onnx-int8"  # the suite names none: the default
    dense = next(v for v in config["variants"] if v["name"] == "dense")
    dense["embedder"] = {**base_embedder, "backend": "torch"}
    (runs / "cand" / "manifest.json").write_text(json.dumps(manifest))
    data = json.loads(invoke("compare", str(runs / "base"), str(runs / "cand"), "--json"))
    embedder_notes = [n for n in data["notes"] if "embedder differs" in n]
    assert embedder_notes == ["variant dense: the embedder differs (sentence-transformers:all-MiniLM-L6-v2@onnx-int8 "
                              "in base, sentence-transformers:all-MiniLM-L6-v2@torch in cand); its retrieval "
                              "differences include the embedder's"]
    assert "embedder differs" in invoke("compare", str(runs / "base"), str(runs / "cand"))
