"""Backend integration tests share the builders of tests/unit/backend (evidence, envelopes)."""

from __future__ import annotations

import sys
from pathlib import Path

_BUILDERS = Path(__file__).resolve().parents[2] / "unit" / "backend"
if str(_BUILDERS) not in sys.path:
    sys.path.insert(0, str(_BUILDERS))
