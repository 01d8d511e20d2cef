"""Shared pieces of the fuzz suite. The Hypothesis settings: derandomized (the same examples on every run, so CI
neither flakes nor drifts), no example database, no per-example deadline (a loopback server and a
cold interpreter have jitter; the run time is bounded by the example counts instead).

Imported by the test modules rather than loaded as a global profile, so the rest of the suite keeps
its own Hypothesis settings when it runs in the same session."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)


def fuzz(max_examples: int) -> settings:
    """FUZZ with another example budget."""
    return settings(FUZZ, max_examples=max_examples)


@dataclass(frozen=True)
class FuzzStack:
    """A running `tracemark serve` and the identities the fuzzer calls it with."""

    url: str
    admin_token: str  # the server admin (opaque secret)
    org: str
    org_admin_token: str  # minted by POST /v1/orgs
    member_token: str  # a user token minted by POST /v1/tokens
    project: str
