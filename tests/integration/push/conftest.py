from __future__ import annotations

from collections.abc import Iterator

import pytest
from push_server import PushServer


@pytest.fixture
def server() -> Iterator[PushServer]:
    srv = PushServer().start()
    try:
        yield srv
    finally:
        srv.close()
