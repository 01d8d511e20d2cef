"""The price table: lookup rules, per-request modifiers, and the worked example of formats.md §6."""

from __future__ import annotations

import pytest

from tracemark_common import pricing
from tracemark_common.pricing import TokenCounts


def test_worked_example_opus_4_6() -> None:
    # 12 in, 471 out, 53147 1h-write, 206288 read on claude-opus-4-6 = $0.646449
    price = pricing.lookup("claude-opus-4-6")
    assert price is not None
    tokens = TokenCounts(
        input_tokens=12, output_tokens=471, cache_creation_1h_input_tokens=53147, cache_read_input_tokens=206288
    )
    assert pricing.round_usd(pricing.request_cost(price, tokens)) == 0.646449


@pytest.mark.parametrize(
    ("model", "expected_input"),
    [
        ("claude-sonnet-4-5-20250929", 3),
        ("claude-sonnet-4-5", 3),
        ("anthropic/claude-haiku-4-5", 1),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", 15),
        ("claude-opus-4-6[1m]", 5),
        ("CLAUDE-SONNET-5", 2),
        ("claude-opus-4-8-20261001", 5),  # a dated id of a known model
    ],
)
def test_lookup_aliases(model: str, expected_input: float) -> None:
    price = pricing.lookup(model)
    assert price is not None and price.input == expected_input


@pytest.mark.parametrize("model", ["", "unknown", "gpt-4o", "composer-2", "claude-opus-9"])
def test_unknown_models_are_none_never_zero(model: str) -> None:
    assert pricing.lookup(model) is None


def test_every_price_is_positive_and_consistent() -> None:
    for name, price in pricing.PRICES.items():
        assert price.input > 0 and price.output > price.input, name
        if name.startswith("claude-3-haiku"):
            continue  # Anthropic lists $0.30 cache write and $0.03 read (rounded) for Claude 3 Haiku
        assert price.cache_write_5m == pytest.approx(price.input * 1.25), name
        assert price.cache_write_1h == pytest.approx(price.input * 2), name
        assert price.cache_read == pytest.approx(price.input * 0.1), name


def test_fast_mode_multiplies() -> None:
    price = pricing.lookup("claude-opus-4-6")
    assert price is not None
    tokens = TokenCounts(input_tokens=1_000_000)
    assert pricing.request_cost(price, tokens, fast=True) == pytest.approx(30.0)
    assert pricing.request_cost(price, tokens) == pytest.approx(5.0)


def test_long_context_premium_only_above_200k_on_sonnet_4_5() -> None:
    sonnet = pricing.lookup("claude-sonnet-4-5")
    sonnet46 = pricing.lookup("claude-sonnet-4-6")
    assert sonnet is not None and sonnet46 is not None
    big = TokenCounts(input_tokens=1000, cache_read_input_tokens=250_000, output_tokens=1000)
    small = TokenCounts(input_tokens=1000, cache_read_input_tokens=150_000, output_tokens=1000)
    assert pricing.request_cost(sonnet, big) == pytest.approx((1000 * 6 + 250_000 * 0.6 + 1000 * 22.5) / 1e6)
    assert pricing.request_cost(sonnet, small) == pytest.approx((1000 * 3 + 150_000 * 0.3 + 1000 * 15) / 1e6)
    assert pricing.request_cost(sonnet46, big) == pytest.approx((1000 * 3 + 250_000 * 0.3 + 1000 * 15) / 1e6)


def test_version_is_a_date() -> None:
    assert len(pricing.PRICING_VERSION) == 10 and pricing.PRICING_VERSION[4] == "-"
