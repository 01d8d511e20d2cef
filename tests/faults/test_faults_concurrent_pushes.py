"""Concurrent pushes of one session against the real `tracemark serve` over loopback (SPEC §3.2:
"the same envelope twice is one session and counts once"; merge rules for re-attested sessions).

20 threads POST at once (a barrier releases them together); a 503 is retried as the CLI does.
The outcome must be exactly one session whose state follows the merge rules, and dashboard
rollups equal to that one session's numbers.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from attest_builders import commit_entry, evidence, public_pem, sha, sign, statement

from tracemark_common import dsse

pytestmark = pytest.mark.slow

THREADS = 20


def call(served: Any, method: str, path: str, token: str, status: int = 200, **kwargs: Any) -> Any:
    response = requests.request(
        method, served.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs
    )
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def served_tenant(served_stack: Any) -> dict[str, Any]:
    org = "flt-c-" + uuid.uuid4().hex[:8]
    admin = call(served_stack, "POST", "/v1/orgs", served_stack.admin_token, 201, json={"name": org})["token"]
    call(served_stack, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    member = call(served_stack, "POST", "/v1/tokens", admin, 201, json={"subject": "dev", "kind": "user"})["token"]
    key = dsse.generate_private_key()
    call(served_stack, "POST", "/v1/keys", member, 201, json={"public_key_pem": public_pem(key)})
    return {"org": org, "admin": admin, "member": member, "key": key}


def at(minutes_ago: int) -> str:
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    return (base + timedelta(minutes=120 - minutes_ago)).isoformat()


def usage(n: int) -> dict[str, Any]:
    return {
        "input_tokens": 1000 + n,
        "output_tokens": 10 * n,
        "total_tokens": 1000 + 11 * n,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "estimated_cost_usd": n / 100,
    }


def push_all(served: Any, token: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """POST every body at the same moment from its own thread; a 503 is retried (as the CLI's
    spool would), so each result is the final answer for that attestation."""
    barrier = threading.Barrier(len(bodies))

    def one(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with requests.Session() as session:
            barrier.wait()
            for _ in range(20):
                response = session.post(
                    served.url + "/v1/attestations",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=120,
                )
                if response.status_code != 503:
                    return response.status_code, response.json()
                assert response.headers.get("Retry-After"), response.headers
            raise AssertionError("still 503 after 20 attempts")

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def dashboard(served: Any, tenant: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = call(served, "GET", "/v1/dashboard/ai", tenant["admin"], params={"range": "7d"})
    return body["cards"]


def test_twenty_identical_pushes_at_once_store_and_count_one_session(
    served_stack: Any, served_tenant: dict[str, Any]
) -> None:
    # Given one signed attestation
    ev = evidence("same-1", started=at(90), ended=at(30), commits=[commit_entry(1), commit_entry(2)], usage=usage(7))
    body = sign(statement(ev, org=served_tenant["org"]), served_tenant["key"])
    # When 20 clients push it at the same moment
    results = push_all(served_stack, served_tenant["member"], [body] * THREADS)
    # Then one push created it, the 19 others replayed the same answer
    assert sorted(status for status, _ in results) == [200] * (THREADS - 1) + [201]
    created = next(answer for status, answer in results if status == 201)
    for status, answer in results:
        assert answer == created, (status, json.dumps(answer, sort_keys=True), json.dumps(created, sort_keys=True))
    # and there is exactly one session with one attestation
    listing = call(served_stack, "GET", "/v1/sessions", served_tenant["member"])
    assert [item["id"] for item in listing["items"]] == ["same-1"]
    one = call(served_stack, "GET", "/v1/sessions/same-1", served_tenant["member"])
    assert one["commit_shas"] == [sha(1), sha(2)] and len(one["attestations"]) == 1
    # and the dashboard counts it once
    cards = dashboard(served_stack, served_tenant)
    assert cards["total_sessions"]["value"] == 1
    assert cards["active_users"]["value"] == 1
    assert cards["total_tokens"]["value"] == usage(7)["total_tokens"]
    assert cards["ai_authored_code"]["ai_lines"] == 16 and cards["ai_authored_code"]["all_lines"] == 20


def test_twenty_different_attestations_of_one_session_at_once_merge_exactly(
    served_stack: Any, served_tenant: dict[str, Any]
) -> None:
    # Given 20 attestations of one session: attestation n adds commit n and ended n minutes later
    bodies = []
    for n in range(1, THREADS + 1):
        ev = evidence("merge-1", started=at(100), ended=at(60 - n), commits=[commit_entry(n)], usage=usage(n))
        bodies.append(sign(statement(ev, org=served_tenant["org"]), served_tenant["key"]))
    # When all are pushed at the same moment
    results = push_all(served_stack, served_tenant["member"], bodies)
    # Then each was stored once (no replay: they differ)
    assert [status for status, _ in results] == [201] * THREADS, results
    assert len({answer["digest"] for _, answer in results}) == THREADS
    # and the one session is the merge of all 20: the union of commits, every attestation, and the
    # usage of the attestation with the latest ended_at (never summed)
    listing = call(served_stack, "GET", "/v1/sessions", served_tenant["member"])
    assert [item["id"] for item in listing["items"]] == ["merge-1"]
    one = call(served_stack, "GET", "/v1/sessions/merge-1", served_tenant["member"])
    assert sorted(one["commit_shas"]) == sorted(sha(n) for n in range(1, THREADS + 1))
    assert len(one["attestations"]) == THREADS
    assert one["evidence"]["data"]["usage"]["total_tokens"] == usage(THREADS)["total_tokens"]
    entries = one["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert sorted(e["sha"] for e in entries) == sorted(sha(n) for n in range(1, THREADS + 1))
    # and the dashboard shows one session's numbers: the latest usage, every commit's lines once
    cards = dashboard(served_stack, served_tenant)
    assert cards["total_sessions"]["value"] == 1
    assert cards["active_users"]["value"] == 1
    assert cards["total_tokens"]["value"] == usage(THREADS)["total_tokens"]
    assert cards["ai_authored_code"]["ai_lines"] == 8 * THREADS
    assert cards["ai_authored_code"]["all_lines"] == 10 * THREADS
