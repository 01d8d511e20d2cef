"""Security tests (docs/security.md): one test per mitigation, on real parts — the `stack` fixture
(template.yaml on moto, in-process), the real redaction, keys and DSSE envelopes generated here,
and `tracemark serve` over real HTTP where the threat is the network edge."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_BUILDERS = Path(__file__).resolve().parents[1] / "unit" / "backend"
if str(_BUILDERS) not in sys.path:
    sys.path.insert(0, str(_BUILDERS))

from attest_builders import commit_entry, evidence, public_pem, sign, statement  # noqa: E402

from tracemark_common import dsse  # noqa: E402


def call(stack: Any, method: str, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    """One request through the HTTP API emulator (real API Gateway v2 events, real handlers)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    status, _, body = stack.invoke_http(method, path, headers=headers, **kwargs)
    return status, body


def ok(stack: Any, method: str, path: str, token: str | None = None, status: int = 200, **kwargs: Any) -> Any:
    code, body = call(stack, method, path, token, **kwargs)
    assert code == status, body
    return body


@dataclass
class Member:
    subject: str
    token: str
    token_id: str
    key: dsse.PrivateKey


@dataclass
class Tenant:
    org: str
    admin: str
    stack: Any

    def member(self, subject: str, *, kind: str = "user", register_key: bool = True, **extra: Any) -> Member:
        body = ok(
            self.stack, "POST", "/v1/tokens", self.admin, 201, json_body={"subject": subject, "kind": kind, **extra}
        )
        key = dsse.generate_private_key()
        if register_key:
            ok(self.stack, "POST", "/v1/keys", body["token"], 201, json_body={"public_key_pem": public_pem(key)})
        return Member(subject, body["token"], body["id"], key)

    def envelope(self, member: Member, session: str, n: int = 1, **predicate: Any) -> dict[str, Any]:
        ev = evidence(session, commits=[commit_entry(n)])
        predicate.setdefault("org", self.org)
        signed: dict[str, Any] = sign(statement(ev, **predicate), member.key)
        return signed


@pytest.fixture
def new_tenant(stack: Any) -> Callable[[], Tenant]:
    """A fresh organisation (unique name) with a project `web`, made through the API."""

    def make() -> Tenant:
        org = "sec-" + uuid.uuid4().hex[:10]
        admin = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": org})["token"]
        ok(stack, "POST", "/v1/projects", admin, 201, json_body={"name": "web"})
        return Tenant(org, admin, stack)

    return make


def _load_fixtures(relative: str, name: str) -> Any:
    """Fixtures of another test folder's conftest, loaded under a unique module name."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_e2e = _load_fixtures("e2e/conftest.py", "tracemark_security_e2e_fixtures")
github_app_key = _e2e.github_app_key
served_stack = _e2e.served_stack  # the real `tracemark serve` in a subprocess
