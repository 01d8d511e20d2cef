"""MetricsFunction on the local stack (template.yaml on moto, in-process): real API Gateway v2
events, the real authenticator and the DynamoDB rollups written by the real writer."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

_REF = Path(__file__).resolve().parents[2] / "unit" / "rollups" / "rollup_reference.py"
_spec = importlib.util.spec_from_file_location("rollup_reference_for_metrics_fn", _REF)
assert _spec and _spec.loader
ref = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ref
_spec.loader.exec_module(ref)


def _call(stack: Any, token: str | None, query: str = "", method: str = "GET") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = stack.invoke_http(method, "/v1/dashboard/ai", headers=headers, query=query)
    return status, body


def _ok(stack: Any, method: str, path: str, token: str, status: int, **kwargs: Any) -> Any:
    code, _, body = stack.invoke_http(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert code == status, body
    return body


@pytest.fixture
def tenant(stack: Any) -> dict[str, str]:
    org = "mx-" + uuid.uuid4().hex[:10]
    admin = _ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": org})["token"]
    for project in ("web", "api"):
        _ok(stack, "POST", "/v1/projects", admin, 201, json_body={"name": project})
    service = _ok(stack, "POST", "/v1/tokens", admin, 201, json_body={"subject": "ci", "kind": "service"})["token"]
    return {"org": org, "admin": admin, "service": service}


def test_dashboard_numbers_through_the_handler_match_brute_force(stack: Any, tenant: dict[str, str]) -> None:
    from tracemark_common.rollups import RollupWriter
    from tracemark_common.rollups.dynamo import rollup_store_from_settings

    # Given rollups written by the real writer on the stack's table
    world = ref.run_workload(RollupWriter(rollup_store_from_settings()), seed=21, org=tenant["org"], sessions=30)
    # When any token of the org asks for every range and project
    for range_ in ("24h", "7d", "30d", "3m"):
        for project in (None, "web"):
            query = f"range={range_}" + (f"&project={project}" if project else "")
            status, body = _call(stack, tenant["service"], query)
            assert status == 200, body
            # Then the numbers are the brute-force ones at the moment the handler answered
            now = datetime.fromisoformat(body["generated_at"].replace("Z", "+00:00"))
            ref.assert_matches(body, world, tenant["org"], project, range_=range_, now=now)


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("range=1y", 400, "bad_range"),
        ("range=7d&range=30d", 400, "bad_range"),
        ("range=" + "x" * 5000, 400, "bad_range"),
        ("range=7d&project=nope", 404, "unknown_project"),
        ("range=7d&project=" + "p" * 300, 400, "bad_project"),
    ],
)
def test_bad_queries_are_clear_4xx(stack: Any, tenant: dict[str, str], query: str, status: int, code: str) -> None:
    got, body = _call(stack, tenant["admin"], query)
    assert (got, body["error"]["code"]) == (status, code)


def test_tokens_and_other_orgs(stack: Any, tenant: dict[str, str]) -> None:
    assert _call(stack, None, "range=7d")[0] == 401
    assert _call(stack, "not-a-jwt", "range=7d")[0] == 401
    assert _call(stack, stack.admin_token, "range=7d")[0] == 403  # the server admin has no org
    other = "mx-" + uuid.uuid4().hex[:10]
    other_admin = _ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": other})["token"]
    # another org's project name is unknown to this org, and its numbers are its own
    assert _call(stack, other_admin, "range=7d&project=web")[0] == 404
    status, body = _call(stack, other_admin, "range=3m")
    assert status == 200 and body["org"] == other and body["has_data"] is False


def test_wrong_method_is_405(stack: Any, tenant: dict[str, str]) -> None:
    status, body = _call(stack, tenant["admin"], "range=7d", method="POST")
    assert status == 405, body
