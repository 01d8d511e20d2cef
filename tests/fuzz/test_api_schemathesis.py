"""Schemathesis against the OpenAPI document of a real `tracemark serve` on 127.0.0.1.

Every operation of `/v1/openapi.json` is generated from its schema (valid and invalid inputs) and
sent with each kind of credential: the server admin token, an org-admin token and a member (user)
token minted through the API. Every response must be documented and match its schema; no 5xx.

The operations are parametrized at collection time, before any server runs, from the document the
server publishes (`openapi_document(ROUTES)`); `test_served_document_is_the_fuzzed_one` proves the
served `/v1/openapi.json` is that same document. (schemathesis' lazy `from_fixture` loader does not
run on pytest 9: it writes `Function._nodeid`, which pytest 9 no longer has.)
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fuzzkit import FuzzStack, fuzz
from hypothesis import settings

from tracemark_common import dsse
from tracemark_common.evidence.statement import sign_statement
from tracemark_common.http.openapi import openapi_document
from tracemark_common.routes import ROUTES

pytestmark = pytest.mark.slow

DOCUMENT: dict[str, Any] = openapi_document(ROUTES)
# Every check schemathesis has, with this API's status rules: a schema-violating request may also
# be a 413 (a body over its documented size), and a schema-valid request is never a 400 (see
# `schema_valid_is_not_a_400`).
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261202,
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5XX"]
            },
        },
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
# Examples per operation and credential: most of the budget goes to the org admin, who may call
# every route; the server admin and the member mostly meet the authorisation checks. With the
# derandomized profile the whole module stays well under three minutes on two cores.
ORG_ADMIN_EXAMPLES = 12
OTHER_EXAMPLES = 6


# Path parameters naming things that exist, so that valid cases reach past the 404 into the
# handlers (filled by the `known` fixture; the same operations also get random names).
KNOWN: dict[str, dict[str, str]] = {}
POLICY = (
    Path(__file__).resolve().parents[2] / "layers/common/tracemark_common/policies/approved-models.rego"
).read_text()


SESSION = "fuzz-session-1"
EVIDENCE = Path(__file__).resolve().parents[1] / "fixtures" / "chainloop" / "ai-coding-session.json"


def _attestation(stack: FuzzStack, key: dsse.PrivateKey) -> dict[str, Any]:
    envelope = json.loads(EVIDENCE.read_text(encoding="utf-8"))
    sha = "f" * 40
    envelope["data"]["session"]["id"] = SESSION
    envelope["data"]["git_context"]["tracemark_commits"] = [
        {
            "sha": sha,
            "files": [
                {"path": "a.py", "status": "modified", "lines_added": 3, "lines_removed": 0, "attribution": "ai"}
            ],
            "line_ranges": [[1, 3]],
            "signature": "N",
        }
    ]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": sha, "digest": {"gitCommit": sha}}],
        "predicateType": "https://tracemark.dev/ai-coding-session/v1",
        "predicate": {
            "evidence": envelope,
            "project": stack.project,
            "organization": stack.org,
            "cli_version": "0.1.0",
        },
    }
    return sign_statement(statement, key)


@pytest.fixture(scope="session")
def known(fuzz_stack: FuzzStack) -> dict[str, dict[str, str]]:
    if KNOWN:
        return KNOWN
    admin = {"Authorization": f"Bearer {fuzz_stack.org_admin_token}"}
    url = fuzz_stack.url
    put = requests.put(
        f"{url}/v1/policies/fuzz-policy", data=POLICY, headers={**admin, "Content-Type": "text/plain"}, timeout=30
    )
    assert put.status_code in (200, 201), put.text
    signing_key = dsse.generate_private_key("ecdsa-p256")
    pem = dsse.public_key_pem(signing_key.public_key())
    key = requests.post(f"{url}/v1/keys", json={"public_key_pem": pem}, headers=admin, timeout=30)
    assert key.status_code == 201, key.text
    # one attested session, signed the way the CLI signs, so session reads return real evidence
    pushed = requests.post(
        f"{url}/v1/attestations", json=_attestation(fuzz_stack, signing_key), headers=admin, timeout=60
    )
    assert pushed.status_code == 201, pushed.text
    victim = requests.post(f"{url}/v1/tokens", json={"subject": "victim", "kind": "service"}, headers=admin, timeout=30)
    assert victim.status_code == 201, victim.text
    project = {"name": fuzz_stack.project}
    KNOWN.update(
        {
            "/v1/projects/{name}": project,
            "/v1/projects/{name}/contract": project,
            "/v1/policies/{name}": {"name": "fuzz-policy"},
            "/v1/keys/{keyid}": {"keyid": key.json()["keyid"]},
            "/v1/tokens/{id}": {"id": victim.json()["id"]},
            "/v1/sessions/{id}": {"id": SESSION},
        }
    )
    return KNOWN


@schema.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Half of the valid cases of an operation with a known resource name that resource (chosen
    by a hash of the case, so the run stays deterministic)."""
    known = KNOWN.get(case.operation.path)
    meta = case.meta
    if (
        known
        and meta is not None
        and meta.generation.mode.is_positive
        and case.path_parameters
        and zlib.crc32(repr(sorted(case.path_parameters.items())).encode()) % 2 == 0
    ):
        case.path_parameters = {**case.path_parameters, **known}
    return case


def test_served_document_is_the_fuzzed_one(fuzz_stack: FuzzStack) -> None:
    response = requests.get(f"{fuzz_stack.url}/v1/openapi.json", timeout=30)
    assert response.status_code == 200
    served = response.json()
    assert served.pop("servers") == [{"url": fuzz_stack.url}]
    assert served == DOCUMENT
    assert len(list(schema.get_all_operations())) == len(ROUTES)


def schema_valid_is_not_a_400(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """400 means "the schema says no" in this API: a request the document calls valid is never a
    400. 422 is for well-formed input that is semantically wrong (a contract that does not parse,
    a key that is not a public key), which no JSON Schema can describe; and a list cursor is opaque,
    so one the server never issued is a 400 `bad_cursor` whatever its shape."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return
    code = (response.json() or {}).get("error", {}).get("code")
    assert code == "bad_cursor", f"schema-valid request rejected with 400 {code}: {response.text[:500]}"


def _call(case: schemathesis.Case, stack: FuzzStack, token: str) -> None:
    case.call_and_validate(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[schema_valid_is_not_a_400],
    )


# One test per credential, each over every operation.


@schema.parametrize()
@settings(fuzz(OTHER_EXAMPLES))
def test_as_server_admin(case: schemathesis.Case, fuzz_stack: FuzzStack, known: dict[str, dict[str, str]]) -> None:
    _call(case, fuzz_stack, fuzz_stack.admin_token)


@schema.parametrize()
@settings(fuzz(ORG_ADMIN_EXAMPLES))
def test_as_org_admin(case: schemathesis.Case, fuzz_stack: FuzzStack, known: dict[str, dict[str, str]]) -> None:
    _call(case, fuzz_stack, fuzz_stack.org_admin_token)


@schema.parametrize()
@settings(fuzz(OTHER_EXAMPLES))
def test_as_member(case: schemathesis.Case, fuzz_stack: FuzzStack, known: dict[str, dict[str, str]]) -> None:
    _call(case, fuzz_stack, fuzz_stack.member_token)
