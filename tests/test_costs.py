"""harness.money.costs and the pricing table: known answers worked out by hand from the table's rows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.config.fleet import HostCost
from harness.config.pricing import BUNDLED_PRICING, load_pricing
from harness.errors import ConfigError, InputError
from harness.money import costs
from harness.money.costs import (
    break_even,
    call_rates,
    cloud_cost_usd,
    fleet_fixed_usd_per_month,
    local_call_cost,
    price_for,
    use_pricing,
)
from harness.money.projection import projected_usd
from harness.providers.types import Usage

ROW = """\
  - id: claude-test-1
    aliases: [claude-test]
    snapshots: [claude-test-1-20260101]
    input: 2.00
    output: 10.00
    cache_write_5m: 2.50
    cache_write_1h: 4.00
    cache_read: 0.20
    batch_input: 1.00
    batch_output: 5.00
    source: https://example.org/pricing
    checked: 2026-11-01
"""


@pytest.fixture(autouse=True)
def bundled_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(costs.PRICING_ENV, raising=False)
    use_pricing()
    yield
    use_pricing()


def write_table(tmp_path: Path, rows: str = ROW, name: str = "pricing.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"as_of: 2026-11-01\nmodels:\n{rows}", encoding="utf-8")
    return path


def test_a_call_is_priced_token_kind_by_token_kind() -> None:
    # Sonnet 4.5: $3 input, $15 output, $3.75 5-minute write, $6 1-hour write, $0.30 read per million.
    usage = Usage(input_tokens=1000, output_tokens=500, cache_creation_input_tokens=2000, cache_read_input_tokens=4000)
    five_minutes = (1000 * 3 + 500 * 15 + 2000 * 3.75 + 4000 * 0.30) / 1e6
    assert cloud_cost_usd("claude-sonnet-4-5", usage) == pytest.approx(five_minutes)
    assert five_minutes == pytest.approx(0.0192)
    one_hour = (1000 * 3 + 500 * 15 + 2000 * 6 + 4000 * 0.30) / 1e6
    assert cloud_cost_usd("claude-sonnet-4-5", usage, cache_ttl="1h") == pytest.approx(one_hour)


def test_batch_halves_input_output_and_the_cache_rates_with_them() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500, cache_creation_input_tokens=2000, cache_read_input_tokens=4000)
    # Opus 4.5 batch: $2.50 input, $12.50 output; cache write and read at half their $6.25 / $0.50.
    expected = (1000 * 2.5 + 500 * 12.5 + 2000 * 3.125 + 4000 * 0.25) / 1e6
    assert cloud_cost_usd("claude-opus-4-5", usage, batch=True) == pytest.approx(expected)
    assert cloud_cost_usd("claude-opus-4-5", usage, batch=True) == pytest.approx(
        cloud_cost_usd("claude-opus-4-5", usage) / 2  # type: ignore[operator]
    )


def test_a_long_prompt_is_priced_at_the_long_band_on_every_token() -> None:
    short = Usage(input_tokens=100_000, output_tokens=1000)
    long = Usage(input_tokens=90_000, output_tokens=1000, cache_read_input_tokens=10_001)
    assert cloud_cost_usd("claude-haiku-5-5", short) == pytest.approx((100_000 * 0.10 + 1000 * 0.50) / 1e6)
    assert cloud_cost_usd("claude-haiku-5-5", long) == pytest.approx(
        (90_000 * 0.50 + 1000 * 2.50 + 10_001 * 0.05) / 1e6
    )


def test_unreported_tokens_give_no_price_rather_than_zero() -> None:
    assert cloud_cost_usd("claude-sonnet-4-5", Usage(input_tokens=10)) is None
    assert cloud_cost_usd("claude-sonnet-4-5", Usage(output_tokens=10)) is None


def test_ids_aliases_and_dated_snapshots_find_their_row() -> None:
    assert price_for("claude-sonnet-4-5-20250929").id == "claude-sonnet-4-5"
    assert price_for("claude-sonnet-4-5-20991231").id == "claude-sonnet-4-5"  # any dated snapshot of a known id
    assert price_for("claude-3-5-haiku-latest").id == "claude-3-5-haiku"
    assert price_for("claude-opus-4-0").id == "claude-opus-4"
    assert price_for("claude-opus-4-5").input == 5.0 and price_for("claude-opus-4").input == 15.0


def test_an_unknown_model_is_an_input_error_listing_the_known_ones() -> None:
    # Not a prefix match: an unpriced newer version must not silently take an older row's price.
    with pytest.raises(InputError) as caught:
        price_for("claude-opus-4-9")
    assert "claude-opus-4-9" in caught.value.message
    assert "claude-sonnet-4-5" in caught.value.hint and "claude-fable-5-1" in caught.value.hint
    assert "--pricing" in caught.value.hint


def test_the_bundled_table_is_dated_sourced_and_batch_is_half_price() -> None:
    table = load_pricing(BUNDLED_PRICING)
    assert len(table.models) >= 15
    for row in table.models:
        assert row.source.startswith("https://") and row.checked <= table.as_of, row.id
        assert row.batch_input == pytest.approx(row.input / 2) and row.batch_output == pytest.approx(row.output / 2)
        assert row.cache_read < row.input < row.cache_write_5m < row.cache_write_1h, row.id
    assert table.sha256 == hashlib.sha256(BUNDLED_PRICING.read_bytes()).hexdigest()


def test_a_missing_field_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write_table(tmp_path, ROW.replace("    cache_read: 0.20\n", ""))
    with pytest.raises(ConfigError) as caught:
        load_pricing(path)
    assert caught.value.line == 3 and caught.value.field == "models[0].cache_read"
    assert "required" in caught.value.message.lower()


def test_a_negative_price_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write_table(tmp_path, ROW.replace("output: 10.00", "output: -10.00"))
    with pytest.raises(ConfigError) as caught:
        load_pricing(path)
    lines = path.read_text().splitlines()
    assert lines[caught.value.line - 1].strip() == "output: -10.00"  # type: ignore[operator]
    assert caught.value.field == "models[0].output" and str(path) in str(caught.value.path)


def test_an_id_listed_twice_is_refused(tmp_path: Path) -> None:
    second = ROW.replace("id: claude-test-1", "id: claude-test-2").replace("snapshots: [claude-test-1-20260101]", "")
    with pytest.raises(ConfigError, match="'claude-test' is listed twice") as caught:
        load_pricing(write_table(tmp_path, ROW + second))
    assert caught.value.line == 15


def test_an_override_table_prices_the_run_and_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_table(tmp_path)
    monkeypatch.setenv(costs.PRICING_ENV, str(path))
    table = use_pricing()
    assert table.manifest() == {
        "path": str(path),
        "as_of": "2026-11-01",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    assert cloud_cost_usd("claude-test-1-20260101", Usage(1_000_000, 1_000_000)) == pytest.approx(12.0)
    with pytest.raises(InputError, match="claude-sonnet-4-5"):
        price_for("claude-sonnet-4-5")  # the override replaces the bundled table, it does not merge with it
    other = write_table(tmp_path, ROW.replace("input: 2.00", "input: 4.00"), name="other.yaml")
    assert use_pricing(other).price_for("claude-test").input == 4.0  # an explicit path beats the environment


def test_projection_is_full_price_input_and_output() -> None:
    assert projected_usd("claude-haiku-4-5", 2000, 100, calls=10) == pytest.approx(10 * (2000 * 1 + 100 * 5) / 1e6)


def test_projection_prices_a_cached_prefix_as_a_write_and_batches_at_half_price() -> None:
    # claude-haiku-4-5: input $1, output $5, 5-minute write $1.25, 1-hour write $2, batch input $0.50, output $2.50
    assert projected_usd("claude-haiku-4-5", 1000, 100, cache_write_tokens=4000) == pytest.approx(
        (1000 * 1 + 4000 * 1.25 + 100 * 5) / 1e6)
    assert projected_usd("claude-haiku-4-5", 1000, 100, cache_write_tokens=4000, batch=True, cache_ttl="1h") == (
        pytest.approx((1000 * 0.5 + 4000 * 2 * 0.5 + 100 * 2.5) / 1e6))
    with pytest.raises(ValueError):
        projected_usd("claude-haiku-4-5", -1, 100)


def test_one_rate_choice_prices_both_the_projection_and_the_bill() -> None:
    rates = call_rates("claude-haiku-4-5", 10, batch=True, cache_ttl="1h")
    assert (rates.input, rates.output, rates.cache_write, rates.cache_read) == pytest.approx((0.5, 2.5, 1.0, 0.05))
    usage = Usage(input_tokens=1000, output_tokens=100, cache_creation_input_tokens=4000)
    bill = cloud_cost_usd("claude-haiku-4-5", usage, batch=True, cache_ttl="1h")
    assert bill == pytest.approx(projected_usd("claude-haiku-4-5", 1000, 100, cache_write_tokens=4000, batch=True,
                                               cache_ttl="1h"))


def test_local_cost_splits_marginal_energy_from_fixed_hardware() -> None:
    cost = HostCost(watts=300, usd_per_kwh=0.20, hardware_usd_per_hour=0.50)
    call = local_call_cost(cost, 36.0)  # 0.01 h
    assert call.energy_usd == pytest.approx(0.01 * 0.3 * 0.20)  # 0.0006
    assert call.hardware_usd == pytest.approx(0.01 * 0.50)  # 0.005
    assert call.total_usd == pytest.approx(0.0056)
    assert local_call_cost(HostCost(), 100.0).total_usd == 0.0


def test_break_even_solves_fixed_plus_marginal_equals_cloud() -> None:
    fixed = fleet_fixed_usd_per_month([HostCost(hardware_usd_per_hour=0.5), HostCost(hardware_usd_per_hour=0.25)])
    assert fixed == pytest.approx(0.75 * 730)  # the one month: 365/12 days, 730 hours
    assert fleet_fixed_usd_per_month([HostCost(hardware_usd_per_hour=0.5)], days_per_month=30) == pytest.approx(360)
    result = break_even(fixed, local_marginal_usd_per_call=0.0005, cloud_usd_per_call=0.0105)
    assert result.calls_per_month == pytest.approx(547.5 / 0.01)
    at_volume = result.calls_per_month
    assert fixed + at_volume * 0.0005 == pytest.approx(at_volume * 0.0105)  # type: ignore[operator]
    assert break_even(fixed, 0.02, 0.01).calls_per_month is None


def test_there_is_one_token_estimate() -> None:
    from harness.localfleet import prompt
    from harness.money.tokens import estimate_tokens

    assert costs.estimate_tokens is estimate_tokens and prompt.estimate_tokens is estimate_tokens
    # Known answer: "Ice barrier 24 in." = 2 digits + 1 punctuation + 3 words = 6 pieces, x 1.2 -> 7.2 -> 8.
    assert estimate_tokens("Ice barrier 24 in.") == 8


def test_the_yaml_rows_parse_with_plain_yaml_too() -> None:
    # The table is data other tools may read: no custom tags, plain mappings only.
    data = yaml.safe_load(BUNDLED_PRICING.read_text())
    assert {"as_of", "models"} <= set(data)
