from __future__ import annotations

import json
from typing import Any

import pytest
from evidence_fixtures import CLAUDE


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CLAUDE / "claude_transcripts.expected.json").read_text())
    return data
