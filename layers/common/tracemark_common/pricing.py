"""Versioned model price table and per-request cost (SPEC §2.5 "Cost").

Prices are USD per million tokens (MTok), from Anthropic's public price page (mirrored in
`reference/formats.md` §6). The table's version is recorded in every evidence document
(`usage.pricing_version`), so a cost can always be recomputed. An unknown model is never priced
at $0: `lookup` returns None, the caller records a warning, and the cost of that model is null.

Lookup order: exact id; then the id with its vendor prefix/suffix removed (`anthropic/`,
`us.anthropic.`, `-v1:0`, `[1m]`); then the undated alias (`claude-sonnet-4-5-20250929` ->
`claude-sonnet-4-5`).

Per-request modifiers (applied per API response, because they depend on that request):
- fast mode (`usage.speed == "fast"`): a per-model multiplier on every rate;
- long context: Sonnet 4 / 4.5 requests whose prompt (input + cache writes + cache reads) exceeds
  200,000 tokens pay 2x on input-side rates and 1.5x on output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRICING_VERSION = "2026-11-01"
LONG_CONTEXT_THRESHOLD = 200_000
_MTOK = 1_000_000


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    fast_multiplier: float = 1.0
    long_context_premium: bool = False


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Token counts of one request (or a sum of requests of one model)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_creation_5m_input_tokens + self.cache_creation_1h_input_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


def _p(
    inp: float, out: float, w5: float, w1: float, read: float, *, fast: float = 1.0, long_context: bool = False
) -> ModelPrice:
    return ModelPrice(inp, out, w5, w1, read, fast_multiplier=fast, long_context_premium=long_context)


_OPUS_5 = _p(5, 25, 6.25, 10, 0.50)
_OPUS_OLD = _p(15, 75, 18.75, 30, 1.50)
_SONNET_4 = _p(3, 15, 3.75, 6, 0.30, long_context=True)
_SONNET_46 = _p(3, 15, 3.75, 6, 0.30)
_HAIKU_45 = _p(1, 5, 1.25, 2, 0.10)

PRICES: dict[str, ModelPrice] = {
    "claude-fable-5": _p(10, 50, 12.50, 20, 1.00),
    "claude-mythos-5": _p(10, 50, 12.50, 20, 1.00),
    "claude-opus-5": _p(5, 25, 6.25, 10, 0.50, fast=2.0),
    "claude-opus-4-8": _p(5, 25, 6.25, 10, 0.50, fast=2.0),
    "claude-opus-4-7": _p(5, 25, 6.25, 10, 0.50, fast=6.0),
    "claude-opus-4-6": _p(5, 25, 6.25, 10, 0.50, fast=6.0),
    "claude-opus-4-5": _OPUS_5,
    "claude-opus-4-5-20251101": _OPUS_5,
    "claude-opus-4-1": _OPUS_OLD,
    "claude-opus-4-1-20250805": _OPUS_OLD,
    "claude-opus-4": _OPUS_OLD,
    "claude-opus-4-20250514": _OPUS_OLD,
    "claude-sonnet-5": _p(2, 10, 2.50, 4, 0.20),
    "claude-sonnet-4-6": _SONNET_46,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4-5-20250929": _SONNET_4,
    "claude-sonnet-4": _SONNET_4,
    "claude-sonnet-4-20250514": _SONNET_4,
    "claude-haiku-4-5": _HAIKU_45,
    "claude-haiku-4-5-20251001": _HAIKU_45,
    "claude-3-5-haiku": _p(0.80, 4, 1, 1.60, 0.08),
    "claude-3-5-haiku-20241022": _p(0.80, 4, 1, 1.60, 0.08),
    # retired, still found in older transcripts
    "claude-3-7-sonnet": _p(3, 15, 3.75, 6, 0.30),
    "claude-3-7-sonnet-20250219": _p(3, 15, 3.75, 6, 0.30),
    "claude-3-5-sonnet": _p(3, 15, 3.75, 6, 0.30),
    "claude-3-5-sonnet-20241022": _p(3, 15, 3.75, 6, 0.30),
    "claude-3-5-sonnet-20240620": _p(3, 15, 3.75, 6, 0.30),
    "claude-3-opus": _OPUS_OLD,
    "claude-3-opus-20240229": _OPUS_OLD,
    "claude-3-haiku": _p(0.25, 1.25, 0.30, 0.50, 0.03),
    "claude-3-haiku-20240307": _p(0.25, 1.25, 0.30, 0.50, 0.03),
}

_PREFIX = re.compile(r"^(?:anthropic/|(?:[a-z]{2,4}\.)?anthropic\.)")
_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|\[1m\]|@\d{8})$")
_DATED = re.compile(r"^(?P<base>.+)-\d{8}$")


def lookup(model: str) -> ModelPrice | None:
    """The price of `model`, or None when the table does not know it (never a silent $0)."""
    if not model:
        return None
    candidate = model.strip().lower()
    if candidate in PRICES:
        return PRICES[candidate]
    candidate = _SUFFIX.sub("", _PREFIX.sub("", candidate))
    if candidate in PRICES:
        return PRICES[candidate]
    dated = _DATED.match(candidate)
    if dated and dated.group("base") in PRICES:
        return PRICES[dated.group("base")]
    return None


def request_cost(price: ModelPrice, tokens: TokenCounts, *, fast: bool = False) -> float:
    """USD cost of one API request, unrounded."""
    in_factor = out_factor = price.fast_multiplier if fast else 1.0
    if price.long_context_premium and tokens.prompt_tokens > LONG_CONTEXT_THRESHOLD:
        in_factor *= 2.0
        out_factor *= 1.5
    return (
        tokens.input_tokens * price.input * in_factor
        + tokens.cache_creation_5m_input_tokens * price.cache_write_5m * in_factor
        + tokens.cache_creation_1h_input_tokens * price.cache_write_1h * in_factor
        + tokens.cache_read_input_tokens * price.cache_read * in_factor
        + tokens.output_tokens * price.output * out_factor
    ) / _MTOK


def round_usd(value: float) -> float:
    """Costs are reported to the micro-dollar."""
    return round(value, 6)
