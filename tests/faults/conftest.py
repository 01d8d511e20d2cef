"""Fault-injection tests: the local stack (moto in-process) with botocore hooks on the real
clients, the fake GitHub on loopback, and the real `tracemark serve` for the concurrency tests.

They share the attestation builders of tests/unit/backend and the `served_stack` fixture of
tests/e2e (loaded by path: test folders are not packages)."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_tools import BotoFaults, ok

TESTS = Path(__file__).resolve().parents[1]
for _extra in (TESTS / "unit" / "backend", TESTS / "e2e"):
    if str(_extra) not in sys.path:
        sys.path.insert(0, str(_extra))


def _e2e_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("tracemark_e2e_conftest_for_faults", TESTS / "e2e" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_E2E = _e2e_fixtures()
served_stack = _E2E.served_stack  # the real `tracemark serve` subprocess + fake GitHub
github_app_key = _E2E.github_app_key


@pytest.fixture
def tenant(stack: Any) -> dict[str, Any]:
    """An org with project `web`, a member token and its registered signing key."""
    from attest_builders import public_pem

    from tracemark_common import dsse

    org = "flt-" + uuid.uuid4().hex[:10]
    admin = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": org})["token"]
    ok(stack, "POST", "/v1/projects", admin, 201, json_body={"name": "web"})
    member = ok(stack, "POST", "/v1/tokens", admin, 201, json_body={"subject": "dev", "kind": "user"})
    key = dsse.generate_private_key()
    ok(stack, "POST", "/v1/keys", member["token"], 201, json_body={"public_key_pem": public_pem(key)})
    return {"org": org, "admin": admin, "member": member["token"], "key": key}


@pytest.fixture
def boto_faults(stack: Any) -> Iterator[BotoFaults]:
    """Hooks on the application table's pynamodb client (app store and GitHub store share it)
    and on the evidence bucket's S3 client; removed after the test."""
    from tracemark_common.store import default_blobs, default_store

    faults = BotoFaults()
    store: Any = default_store()
    blobs: Any = default_blobs()
    faults.attach(store._connection().client)
    faults.attach(blobs.client)
    try:
        yield faults
    finally:
        faults.detach()
