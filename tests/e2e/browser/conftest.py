"""Browser fixtures: a stub API on 127.0.0.1 that serves `dashboard/` with real rollup numbers.
(`chromium`, `page` and `artifacts` are in tests/conftest.py: one browser for the whole run.)"""

from __future__ import annotations
