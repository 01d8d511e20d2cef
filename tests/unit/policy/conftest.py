"""Shared builders for the policy tests: real evidence fixtures and small hand-made variants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from policy_helpers import load_evidence, with_changes


@pytest.fixture
def evidence() -> dict[str, Any]:
    """Chainloop's example with attribution: claude-opus-4-6, 302 tokens, 8 of 11 lines by AI."""
    return load_evidence("ai-coding-session-with-attribution.json")


@pytest.fixture
def variant(evidence: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    def build(**changes: Any) -> dict[str, Any]:
        return with_changes(evidence, {key.replace("__", "."): value for key, value in changes.items()})

    return build
