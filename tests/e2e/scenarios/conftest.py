"""Fixtures of the scenario suite (the served stack itself comes from tests/e2e/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from scenario_kit import Link


@pytest.fixture
def link(served_stack: Any) -> Iterator[Link]:
    """A developer's network path to the served stack, which the test can cut and restore."""
    relay = Link(served_stack.url)
    try:
        yield relay
    finally:
        relay.close()
