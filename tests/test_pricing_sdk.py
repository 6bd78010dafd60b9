"""The pricing table against the installed anthropic SDK, so an SDK upgrade (`make lock`) surfaces new and retiring
models: the test fails when a default model is in the SDK's deprecation table, or the SDK lists a model id the table
neither prices nor explains. The checker itself is shown to catch each of those."""

from __future__ import annotations

from datetime import date

import pytest

from harness.config.fleet import DEFAULT_CLOUD_MODEL
from harness.config.grading import DEFAULT_GRADER_MODEL
from harness.config.pricing import load_pricing
from harness.money.sdk_check import stale_pricing
from harness.providers.anthropic_catalog import parse_sdk_date, sdk_catalog

DEFAULTS = {"DEFAULT_CLOUD_MODEL": DEFAULT_CLOUD_MODEL, "DEFAULT_GRADER_MODEL": DEFAULT_GRADER_MODEL}


@pytest.fixture(scope="module")
def table():
    return load_pricing()


@pytest.fixture(scope="module")
def catalog():
    return sdk_catalog()


def check(table, catalog, defaults=DEFAULTS, models=None, end_of_life=None):
    return stale_pricing(
        table,
        sdk_models=catalog.model_ids if models is None else models,
        sdk_end_of_life=catalog.end_of_life if end_of_life is None else end_of_life,
        defaults=defaults,
        on=table.as_of,  # the table's own date: the check does not move with the wall clock
    )


def test_the_pricing_table_and_the_defaults_are_current_for_the_installed_sdk(table, catalog) -> None:
    assert catalog.model_ids and catalog.end_of_life  # the SDK still exposes both; an empty read would prove nothing
    assert check(table, catalog) == []


def test_a_default_set_back_to_the_retired_model_is_flagged(table, catalog) -> None:
    problems = check(table, catalog, defaults={**DEFAULTS, "DEFAULT_GRADER_MODEL": "claude-sonnet-4-5"})
    assert any("DEFAULT_GRADER_MODEL = claude-sonnet-4-5 is in the SDK's deprecation table" in p for p in problems)
    assert any("DEFAULT_GRADER_MODEL = claude-sonnet-4-5 is retired per pricing.yaml" in p for p in problems)


def test_a_model_the_sdk_lists_but_the_table_lacks_is_flagged(table, catalog) -> None:
    problems = check(table, catalog, models={*catalog.model_ids, "claude-fable-6"})
    assert problems == [
        "the SDK lists claude-fable-6, which pricing.yaml neither prices nor lists under not_priced: "
        "add its row (with its source) or explain it under not_priced"
    ]


def test_an_end_of_life_date_the_table_does_not_carry_is_flagged(table, catalog) -> None:
    moved = {**catalog.end_of_life, "claude-sonnet-4-6": date(2027, 3, 1), "claude-opus-4-5": date(2027, 2, 1)}
    problems = check(table, catalog, end_of_life=moved)
    assert any("claude-sonnet-4-6 is in the SDK's deprecation table" in p for p in problems)  # it is a default
    assert any(p.startswith("claude-sonnet-4-6 reaches end of life on 2027-03-01") for p in problems)
    assert any("claude-opus-4-5 reaches end of life on 2027-02-01" in p and "2027-01-22" in p for p in problems)


def test_sdk_dates_parse() -> None:
    assert parse_sdk_date("November 30th, 2026") == date(2026, 11, 30)
    assert parse_sdk_date("January 22nd, 2027") == date(2027, 1, 22)
    assert parse_sdk_date("June 1st, 2026") == date(2026, 6, 1)
