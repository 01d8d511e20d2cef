"""Builders for backend tests: evidence from the Chainloop fixture, in-toto statements, DSSE
envelopes signed with keys generated per test, API Gateway v2 events, and fakes of the policy
engine and the rollup writer. Shared by tests/unit/backend and tests/integration/backend."""

from __future__ import annotations

import base64
import copy
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tracemark_common import dsse
from tracemark_common.auth import AuthConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chainloop"
JWT_SECRET = "test-jwt-secret-" + "k" * 40
ADMIN_TOKEN = "test-admin-token-" + "a" * 40
ISSUER = "tracemark-test"
AUTH = AuthConfig(jwt_secret=JWT_SECRET, admin_token=ADMIN_TOKEN, issuer=ISSUER)


def sha(n: int) -> str:
    return f"{n:040x}"


def evidence(
    session_id: str = "sess-1",
    *,
    started: str = "2026-11-20T10:00:00Z",
    ended: str | None = "2026-11-20T11:00:00Z",
    commits: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    models: list[str] | None = None,
    raw_session: bool = True,
) -> dict[str, Any]:
    """The fixture `ai-coding-session.json`, with our fields set."""
    envelope = json.loads((FIXTURES / "ai-coding-session.json").read_text())
    data = envelope["data"]
    data["session"]["id"] = session_id
    data["session"]["started_at"] = started
    if ended is None:
        data["session"].pop("ended_at", None)
    else:
        data["session"]["ended_at"] = ended
    if commits is not None:
        data["git_context"]["tracemark_commits"] = commits
    if usage is not None:
        data["usage"] = usage
    if models is not None:
        data["model"] = {"primary": models[0], "provider": "anthropic", "models_used": sorted(models)}
    if not raw_session:
        data.pop("raw_session", None)
    return envelope


def commit_entry(n: int, *, added: int = 10, ai: int = 8, rewritten_from: list[int] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "sha": sha(n),
        "files": [
            {"path": "a.py", "status": "modified", "lines_added": ai, "lines_removed": 0, "attribution": "ai"},
            {
                "path": "b.py",
                "status": "modified",
                "lines_added": added - ai,
                "lines_removed": 0,
                "attribution": "human",
            },
        ],
        "line_ranges": [],
        "signature": "N",
    }
    if rewritten_from:
        entry["rewritten_from"] = [sha(r) for r in rewritten_from]
    return entry


def statement(
    ev: dict[str, Any],
    *,
    org: str = "acme",
    project: str = "web",
    subjects: list[str] | None = None,
    **predicate_extra: Any,
) -> dict[str, Any]:
    if subjects is None:
        entries = ev["data"].get("git_context", {}).get("tracemark_commits") or []
        subjects = [e["sha"] for e in entries] or [sha(1)]
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": s, "digest": {"gitCommit": s}} for s in subjects],
        "predicateType": "https://tracemark.dev/ai-coding-session/v1",
        "predicate": {
            "evidence": ev,
            "project": project,
            "organization": org,
            "cli_version": "0.1.0",
            **predicate_extra,
        },
    }


def sign(
    stmt: dict[str, Any] | bytes, key: dsse.PrivateKey, payload_type: str = dsse.INTOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    payload = stmt if isinstance(stmt, bytes) else json.dumps(stmt).encode()
    return dsse.sign(payload, key, payload_type)


def public_pem(key: dsse.PrivateKey) -> str:
    return dsse.public_key_pem(key.public_key())


def http_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event, as the real service sends it."""
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    if json_body is not None:
        body = json.dumps(json_body)
        all_headers.setdefault("content-type", "application/json")
    is_b64 = isinstance(body, bytes)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": all_headers,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.test",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "req",
            "routeKey": "$default",
            "stage": "$default",
            "time": "20/Nov/2026:10:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": base64.b64encode(body).decode() if isinstance(body, bytes) else body,
        "isBase64Encoded": is_b64,
    }


@dataclass
class FakeReport:
    results: list[dict[str, Any]]
    gated: bool


@dataclass
class FakePolicies:
    """Stands in for `tracemark_common.policy.evaluate_session`: a token budget, gated when the
    contract text says `gate: true`, and a record of every call."""

    budget: int = 500_000
    calls: list[tuple[str | None, dict[str, str], bool]] = field(default_factory=list)

    def __call__(
        self, contract_yaml: str | None, org_policies: Any, gate_default: bool, envelope: dict[str, Any]
    ) -> FakeReport:
        self.calls.append((contract_yaml, dict(org_policies), gate_default))
        tokens = envelope["data"].get("usage", {}).get("total_tokens", 0)
        gate = gate_default or "gate: true" in (contract_yaml or "")
        violations = [f"token budget exceeded: {tokens} > {self.budget}"] if tokens > self.budget else []
        result = {
            "policy": "token-budget",
            "status": "fail" if violations else "pass",
            "violations": violations,
            "gate": gate,
        }
        return FakeReport(results=[result], gated=bool(violations) and gate)


class RecordingRollups:
    """Records every (before, after) the rollup writer receives that changes what it counts (as
    the real writer's ledger does, a call with the facts already counted is a no-op)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.applied: dict[str, Any] = {}
        self.sweeps: list[str] = []
        self._lock = threading.Lock()

    def record_session(self, before: Any, after: Any) -> None:
        facts = after or before
        with self._lock:
            if facts is None or (facts.session_id in self.applied and self.applied[facts.session_id] == after):
                return
            self.applied[facts.session_id] = copy.deepcopy(after)
            self.calls.append((copy.deepcopy(before), copy.deepcopy(after)))

    def complete_pending(self, org: str) -> int:
        with self._lock:
            self.sweeps.append(org)
        return 0
