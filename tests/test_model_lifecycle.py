"""The pricing table's model lifecycle: loading it, a model's status on a given day, the refusal of a retired model,
the warning before retirement, and the explanation of an API's not_found_error. "Today" is always given."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from harness.config.pricing import load_pricing
from harness.config.yaml_loader import load_yaml
from harness.errors import ConfigError, InputError
from harness.money.lifecycle import (
    TODAY_ENV,
    WARN_DAYS,
    ModelUse,
    check_models,
    model_status,
    retired_ids,
    today,
    unavailable_message,
)

DEPRECATIONS = "https://platform.claude.com/docs/en/about-claude/model-deprecations"
RATES = """\
    input: 3.00
    output: 15.00
    cache_write_5m: 3.75
    cache_write_1h: 6.00
    cache_read: 0.30
    batch_input: 1.50
    batch_output: 7.50
    source: https://example.org/pricing
    checked: 2026-11-02
"""


def table_file(tmp_path: Path, lifecycle: str, extra: str = "") -> Path:
    text = (
        "as_of: 2026-11-02\nmodels:\n"
        f"  - id: claude-new\n{RATES}"
        f"  - id: claude-old\n    snapshots: [claude-old-20250101]\n{RATES}    lifecycle: {lifecycle}\n{extra}"
    )
    path = tmp_path / "prices.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bundled():
    return load_pricing()


def test_a_model_is_current_then_deprecated_then_retired_on_its_dates(tmp_path: Path) -> None:
    table = load_pricing(table_file(tmp_path, "{deprecated: 2026-09-01, retires: 2026-11-30, successor: claude-new, "
                                              "source: https://example.org/deprecations}"))  # fmt: skip
    assert model_status("claude-old", table, date(2026, 8, 31)).status == "current"
    assert model_status("claude-old", table, date(2026, 9, 1)).status == "deprecated"
    assert model_status("claude-old", table, date(2026, 11, 29)).status == "deprecated"
    retired = model_status("claude-old-20250101", table, date(2026, 11, 30))  # a snapshot maps to its row
    assert (retired.status, retired.row_id, retired.days_left) == ("retired", "claude-old", 0)
    assert model_status("claude-new", table, date(2030, 1, 1)).status == "current"
    assert model_status("claude-nobody", table, date(2026, 1, 1)).status == "unknown"


def test_an_announced_retirement_makes_a_model_deprecated_before_its_date(bundled) -> None:
    status = model_status("claude-opus-4-5", bundled, date(2026, 12, 7))
    assert (status.status, status.days_left, status.retiring_soon) == ("deprecated", 46, False)


@pytest.mark.parametrize(
    ("lifecycle", "message"),
    [
        ("{deprecated: 2026-12-01, retires: 2026-11-30, source: https://example.org/d}", "is before deprecated"),
        ("{source: https://example.org/d}", "give deprecated:, retires: or both"),
        ("{retires: 2026-11-30}", "source"),
        ("{retires: 2026-11-30, source: https://example.org/d, when: soon}", "when"),  # extra=forbid
        ("{retires: 2026-11-30, source: https://example.org/d, successor: claude-ghost}", "claude-ghost"),
    ],
)
def test_a_bad_lifecycle_block_is_refused_with_its_line(tmp_path: Path, lifecycle: str, message: str) -> None:
    path = table_file(tmp_path, lifecycle)
    with pytest.raises(ConfigError, match=message) as caught:
        load_pricing(path)
    assert caught.value.path == str(path) and caught.value.line is not None


def test_not_priced_ids_must_not_also_be_priced(tmp_path: Path) -> None:
    path = table_file(tmp_path, "{retires: 2026-11-30, source: https://example.org/d}",
                      "not_priced:\n  - {id: claude-new, reason: no list price}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="both priced and listed under not_priced"):
        load_pricing(path)


def test_the_bundled_table_dates_the_retired_default_and_names_its_successor(bundled) -> None:
    status = model_status("claude-sonnet-4-5", bundled, date(2026, 12, 7))
    assert status.status == "retired" and status.lifecycle is not None
    assert (status.lifecycle.retires, status.lifecycle.successor) == (date(2026, 11, 30), "claude-sonnet-4-6")
    unpriced = model_status("claude-mythos-preview", bundled, date(2026, 12, 7))
    assert (unpriced.status, unpriced.priced) == ("retired", False)


def test_a_retired_model_is_refused_naming_the_date_the_source_and_the_successor(bundled) -> None:
    use = ModelUse("claude-sonnet-4-5-20250929", "--cloud-model")
    with pytest.raises(InputError) as caught:
        check_models([use], bundled, date(2026, 11, 30))
    error = caught.value
    assert error.exit_code == 2
    assert "claude-sonnet-4-5-20250929" in error.message and "retired on 2026-11-30" in error.message
    assert DEPRECATIONS in error.message and "pricing.yaml" in error.message
    assert "claude-sonnet-4-6" in error.hint
    # The day before, it is only a warning.
    warnings = check_models([use], bundled, date(2026, 11, 29))
    assert len(warnings) == 1 and "retires on 2026-11-30, in 1 day " in warnings[0]


def test_a_model_named_in_a_file_is_refused_with_the_file_and_line(tmp_path: Path, bundled) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("strategy: race\ncloud_model: claude-3-haiku\nhosts: []\n", encoding="utf-8")
    use = ModelUse("claude-3-haiku", "cloud_model", load_yaml(fleet), ("cloud_model",))
    with pytest.raises(ConfigError) as caught:
        check_models([use], bundled, date(2026, 12, 7))
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(fleet), 2, "cloud_model")
    assert "retired on 2026-04-20" in caught.value.message and "claude-haiku-4-5" in caught.value.hint


def test_warnings_start_thirty_days_before_retirement_and_name_each_model_once(bundled) -> None:
    retires = date(2027, 1, 22)  # claude-opus-4-5
    uses = [ModelUse("claude-opus-4-5", "cloud tier"), ModelUse("claude-opus-4-5", "grader")]
    assert check_models(uses, bundled, retires - timedelta(days=WARN_DAYS + 1)) == []
    warnings = check_models(uses, bundled, retires - timedelta(days=WARN_DAYS))
    assert len(warnings) == 1 and "in 30 days" in warnings[0] and "no successor" in warnings[0]
    assert check_models([ModelUse("claude-sonnet-4-6", "x"), ModelUse("claude-nobody", "y")], bundled,
                        date(2027, 1, 1)) == []  # fmt: skip


def test_today_comes_from_the_environment_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TODAY_ENV, "2027-01-22")
    assert today() == date(2027, 1, 22)
    monkeypatch.setenv(TODAY_ENV, "22/01/2027")
    with pytest.raises(InputError, match="not a date"):
        today()
    monkeypatch.delenv(TODAY_ENV)
    assert isinstance(today(), date)


def test_an_api_not_found_is_explained_from_the_table(bundled) -> None:
    message, hint = unavailable_message("claude-sonnet-4-5", bundled, date(2026, 12, 7))
    assert message == "model claude-sonnet-4-5 is not available (retired on 2026-11-30 per pricing.yaml)"
    assert "claude-sonnet-4-6" in hint
    early, _ = unavailable_message("claude-opus-4-5", bundled, date(2026, 12, 7))
    assert early == "model claude-opus-4-5 is not available (is due to retire on 2027-01-22 per pricing.yaml)"
    unknown, hint = unavailable_message("claude-ghost", bundled, date(2026, 12, 7))
    assert "the API does not know it; pricing.yaml has no row for it" in unknown and "harness models" in hint


def test_retired_ids_cover_aliases_and_snapshots(bundled) -> None:
    retired = retired_ids(bundled, date(2026, 12, 7))
    assert {"claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-opus-4-0", "claude-mythos-preview"} <= retired
    assert "claude-sonnet-4-6" not in retired and "claude-opus-4-5" not in retired
    assert "claude-sonnet-4-5" not in retired_ids(bundled, date(2026, 11, 29))
