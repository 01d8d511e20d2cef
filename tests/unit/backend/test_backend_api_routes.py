"""The ApiFunction's core routes on in-memory services: real API Gateway v2 events into the real
resolver (no sockets, no AWS). Covers the role/scope matrix, tenancy isolation and bad input."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from attest_builders import (
    ADMIN_TOKEN,
    AUTH,
    FakePolicies,
    RecordingRollups,
    commit_entry,
    evidence,
    http_event,
    public_pem,
    sha,
    sign,
    statement,
)

from tracemark_common import dsse
from tracemark_common.http.services import Services, use_services
from tracemark_common.store.memory import MemoryBlobs, MemoryStore

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = (
    "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata:\n  name: web\n"
    "spec:\n  materials:\n    - type: CHAINLOOP_AI_CODING_SESSION\n      name: session\n"
)


def _load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_app_under_test", ROOT / "functions" / "api" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


APP = _load_app()


class Api:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.blobs = MemoryBlobs()
        self.rollups = RecordingRollups()
        self.services = Services(
            store=self.store,
            blobs=self.blobs,
            auth_config=lambda: AUTH,
            policy_evaluator=FakePolicies(),
            rollup_writer=self.rollups,
            base_url="http://api.test",
        )

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        response = APP.app.resolve(http_event(method, path, token=token, **kwargs), None)
        body = response.get("body") or ""
        try:
            return response["statusCode"], json.loads(body) if body else None
        except json.JSONDecodeError:
            return response["statusCode"], body

    def ok(self, method: str, path: str, token: str | None = None, status: int = 200, **kwargs: Any) -> Any:
        code, body = self.call(method, path, token, **kwargs)
        assert code == status, body
        return body

    # a tenant with an admin, a member, a service account, a project and a registered key
    def tenant(self, org: str) -> dict[str, Any]:
        admin = self.ok("POST", "/v1/orgs", ADMIN_TOKEN, 201, json_body={"name": org})["token"]
        self.ok("POST", "/v1/projects", admin, 201, json_body={"name": "web"})
        member = self.ok("POST", "/v1/tokens", admin, 201, json_body={"subject": f"dev@{org}", "kind": "user"})
        service = self.ok("POST", "/v1/tokens", admin, 201, json_body={"subject": f"ci-{org}", "kind": "service"})
        key = dsse.generate_private_key()
        self.ok("POST", "/v1/keys", member["token"], 201, json_body={"public_key_pem": public_pem(key)})
        return {
            "admin": admin,
            "member": member["token"],
            "member_id": member["id"],
            "service": service["token"],
            "key": key,
            "org": org,
        }

    def push(self, tenant: dict[str, Any], session: str = "sess-1", **kwargs: Any) -> tuple[int, Any]:
        ev = evidence(session, commits=[commit_entry(1)])
        envelope = sign(statement(ev, org=tenant["org"], **kwargs), tenant["key"])
        return self.call("POST", "/v1/attestations", tenant["member"], json_body=envelope)


@pytest.fixture
def api() -> Iterator[Api]:
    instance = Api()
    use_services(instance.services)
    yield instance
    use_services(None)


def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert api.ok("GET", "/healthz") == {"status": "ok"}
    doc = api.ok("GET", "/v1/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert "post" in doc["paths"]["/v1/attestations"]
    from tracemark_common.routes import ROUTES

    for route in ROUTES:  # every declared route is described, with its path parameters
        operation = doc["paths"][route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"] == [
            part[1:-1] for part in route.path.split("/") if part.startswith("{")
        ]
    assert doc["paths"]["/v1/orgs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "name"
    ]


def test_whoami_for_each_kind_of_token(api: Api) -> None:
    t = api.tenant("acme")
    assert api.ok("GET", "/v1/whoami", ADMIN_TOKEN)["role"] == "server_admin"
    who = api.ok("GET", "/v1/whoami", t["admin"])
    assert (who["org"], who["role"], who["scopes"]) == ("acme", "org_admin", ["push", "read", "admin"])
    who = api.ok("GET", "/v1/whoami", t["member"])
    assert (who["subject"], who["role"], who["scopes"]) == ("dev@acme", "member", ["push", "read"])
    who = api.ok("GET", "/v1/whoami", t["service"])
    assert (who["role"], who["scopes"], who["kind"]) == ("service", ["push"], "service")
    code, body = api.call("GET", "/v1/whoami")
    assert code == 401 and body["error"]["code"] == "missing_token"


# (method, path, json body) -> status for: server admin, org admin, member, service
MATRIX: list[tuple[str, str, Any, tuple[int, int, int, int]]] = [
    ("POST", "/v1/orgs", {"name": "neworg"}, (201, 403, 403, 403)),
    ("POST", "/v1/projects", {"name": "p2"}, (403, 201, 403, 403)),
    ("GET", "/v1/projects/web", None, (403, 200, 200, 200)),
    ("GET", "/v1/projects/web/contract", None, (403, 200, 200, 200)),
    ("PUT", "/v1/projects/web/contract", {"contract": CONTRACT}, (403, 200, 403, 403)),
    ("PUT", "/v1/policies/mine", {"policy": "package main\n"}, (403, 201, 403, 403)),
    ("GET", "/v1/policies/mine", None, (403, 404, 403, 403)),
    ("PUT", "/v1/org/settings", {"gate_default": True}, (403, 200, 403, 403)),
    ("POST", "/v1/tokens", {"subject": "x", "kind": "user"}, (403, 201, 403, 403)),
    ("GET", "/v1/sessions", None, (403, 200, 200, 403)),
    ("POST", "/v1/uploads", {}, (403, 201, 201, 201)),
    ("DELETE", "/v1/sessions/nope", None, (403, 404, 403, 403)),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX)
def test_role_and_scope_matrix(api: Api, method: str, path: str, body: Any, expected: tuple[int, ...]) -> None:
    t = api.tenant("acme")
    for who, token, status in zip(
        ("server admin", "org admin", "member", "service"),
        (ADMIN_TOKEN, t["admin"], t["member"], t["service"]),
        expected,
        strict=True,
    ):
        code, response = api.call(method, path, token, json_body=body)
        assert code == status, f"{who}: {code} {response}"
        if code >= 400:
            assert set(response["error"]) == {"code", "message"}


def test_org_a_can_never_read_or_write_org_b(api: Api) -> None:
    a, b = api.tenant("org-a"), api.tenant("org-b")
    status, body = api.push(b)
    assert status == 201
    key_b = dsse.keyid(b["key"].public_key())
    # org A's admin sees none of org B's things, by id or by listing
    assert api.call("GET", "/v1/sessions/sess-1", a["admin"])[0] == 404
    assert api.ok("GET", "/v1/sessions", a["admin"])["items"] == []
    assert api.call("GET", f"/v1/keys/{key_b}", a["admin"])[0] == 404
    assert api.call("DELETE", f"/v1/keys/{key_b}", a["admin"])[0] == 404
    assert api.call("DELETE", f"/v1/tokens/{b['member_id']}", a["admin"])[0] == 404
    assert api.call("DELETE", "/v1/sessions/sess-1", a["admin"])[0] == 404
    # org A cannot push into org B's name, even with a valid envelope of its own
    status, body = api.push(a)
    assert status == 201
    ev = evidence("x", commits=[commit_entry(2)])
    envelope = sign(statement(ev, org="org-b"), a["key"])
    code, body = api.call("POST", "/v1/attestations", a["member"], json_body=envelope)
    assert code == 409 and body["error"]["code"] == "org_mismatch"
    # and org B's session is still intact
    assert api.ok("GET", "/v1/sessions/sess-1", b["member"])["user"] == "dev@org-b"
    # a cursor can't be pointed at the other tenant either: it only carries sort positions
    assert api.call("GET", "/v1/sessions", a["admin"], query={"cursor": "eyJwayI6ICJPUkcjb3JnLWIifQ=="})[0] == 400


def test_push_then_read_the_session(api: Api) -> None:
    t = api.tenant("acme")
    envelope = sign(statement(evidence("sess-1", commits=[commit_entry(1)]), org="acme"), t["key"])
    body = api.ok("POST", "/v1/attestations", t["member"], 201, json_body=envelope)
    assert body["sessions"] == [{"id": "sess-1", "url": "http://api.test/v1/sessions/sess-1"}]
    assert api.ok("POST", "/v1/attestations", t["member"], 200, json_body=envelope) == body
    listing = api.ok("GET", "/v1/sessions", t["member"])
    assert [item["id"] for item in listing["items"]] == ["sess-1"]
    assert listing["next_cursor"] is None
    one = api.ok("GET", "/v1/sessions/sess-1", t["member"])
    assert one["evidence"]["data"]["session"]["id"] == "sess-1"
    assert one["commit_shas"] == [sha(1)]
    assert one["policy_results"][0]["policy"] == "token-budget"
    assert one["prs"] == []
    assert 0 <= one["score"]["score"] <= 100  # scored at ingest, before any PR (SPEC §3.6)
    # raw transcripts are readable only by their pusher and admins
    assert "raw_session" in one["evidence"]["data"]
    other = api.ok("POST", "/v1/tokens", t["admin"], 201, json_body={"subject": "eve", "kind": "user"})["token"]
    assert "raw_session" not in api.ok("GET", "/v1/sessions/sess-1", other)["evidence"]["data"]
    assert "raw_session" in api.ok("GET", "/v1/sessions/sess-1", t["admin"])["evidence"]["data"]


def test_sessions_pagination_and_filters(api: Api) -> None:
    t = api.tenant("acme")
    now = datetime.now(UTC).replace(microsecond=0)

    def at(hours_ago: float) -> str:
        return (now - timedelta(hours=hours_ago)).isoformat()

    for n in range(5):
        ev = evidence(f"s{n}", ended=at(28 - n * 6), started=at(29 - n * 6), commits=[commit_entry(n + 1)])
        api.ok("POST", "/v1/attestations", t["member"], 201, json_body=sign(statement(ev, org="acme"), t["key"]))
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.ok("GET", "/v1/sessions", t["member"], query=query)
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["s4", "s3", "s2", "s1", "s0"]
    assert [i["id"] for i in api.ok("GET", "/v1/sessions", t["member"], query={"user": "nobody"})["items"]] == []
    assert len(api.ok("GET", "/v1/sessions", t["member"], query={"user": "dev@acme", "project": "web"})["items"]) == 5
    assert [i["id"] for i in api.ok("GET", "/v1/sessions", t["member"], query={"range": "24h"})["items"]] == [
        "s4",
        "s3",
        "s2",
        "s1",
    ]
    since = {"since": at(17), "until": at(5)}
    assert [i["id"] for i in api.ok("GET", "/v1/sessions", t["member"], query=since)["items"]] == ["s3", "s2"]
    for bad in ({"limit": "0"}, {"limit": "x"}, {"range": "1y"}, {"cursor": "!!"}, {"since": "soon"}, {"evil": "1"}):
        assert api.call("GET", "/v1/sessions", t["member"], query=bad)[0] == 400, bad


def test_tokens_revocation_cascades_to_keys(api: Api) -> None:
    t = api.tenant("acme")
    keyid = dsse.keyid(t["key"].public_key())
    revoked = api.ok("DELETE", f"/v1/tokens/{t['member_id']}", t["admin"])
    assert revoked["revoked_at"]
    code, body = api.call("GET", "/v1/whoami", t["member"])
    assert code == 401 and body["error"]["code"] == "token_revoked"
    assert api.ok("GET", f"/v1/keys/{keyid}", t["admin"])["revoked_at"]
    assert api.call("DELETE", "/v1/tokens/tok_00000000000000000000000000000000", t["admin"])[0] == 404
    assert api.call("DELETE", "/v1/tokens/garbage", t["admin"])[0] == 404


def test_token_minting_rules(api: Api) -> None:
    t = api.tenant("acme")
    bad_bodies = [
        {"kind": "user"},
        {"subject": "", "kind": "user"},
        {"subject": "a b", "kind": "user"},
        {"subject": "x", "kind": "robot"},
        {"subject": "x", "ttl_seconds": 0},
        {"subject": "x", "ttl_seconds": 10**9},
        {"subject": "x", "ttl_seconds": True},
        {"subject": "x", "ttl": "forever"},
        {"subject": "x", "ttl": "0d"},
        {"subject": "x", "ttl": "400d"},
        {"subject": "x", "role": "server_admin"},
        {"subject": "x", "kind": "service", "role": "org_admin"},
        {"subject": "x", "scopes": ["root"]},
        {"subject": "x", "role": "member", "scopes": ["admin"]},
    ]
    for body in bad_bodies:
        code, response = api.call("POST", "/v1/tokens", t["admin"], json_body=body)
        assert code == 400, (body, response)
    minted = api.ok(
        "POST",
        "/v1/tokens",
        t["admin"],
        201,
        json_body={"subject": "lead", "kind": "user", "role": "org_admin", "ttl_seconds": 3600},
    )
    assert api.ok("GET", "/v1/whoami", minted["token"])["role"] == "org_admin"
    for ttl, seconds in (("12h", 43200), ("30d", 30 * 86400), (600, 600)):
        token = api.ok("POST", "/v1/tokens", t["admin"], 201, json_body={"subject": "t", "ttl": ttl})
        expires = datetime.fromisoformat(token["expires_at"])
        assert abs((expires - datetime.now(UTC)).total_seconds() - seconds) < 120


def test_keys_registration_rules(api: Api) -> None:
    t = api.tenant("acme")
    key = dsse.generate_private_key("ed25519")
    pem = public_pem(key)
    created = api.ok("POST", "/v1/keys", t["member"], 201, json_body={"public_key_pem": pem})
    assert created["keyid"] == dsse.keyid(key.public_key())
    # idempotent for the same owner, a conflict for anyone else
    assert api.ok("POST", "/v1/keys", t["member"], 200, json_body={"public_key_pem": pem})["keyid"] == created["keyid"]
    code, body = api.call("POST", "/v1/keys", t["admin"], json_body={"public_key_pem": pem})
    assert code == 409 and body["error"]["code"] == "key_exists"
    # service tokens only with can_register_keys
    assert api.call("POST", "/v1/keys", t["service"], json_body={"public_key_pem": pem})[0] == 403
    ci = api.ok(
        "POST",
        "/v1/tokens",
        t["admin"],
        201,
        json_body={"subject": "ci2", "kind": "service", "can_register_keys": True},
    )["token"]
    api.ok("POST", "/v1/keys", ci, 201, json_body={"public_key_pem": public_pem(dsse.generate_private_key())})
    # bad keys
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for body in ({}, {"public_key_pem": 5}, {"public_key_pem": "x" * 10_000}):
        assert api.call("POST", "/v1/keys", t["member"], json_body=body)[0] == 400
    for bad in ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", rsa_pem):
        code, body = api.call("POST", "/v1/keys", t["member"], json_body={"public_key_pem": bad})
        assert code == 422 and body["error"]["code"] == "invalid_key"
    # owner or admin may revoke; another member may not
    other = api.ok("POST", "/v1/tokens", t["admin"], 201, json_body={"subject": "eve"})["token"]
    assert api.call("DELETE", f"/v1/keys/{created['keyid']}", other)[0] == 403
    assert api.ok("DELETE", f"/v1/keys/{created['keyid']}", t["member"])["revoked_at"]
    code, body = api.call("POST", "/v1/keys", t["member"], json_body={"public_key_pem": pem})
    assert code == 409 and body["error"]["code"] == "key_revoked"
    assert api.ok("GET", f"/v1/keys/{created['keyid']}", t["member"])["pem"].startswith("-----BEGIN PUBLIC KEY")
    assert api.call("GET", "/v1/keys/" + "0" * 64, t["member"])[0] == 404


def test_orgs_and_projects_bad_input_and_conflicts(api: Api) -> None:
    api.tenant("acme")
    code, body = api.call("POST", "/v1/orgs", ADMIN_TOKEN, json_body={"name": "acme"})
    assert code == 409 and body["error"]["code"] == "org_exists"
    for name in ("", "UPPER", "a#b", "x" * 64, 5):
        assert api.call("POST", "/v1/orgs", ADMIN_TOKEN, json_body={"name": name})[0] == 400
    admin = api.ok("POST", "/v1/orgs", ADMIN_TOKEN, 201, json_body={"name": "zeta"})["token"]
    assert api.call("POST", "/v1/projects", admin, json_body={"name": "web"})[0] == 201
    code, body = api.call("POST", "/v1/projects", admin, json_body={"name": "web"})
    assert code == 409 and body["error"]["code"] == "project_exists"
    for name in ("", "a/b", "../x", " x", None):
        assert api.call("POST", "/v1/projects", admin, json_body={"name": name})[0] == 400
    code, body = api.call("GET", "/v1/projects/none", admin)
    assert code == 404 and body["error"]["code"] == "unknown_project"


def test_contract_and_policy_documents(api: Api) -> None:
    t = api.tenant("acme")
    contract = CONTRACT
    api.ok("PUT", "/v1/projects/web/contract", t["admin"], body=contract, headers={"Content-Type": "application/yaml"})
    got = api.ok("GET", "/v1/projects/web/contract", t["member"])
    assert got["contract"] == contract
    assert api.ok("GET", "/v1/projects/web", t["member"])["has_contract"] is True
    for bad in ("", "\x00", ":\n- ["):
        code, _ = api.call(
            "PUT", "/v1/projects/web/contract", t["admin"], body=bad, headers={"Content-Type": "application/yaml"}
        )
        assert 400 <= code < 500
    assert api.call("PUT", "/v1/projects/web/contract", t["admin"], body="x" * (300 * 1024))[0] == 413
    assert api.call("PUT", "/v1/projects/nope/contract", t["admin"], body=contract)[0] == 404
    rego = 'package main\n\nimport rego.v1\n\nviolations contains msg if {\n  false\n  msg := "x"\n}\n'
    assert api.call("PUT", "/v1/policies/my-policy", t["admin"], body=rego)[0] == 201
    assert api.call("PUT", "/v1/policies/my-policy", t["admin"], body=rego)[0] == 200
    assert api.ok("GET", "/v1/policies/my-policy", t["admin"])["policy"] == rego
    assert api.call("PUT", "/v1/policies/Bad%20Name", t["admin"], body=rego)[0] in (400, 404)
    assert api.ok("PUT", "/v1/org/settings", t["admin"], json_body={"gate_default": True})["settings"] == {
        "gate_default": True
    }
    assert api.call("PUT", "/v1/org/settings", t["admin"], json_body={"gate_default": "yes"})[0] == 400
    assert api.call("PUT", "/v1/org/settings", t["admin"], json_body={"root": True})[0] == 400


def test_attestation_bad_input_over_http(api: Api) -> None:
    t = api.tenant("acme")
    cases = [
        (b"", 400),
        (b"{", 400),
        (b'{"a": 1, "a": 2}', 400),
        (b"[]", 400),
        (b"x" * (4 * 1024 * 1024 + 1), 413),
        (json.dumps({"upload_id": "up_" + "0" * 32}).encode(), 404),
        (json.dumps({"upload_id": "../../etc"}).encode(), 400),
    ]
    for body, status in cases:
        code, response = api.call(
            "POST", "/v1/attestations", t["member"], body=body, headers={"Content-Type": "application/json"}
        )
        assert code == status, (body[:40], response)
        assert response["error"]["message"]
    assert api.call("POST", "/v1/attestations", None, json_body={})[0] == 401
    assert not api.store.sessions and not api.store.attestations


def test_large_envelopes_go_through_uploads(api: Api) -> None:
    t = api.tenant("acme")
    upload = api.ok("POST", "/v1/uploads", t["member"], 201, json_body={"kind": "attestation"})
    assert upload["method"] == "PUT" and upload["url"]
    ev = evidence("big", commits=[commit_entry(1)])
    ev["data"]["warnings"] = ["w" * 1000] * 5000  # ~5 MB of evidence
    envelope = json.dumps(sign(statement(ev, org="acme"), t["key"])).encode()
    assert len(envelope) > 4 * 1024 * 1024
    assert (
        api.call("POST", "/v1/attestations", t["member"], body=envelope, headers={"Content-Type": "application/json"})[
            0
        ]
        == 413
    )
    api.blobs.put(f"uploads/acme/{upload['upload_id']}", envelope)  # what the presigned PUT does
    created = api.ok("POST", "/v1/attestations", t["member"], 201, json_body={"upload_id": upload["upload_id"]})
    assert created["sessions"][0]["id"] == "big"
    assert f"uploads/acme/{upload['upload_id']}" not in api.blobs.objects
    # reading it back stays under the Lambda response limit: raw lines out, a link for the owner
    ev["data"]["raw_session"] = {"main": [{"type": "user", "message": {"content": "r" * 1000}}] * 5000}
    ev["data"]["warnings"] = []
    huge = json.dumps(sign(statement(ev, org="acme"), t["key"])).encode()
    upload = api.ok("POST", "/v1/uploads", t["member"], 201, json_body={})
    api.blobs.put(f"uploads/acme/{upload['upload_id']}", huge)
    api.ok("POST", "/v1/attestations", t["member"], 201, json_body={"upload_id": upload["upload_id"]})
    mine = api.ok("GET", "/v1/sessions/big", t["member"])
    assert "raw_session" not in mine["evidence"]["data"] and mine["evidence_truncated"]
    assert mine["evidence_url"].startswith("memory://download/evidence/acme/")
    other = api.ok("POST", "/v1/tokens", t["admin"], 201, json_body={"subject": "eve"})["token"]
    theirs = api.ok("GET", "/v1/sessions/big", other)
    assert "evidence_url" not in theirs and "raw_session" not in theirs["evidence"]["data"]
    # another org cannot use the upload id
    b = api.tenant("org-b")
    assert api.call("POST", "/v1/attestations", b["member"], json_body={"upload_id": upload["upload_id"]})[0] == 404
    # transcript uploads are keyed by their hash
    assert api.call("POST", "/v1/uploads", t["member"], json_body={"kind": "transcript"})[0] == 400
    assert api.call("POST", "/v1/uploads", t["member"], json_body={"kind": "zip"})[0] == 400
    tr = api.ok("POST", "/v1/uploads", t["member"], 201, json_body={"kind": "transcript", "sha256": "a" * 64})
    assert tr["upload_id"] == "tr_" + "a" * 64


def test_delete_session_by_admin(api: Api) -> None:
    t = api.tenant("acme")
    api.push(t)
    assert api.call("DELETE", "/v1/sessions/sess-1", t["member"])[0] == 403
    assert api.ok("DELETE", "/v1/sessions/sess-1", t["admin"]) == {"id": "sess-1", "deleted": True}
    assert api.call("GET", "/v1/sessions/sess-1", t["admin"])[0] == 404
    assert api.call("DELETE", "/v1/sessions/sess-1", t["admin"])[0] == 404
    assert api.rollups.calls[-1][1] is None


def test_unknown_paths_and_methods(api: Api) -> None:
    code, body = api.call("GET", "/v1/nothing-here")
    assert code == 404 and body["error"]["code"] == "not_found"
    code, body = api.call("PATCH", "/v1/sessions")
    assert code == 405
