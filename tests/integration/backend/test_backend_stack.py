"""The ApiFunction on the local stack (template.yaml on moto, in-process): the DynamoDB and S3
adapters, the real policy engine and the real rollup writer behind real HTTP API events."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from attest_builders import FakePolicies, commit_entry, evidence, public_pem, sha, sign, statement

from tracemark_common import dsse
from tracemark_common.auth import Principal
from tracemark_common.ingest import ingest_attestation
from tracemark_common.store import (
    add_session_pr,
    default_blobs,
    default_store,
    get_session,
    sessions_for_commit,
    set_session_score,
)

pytestmark = pytest.mark.usefixtures("stack")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(stack: Any, method: str, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    headers = _bearer(token) if token else {}
    headers.update(kwargs.pop("headers", {}))
    status, _, body = stack.invoke_http(method, path, headers=headers, **kwargs)
    return status, body


def ok(stack: Any, method: str, path: str, token: str | None = None, status: int = 200, **kwargs: Any) -> Any:
    code, body = call(stack, method, path, token, **kwargs)
    assert code == status, body
    return body


def recent(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat()


class Locked:
    """Serialises calls into moto. moto's in-process backends are not thread-safe (a failed
    TransactWriteItems restores a snapshot of the tables, losing concurrent writes; concurrent
    PUTs of one S3 key break). Real DynamoDB and S3 apply each call atomically, which is exactly
    what one lock around every store call gives: threads still interleave between calls."""

    lock = threading.Lock()

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def locked(*args: Any, **kwargs: Any) -> Any:
            with Locked.lock:
                return method(*args, **kwargs)

        return locked


@pytest.fixture
def tenant(stack: Any) -> dict[str, Any]:
    org = "it-" + uuid.uuid4().hex[:10]
    admin = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": org})["token"]
    ok(stack, "POST", "/v1/projects", admin, 201, json_body={"name": "web"})
    member = ok(stack, "POST", "/v1/tokens", admin, 201, json_body={"subject": "dev", "kind": "user"})
    key = dsse.generate_private_key()
    ok(stack, "POST", "/v1/keys", member["token"], 201, json_body={"public_key_pem": public_pem(key)})
    return {"org": org, "admin": admin, "member": member["token"], "member_id": member["id"], "key": key}


def envelope(tenant: dict[str, Any], session: str, commits: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    started, ended = kwargs.pop("started", recent(2)), kwargs.pop("ended", recent(1))
    ev = evidence(session, started=started, ended=ended, commits=commits, **kwargs)
    return sign(statement(ev, org=tenant["org"]), tenant["key"])


def dashboard(stack: Any, token: str) -> dict[str, Any]:
    body: dict[str, Any] = ok(stack, "GET", "/v1/dashboard/ai", token, query="range=7d")
    return body


def test_push_replay_merge_read_and_delete_through_the_stack(stack: Any, tenant: dict[str, Any]) -> None:
    org, member, admin = tenant["org"], tenant["member"], tenant["admin"]
    first = envelope(tenant, "s-1", [commit_entry(1), commit_entry(2)])
    created = ok(stack, "POST", "/v1/attestations", member, 201, json_body=first)
    assert created["sessions"][0]["id"] == "s-1"
    assert created["sessions"][0]["url"].endswith("/v1/sessions/s-1")
    # replays answer 200 with the stored result and count nothing
    for _ in range(3):
        assert ok(stack, "POST", "/v1/attestations", member, 200, json_body=first) == created
    assert dashboard(stack, admin)["cards"]["total_sessions"]["value"] == 1
    # a later push of the same session merges: commit 2 amended into 3
    second = envelope(tenant, "s-1", [commit_entry(3, rewritten_from=[2]), commit_entry(4)], ended=recent(0.5))
    ok(stack, "POST", "/v1/attestations", member, 201, json_body=second)
    one = ok(stack, "GET", "/v1/sessions/s-1", member)
    assert one["commit_shas"] == [sha(1), sha(3), sha(4)]
    assert len(one["attestations"]) == 2
    assert one["evidence"]["data"]["session"]["id"] == "s-1"
    assert dashboard(stack, admin)["cards"]["total_sessions"]["value"] == 1
    # the commit index answers for direct and rewritten shas; other orgs see nothing
    assert sessions_for_commit(org, sha(2)) == ["s-1"]
    assert sessions_for_commit(org, sha(4)) == ["s-1"]
    assert sessions_for_commit("someone-else", sha(4)) == []
    # score and PR links written by the PR workflow show up on the session
    assert set_session_score(org, "s-1", {"score": 87, "flag": "green"})
    assert add_session_pr(org, "s-1", {"repo_id": 1, "number": 7, "url": "https://github.test/pr/7"})
    assert add_session_pr(org, "s-1", {"repo_id": 1, "number": 7, "url": "https://github.test/pr/7"})
    record = get_session(org, "s-1")
    assert record is not None and record.score == {"score": 87, "flag": "green"} and len(record.prs) == 1
    assert record.evidence["data"]["git_context"]["tracemark_commits"][-1]["sha"] == sha(4)
    assert not set_session_score(org, "missing", {"score": 1})
    listing = ok(stack, "GET", "/v1/sessions", member)
    assert [i["id"] for i in listing["items"]] == ["s-1"] and listing["items"][0]["score"] == 87
    # erase: gone from reads, the index and the dashboard
    ok(stack, "DELETE", "/v1/sessions/s-1", admin)
    assert call(stack, "GET", "/v1/sessions/s-1", member)[0] == 404
    assert sessions_for_commit(org, sha(1)) == []
    assert dashboard(stack, admin)["cards"]["total_sessions"]["value"] == 0


def test_sessions_pagination_on_dynamodb(stack: Any, tenant: dict[str, Any]) -> None:
    for n in range(7):
        ok(
            stack,
            "POST",
            "/v1/attestations",
            tenant["member"],
            201,
            json_body=envelope(tenant, f"p{n}", [commit_entry(10 + n)], started=recent(21 - n), ended=recent(20 - n)),
        )
    seen: list[str] = []
    cursor = ""
    while True:
        page = ok(stack, "GET", "/v1/sessions", tenant["member"], query=f"limit=3{cursor}")
        seen += [item["id"] for item in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [f"p{n}" for n in reversed(range(7))]
    by_user = ok(stack, "GET", "/v1/sessions", tenant["member"], query="user=dev&project=web&limit=100")
    assert len(by_user["items"]) == 7
    assert ok(stack, "GET", "/v1/sessions", tenant["member"], query="project=other")["items"] == []


def test_rejections_store_nothing(stack: Any, tenant: dict[str, Any]) -> None:
    member = tenant["member"]
    stranger = dsse.generate_private_key()
    ev = evidence("bad", started=recent(2), ended=recent(1), commits=[commit_entry(1)])
    cases: list[tuple[Any, int, str]] = [
        (sign(statement(ev, org=tenant["org"]), stranger), 422, "unknown_key"),
        (sign(statement(ev, org="not-mine"), tenant["key"]), 409, "org_mismatch"),
        (sign(statement(ev, org=tenant["org"], project="nope"), tenant["key"]), 404, "unknown_project"),
    ]
    broken = statement(ev, org=tenant["org"])
    broken["predicate"]["evidence"]["data"]["agent"] = {}
    cases.append((sign(broken, tenant["key"]), 422, "schema_violation"))
    for body, status, code in cases:
        got, response = call(stack, "POST", "/v1/attestations", member, json_body=body)
        assert (got, response["error"]["code"]) == (status, code)
    got, response = call(
        stack,
        "POST",
        "/v1/attestations",
        member,
        body=b'{"x": 1, "x": 2}',
        headers={"Content-Type": "application/json"},
    )
    assert got == 400
    got, _ = call(
        stack,
        "POST",
        "/v1/attestations",
        member,
        body=b"{" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert got == 413
    assert ok(stack, "GET", "/v1/sessions", member)["items"] == []
    assert get_session(tenant["org"], "bad") is None


def test_tokens_and_keys_on_dynamodb(stack: Any, tenant: dict[str, Any]) -> None:
    keyid = dsse.keyid(tenant["key"].public_key())
    key = ok(stack, "GET", f"/v1/keys/{keyid}", tenant["admin"])
    assert key["subject"] == "dev" and key["revoked_at"] is None
    ok(stack, "DELETE", f"/v1/tokens/{tenant['member_id']}", tenant["admin"])
    assert call(stack, "GET", "/v1/whoami", tenant["member"])[1]["error"]["code"] == "token_revoked"
    assert ok(stack, "GET", f"/v1/keys/{keyid}", tenant["admin"])["revoked_at"]
    other = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": tenant["org"] + "-b"})["token"]
    assert call(stack, "GET", f"/v1/keys/{keyid}", other)[0] == 404


def test_contract_policies_and_gate_with_the_real_engine(stack: Any, tenant: dict[str, Any]) -> None:
    admin = tenant["admin"]
    budget = (
        "package main\n\nimport rego.v1\n\nvalid_input if {\n  input.data.usage.total_tokens\n}\n\n"
        "violations contains msg if {\n  input.data.usage.total_tokens > 100\n"
        '  msg := sprintf("Session used %d tokens", [input.data.usage.total_tokens])\n}\n'
    )
    ok(stack, "PUT", "/v1/policies/tiny-budget", admin, 201, body=budget, headers={"Content-Type": "text/plain"})
    contract = (
        "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata:\n  name: web\nspec:\n  materials:\n"
        "    - type: CHAINLOOP_AI_CODING_SESSION\n      name: session\n  policies:\n    materials:\n"
        "      - ref: policy:tiny-budget\n        gate: true\n"
    )
    ok(stack, "PUT", "/v1/projects/web/contract", admin, body=contract, headers={"Content-Type": "application/yaml"})
    code, body = call(
        stack,
        "PUT",
        "/v1/projects/web/contract",
        admin,
        body="apiVersion: nope\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert 400 <= code < 500 and body["error"]["message"]
    result = ok(
        stack, "POST", "/v1/attestations", tenant["member"], 201, json_body=envelope(tenant, "gated", [commit_entry(1)])
    )
    assert result["gated"] is True
    [policy] = [r for r in result["policy_results"] if r["status"] == "fail"]
    assert policy["violations"] == ["Session used 3052 tokens"]
    assert get_session(tenant["org"], "gated") is not None  # stored anyway


def test_twenty_identical_pushes_racing_on_dynamodb_count_once(stack: Any, tenant: dict[str, Any]) -> None:
    from tracemark_common.rollups import RollupWriter
    from tracemark_common.rollups.dynamo import rollup_store_from_settings

    org = tenant["org"]
    whoami = ok(stack, "GET", "/v1/whoami", tenant["member"])
    principal = Principal(
        org=org, sub="dev", role="member", scopes=("push", "read"), token_id=whoami["token_id"], kind="user"
    )
    body = json.dumps(envelope(tenant, "race", [commit_entry(1)])).encode()
    store, blobs = Locked(default_store()), Locked(default_blobs())
    writer = RollupWriter(Locked(rollup_store_from_settings()))

    def push(_: int) -> int:
        result = ingest_attestation(
            principal,
            body,
            datetime.now(UTC),
            store=store,
            blobs=blobs,
            policy_evaluator=FakePolicies(),
            rollup_writer=writer,
        )
        return result.status

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(push, range(20)))
    assert statuses == [200] * 19 + [201]
    record = store.get_session(org, "race")
    assert record is not None and len(record.digests) == 1
    assert dashboard(stack, tenant["admin"])["cards"]["total_sessions"]["value"] == 1


def test_another_org_cannot_touch_anything_through_the_stack(stack: Any, tenant: dict[str, Any]) -> None:
    ok(stack, "POST", "/v1/attestations", tenant["member"], 201, json_body=envelope(tenant, "mine", [commit_entry(1)]))
    ok(stack, "POST", "/v1/projects", tenant["admin"], 201, json_body={"name": "secret-project"})
    ok(stack, "PUT", "/v1/policies/private", tenant["admin"], 201, json_body={"policy": "package main\n"})
    keyid = dsse.keyid(tenant["key"].public_key())
    intruder = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": tenant["org"] + "-x"})["token"]
    attempts = [
        ("GET", "/v1/sessions/mine", 404),
        ("DELETE", "/v1/sessions/mine", 404),
        ("GET", f"/v1/keys/{keyid}", 404),
        ("DELETE", f"/v1/keys/{keyid}", 404),
        ("DELETE", f"/v1/tokens/{tenant['member_id']}", 404),
        ("GET", "/v1/projects/secret-project", 404),
        ("GET", "/v1/projects/secret-project/contract", 404),
        ("GET", "/v1/policies/private", 404),
    ]
    for method, path, status in attempts:
        code, body = call(stack, method, path, intruder)
        assert code == status, (method, path, body)
    assert ok(stack, "GET", "/v1/sessions", intruder)["items"] == []
    # and everything of the tenant is intact
    assert ok(stack, "GET", "/v1/sessions/mine", tenant["member"])["id"] == "mine"
    assert ok(stack, "GET", "/v1/whoami", tenant["member"])["org"] == tenant["org"]
    assert ok(stack, "GET", f"/v1/keys/{keyid}", tenant["admin"])["revoked_at"] is None
    # a JSON contract body is read as JSON whatever the header's case
    contract = (
        "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata:\n  name: web\nspec:\n  materials:\n"
        "    - type: CHAINLOOP_AI_CODING_SESSION\n      name: session\n"
    )
    ok(stack, "PUT", "/v1/projects/web/contract", tenant["admin"], json_body={"contract": contract})
    assert ok(stack, "GET", "/v1/projects/web/contract", tenant["member"])["contract"] == contract
