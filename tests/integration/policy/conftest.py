"""Policy integration tests reuse the attestation builders of tests/unit/backend and the seed files."""

from __future__ import annotations

import sys
from pathlib import Path

_BUILDERS = Path(__file__).resolve().parents[2] / "unit" / "backend"
if str(_BUILDERS) not in sys.path:
    sys.path.insert(0, str(_BUILDERS))
