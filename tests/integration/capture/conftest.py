"""Fixtures: a real git repository in a temp dir, bare or with `tracemark init` done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from capture_workspace import Workspace, make_repo


@pytest.fixture
def bare_repo(tmp_path: Path) -> Workspace:
    return make_repo(tmp_path)


@pytest.fixture
def ws(bare_repo: Workspace) -> Iterator[Workspace]:
    proc = bare_repo.tracemark("init", "--project", "demo", "--offline")
    assert proc.returncode == 0, proc.stderr
    bare_repo.git("add", "-A")
    bare_repo.git("commit", "-q", "-m", "tracemark init")
    yield bare_repo
