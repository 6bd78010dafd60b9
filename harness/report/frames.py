"""Turn the run log into pandas frames. Reads only the run store; never calls a model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd


def retrieval_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per case × variant with every retrieval metric; unmeasured metrics stay missing (not 0)."""
    rows = []
    for record in records:
        retrieval = record["retrieval"]
        row = {
            "case_id": record["case_id"],
            "variant": record["variant"],
            "category": record["category"],
            "unmeasured_reason": retrieval.get("unmeasured_reason"),
            "retrieval_latency_s": retrieval.get("latency_s"),
            "top_doc": retrieval["ranked"][0][0] if retrieval["ranked"] else None,
        }
        row.update(retrieval["metrics"])
        rows.append(row)
    return pd.DataFrame(rows)


def generation_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per case × variant × tier for generation cases, whatever happened (ok, failed or skipped)."""
    rows = []
    for record in records:
        for tier, gen in (record.get("generations") or {}).items():
            usage = gen.get("usage") or {}
            row: dict[str, Any] = {
                "case_id": record["case_id"],
                "variant": record["variant"],
                "category": record["category"],
                "tier": tier,
                "answerable": any(grade > 0 for grade in record["relevant"].values()),
                "status": gen["status"],
                "reason": gen.get("reason") or gen.get("error"),
                "host": gen.get("host"),
                "model": gen.get("model"),
                "text": gen.get("text"),
                "latency_s": gen.get("latency_s"),
                "input_tokens": usage.get("input_tokens"),
                "output_tokens": usage.get("output_tokens"),
                "cost_usd": gen.get("cost_usd"),
                "attempts": len(gen.get("attempts") or []),
                "fallback": gen.get("fallback", False),
                "grade_status": (record.get("grade") or {}).get("status"),
            }
            timing = gen.get("timing") or {}
            row["server_eval_s"] = timing.get("eval_s")
            for name, value in (gen.get("answer_metrics") or {}).items():
                row[name] = value
            rows.append(row)
    return pd.DataFrame(rows)


def results_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The ``results.parquet`` table: retrieval columns plus, per tier, the generation columns prefixed by tier."""
    retrieval = retrieval_frame(records)
    generation = generation_frame(records)
    if generation.empty:
        return retrieval
    wide = generation.drop(columns=["category"]).set_index(["case_id", "variant", "tier"]).unstack("tier")
    wide.columns = [f"{tier}.{column}" for column, tier in wide.columns]
    return retrieval.merge(wide.reset_index(), on=["case_id", "variant"], how="left")
