"""Policies through the ApiFunction on the local stack: uploads of good and hostile policies and
contracts, and the seed contract applied at push with the real engine and sandbox."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from attest_builders import commit_entry, evidence, public_pem, sign, statement

from tracemark_common import dsse

SEED = Path(__file__).resolve().parents[2] / "fixtures" / "policies" / "seed"
YAML = {"Content-Type": "application/yaml"}


def call(stack: Any, method: str, path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    status, _, body = stack.invoke_http(method, path, headers=headers, **kwargs)
    return status, body


@pytest.fixture
def org(stack: Any) -> dict[str, Any]:
    name = "pol-" + uuid.uuid4().hex[:10]
    status, body = call(stack, "POST", "/v1/orgs", stack.admin_token, json_body={"name": name})
    assert status == 201, body
    admin = body["token"]
    assert call(stack, "POST", "/v1/projects", admin, json_body={"name": "web"})[0] == 201
    status, member = call(stack, "POST", "/v1/tokens", admin, json_body={"subject": "dev", "kind": "user"})
    assert status == 201, member
    key = dsse.generate_private_key()
    assert call(stack, "POST", "/v1/keys", member["token"], json_body={"public_key_pem": public_pem(key)})[0] == 201
    return {"org": name, "admin": admin, "member": member["token"], "key": key}


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("package main\nviolations contains x if {\n", "does not compile"),
        ("package main\nimport rego.v1\nresult := nofunc(1)\n", "Function not found: nofunc"),
        (
            (
                "package main\nimport rego.v1\n"
                "violations contains x if { some x in numbers.range(1, 1000000000); x < 0 }\n"
            ),
            "did not finish within 2 s",
        ),
        (
            (
                "apiVersion: chainloop.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n  policies:\n"
                "    - kind: CHAINLOOP_AI_CODING_SESSION\n      ref: https://evil.example/p.rego\n"
            ),
            "fetches nothing",
        ),
        ("a: &a [1]\nb: [*a, *a]\n", "aliases"),
    ],
    ids=["syntax", "unknown-function", "loop", "remote-ref", "yaml-alias"],
)
def test_hostile_policies_are_refused_with_a_4xx(stack: Any, org: dict[str, Any], policy: str, message: str) -> None:
    status, body = call(
        stack, "PUT", "/v1/policies/bad", org["admin"], body=policy, headers={"Content-Type": "text/plain"}
    )
    assert 400 <= status < 500, body
    assert message in body["error"]["message"]
    assert call(stack, "GET", "/v1/policies/bad", org["admin"])[0] == 404  # nothing stored


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("https://example.com/policy.yaml", "Tracemark fetches nothing"),
        ("file:///etc/passwd", "Tracemark fetches nothing"),
        ("policy:not-uploaded", "no policy 'not-uploaded'"),
        ("builtin:missing", "no built-in policy 'missing'"),
    ],
)
def test_contracts_with_bad_refs_are_refused(stack: Any, org: dict[str, Any], ref: str, message: str) -> None:
    contract = (
        "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata: {name: c}\nspec:\n  policies:\n    materials:\n"
        f"      - ref: {ref}\n"
    )
    status, body = call(stack, "PUT", "/v1/projects/web/contract", org["admin"], body=contract, headers=YAML)
    assert 400 <= status < 500, body
    assert message in body["error"]["message"]


def test_seed_contract_at_push(stack: Any, org: dict[str, Any]) -> None:
    # Given the seed's three policies uploaded verbatim and its contract set on the project
    for name in ("approved-models", "token-budget", "ai-code-ratio"):
        text = (SEED / f"{name}.yaml").read_text(encoding="utf-8")
        status, body = call(stack, "PUT", f"/v1/policies/{name}", org["admin"], body=text, headers=YAML)
        assert status in {200, 201}, body
    contract = (SEED / "contract.yaml").read_text(encoding="utf-8")
    status, body = call(stack, "PUT", "/v1/projects/web/contract", org["admin"], body=contract, headers=YAML)
    assert status == 200, body
    # When a session with an unapproved model and 600,000 tokens is pushed
    ev = evidence(
        "seed-violations",
        commits=[commit_entry(1)],
        models=["claude-opus-4-6", "gpt-4o"],
        usage={"input_tokens": 100000, "output_tokens": 500000, "total_tokens": 600000},
    )
    status, result = call(
        stack, "POST", "/v1/attestations", org["member"], json_body=sign(statement(ev, org=org["org"]), org["key"])
    )
    # Then the response carries the seed's violations, and the gated one gates the push
    assert status == 201, result
    by_policy = {r["policy"]: r for r in result["policy_results"]}
    assert by_policy["approved-models"]["violations"] == ["Model 'gpt-4o' is not approved."]
    assert by_policy["approved-models"]["gate"] is True
    assert by_policy["token-budget"]["violations"] == ["Session used 600000 tokens, exceeding the budget of 500000"]
    assert result["gated"] is True
