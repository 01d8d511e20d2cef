"""Oversize and hostile input (docs/security.md §T9) and expensive policies (§T10), through the
real handlers on moto and the real policy sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from attest_builders import commit_entry, evidence, sha, sign, statement

from conftest import Tenant, call, ok
from tracemark_common.prs.signature import signature_for

YAML = {"Content-Type": "application/yaml"}
HEAD = "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata: {name: c}\nspec:\n  policies:\n    materials:\n"
LOOP = (  # loops only on real evidence: a policy that loops on an empty input is refused at upload
    "package main\nimport rego.v1\n"
    "violations contains x if { input.data.session.id; some x in numbers.range(1, 1000000000); x < 0 }\n"
)
SNOOP = 'package main\nimport rego.v1\nviolations contains sprintf("%v", [opa.runtime().env]) if true\n'
FETCH = (
    "package main\nimport rego.v1\n"
    'violations contains sprintf("%v", [http.send({"method": "GET", "url": "http://127.0.0.1:9/"})]) if true\n'
)


def _attest(stack: Any, tenant: Tenant, member: Any, stmt: dict[str, Any]) -> tuple[int, Any]:
    status, body = call(stack, "POST", "/v1/attestations", member.token, json_body=sign(stmt, member.key))
    return status, body


def test_oversize_bodies_are_413_before_parsing(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T9.1: 4 MB for API bodies, 256 KB for contracts and policies, 5 MB for webhooks, 10 MB at the
    (emulated) API Gateway; nothing is stored."""
    tenant = new_tenant()
    member = tenant.member("dev")
    big = b'{"payload": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    status, body = call(
        stack, "POST", "/v1/attestations", member.token, body=big, headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    contract = HEAD + "#" + "x" * (256 * 1024) + "\n"
    assert call(stack, "PUT", "/v1/projects/web/contract", tenant.admin, body=contract, headers=YAML)[0] == 413
    assert call(stack, "PUT", "/v1/policies/p", tenant.admin, body="#" + "x" * (256 * 1024), headers=YAML)[0] == 413
    hook = b'{"x": "' + b"y" * (5 * 1024 * 1024) + b'"}'
    secret = stack.secret_value("GitHubWebhookSecretArn")
    status, _, _ = stack.invoke_http(
        "POST",
        "/github/webhook",
        body=hook,
        headers={
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature_for(secret, hook),
        },
    )
    assert status == 413
    huge = b"x" * (10 * 1024 * 1024 + 1)
    assert call(stack, "POST", "/v1/attestations", member.token, body=huge)[0] == 413
    assert ok(stack, "GET", "/v1/sessions", tenant.admin)["items"] == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[" * 65 + b"]" * 65, "nesting"),
        (b'{"payloadType": "a", "payloadType": "b"}', "duplicate keys"),
        (b'{"payload": NaN}', "NaN"),
        (b'{"payload": "\xff\xfe"}', "not UTF-8"),
    ],
)
def test_hostile_json_is_a_400(stack: Any, new_tenant: Callable[[], Tenant], raw: bytes, why: str) -> None:
    """T9.2: strict JSON: bounded nesting (64), no duplicate keys, no NaN, UTF-8 only."""
    tenant = new_tenant()
    member = tenant.member("dev")
    status, body = call(
        stack, "POST", "/v1/attestations", member.token, body=raw, headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]["code"]) == (400, "malformed_json"), why


def test_hostile_envelopes_are_bounded(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T9.3: at most 8 signatures and 1,000 subjects; huge strings are truncated or refused; a
    session cannot grow its index past 300 KB."""
    tenant = new_tenant()
    member = tenant.member("dev")
    envelope = sign(statement(evidence("h-1", commits=[commit_entry(1)]), org=tenant.org), member.key)
    envelope["signatures"] = envelope["signatures"] * 9
    status, body = call(stack, "POST", "/v1/attestations", member.token, json_body=envelope)
    assert (status, body["error"]["code"]) == (422, "invalid_envelope")
    many = statement(evidence("h-2"), org=tenant.org, subjects=[sha(i) for i in range(1, 1002)])
    status, body = _attest(stack, tenant, member, many)
    assert (status, body["error"]["code"]) == (422, "invalid_statement")
    bad_id = evidence("h-3", commits=[commit_entry(1)])
    bad_id["data"]["session"]["id"] = "../../etc/passwd"
    status, body = _attest(stack, tenant, member, statement(bad_id, org=tenant.org))
    assert status == 422, body
    loud = statement(evidence("h-4", commits=[commit_entry(4)]), org=tenant.org, actor_unverified="a" * 100_000)
    assert _attest(stack, tenant, member, loud)[0] == 201
    assert len(ok(stack, "GET", "/v1/sessions/h-4", tenant.admin)["actor_unverified"]) <= 320
    assert call(stack, "GET", "/v1/sessions/h-3", tenant.admin)[0] == 404


def test_policies_are_sandboxed_and_time_limited(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T10: an org policy that loops costs a `neutral`/`timeout` within the 2-second limit; a policy
    sees no credentials in its environment and cannot fetch URLs; a >1 MB input is not evaluated."""
    tenant = new_tenant()
    member = tenant.member("dev")
    for name, text in (("loop", LOOP), ("snoop", SNOOP)):
        status, body = call(stack, "PUT", f"/v1/policies/{name}", tenant.admin, body=text, headers=YAML)
        assert status in (200, 201), body
    status, body = call(stack, "PUT", "/v1/policies/fetch", tenant.admin, body=FETCH, headers=YAML)
    assert (status, body["error"]["code"]) == (422, "invalid_policy")  # http.send does not exist here
    contract = HEAD + "".join(f"      - ref: policy:{n}\n" for n in ("loop", "snoop"))
    contract += "      - ref: builtin:token-budget\n"
    ok(stack, "PUT", "/v1/projects/web/contract", tenant.admin, body=contract, headers=YAML)
    started = time.monotonic()
    status, body = _attest(stack, tenant, member, statement(evidence("p-1", commits=[commit_entry(1)]), org=tenant.org))
    elapsed = time.monotonic() - started
    assert status == 201, body
    results = {r["policy"]: r for r in body["policy_results"]}
    assert (results["loop"]["status"], results["loop"]["reason"]) == ("neutral", "timeout")
    assert elapsed < 12, elapsed  # one 2 s timeout plus start-up, never the loop's real cost
    snooped = json.dumps(results["snoop"])
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "JWT_SECRET_ID"):
        assert name not in snooped
    assert "PATH" in snooped  # the policy really read its environment: the scrubbed one
    # input above 1 MB: not evaluated (neutral, input_too_large), still stored
    fat = evidence("p-2", commits=[commit_entry(2)])
    fat["data"]["warnings"] = ["w" * 1000] * 1100
    status, body = _attest(stack, tenant, member, statement(fat, org=tenant.org))
    assert status == 201, body
    budget = {r["policy"]: r for r in body["policy_results"]}["token-budget"]
    assert (budget["status"], budget.get("reason")) == ("neutral", "input_too_large")
