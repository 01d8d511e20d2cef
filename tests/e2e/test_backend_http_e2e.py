"""The backend as an outside client sees it: plain HTTP to `tracemark serve` on loopback, with
good, hostile, duplicate and cross-organisation requests."""

from __future__ import annotations

import base64
import json
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "backend"))

from attest_builders import commit_entry, evidence, public_pem, sha, sign, statement

from tracemark_common import dsse

pytestmark = pytest.mark.slow


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def recent(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat()


@pytest.fixture
def tenant(served_stack: Any) -> dict[str, Any]:
    url = served_stack.url
    org = "e2e-" + uuid.uuid4().hex[:10]
    created = requests.post(f"{url}/v1/orgs", json={"name": org}, headers=served_stack.admin(), timeout=30)
    assert created.status_code == 201, created.text
    admin = created.json()["token"]
    assert (
        requests.post(f"{url}/v1/projects", json={"name": "web"}, headers=_auth(admin), timeout=30).status_code == 201
    )
    minted = requests.post(
        f"{url}/v1/tokens", json={"subject": "dev", "kind": "user"}, headers=_auth(admin), timeout=30
    )
    member = minted.json()["token"]
    key = dsse.generate_private_key()
    registered = requests.post(
        f"{url}/v1/keys", json={"public_key_pem": public_pem(key)}, headers=_auth(member), timeout=30
    )
    assert registered.status_code == 201, registered.text
    return {"url": url, "org": org, "admin": admin, "member": member, "key": key}


def signed(tenant: dict[str, Any], session: str, **kwargs: Any) -> bytes:
    ev = evidence(session, started=recent(2), ended=recent(1), commits=[commit_entry(1)], **kwargs)
    return json.dumps(sign(statement(ev, org=tenant["org"]), tenant["key"])).encode()


def post(tenant: dict[str, Any], body: bytes, token: str | None = None) -> requests.Response:
    return requests.post(
        f"{tenant['url']}/v1/attestations",
        data=body,
        headers={**_auth(token or tenant["member"]), "Content-Type": "application/json"},
        timeout=60,
    )


def total_sessions(tenant: dict[str, Any]) -> int:
    response = requests.get(
        f"{tenant['url']}/v1/dashboard/ai", params={"range": "7d"}, headers=_auth(tenant["admin"]), timeout=30
    )
    assert response.status_code == 200, response.text
    return int(response.json()["cards"]["total_sessions"]["value"])


def test_push_replay_and_concurrent_duplicates_count_once(tenant: dict[str, Any]) -> None:
    body = signed(tenant, "e2e-1")
    first = post(tenant, body)
    assert first.status_code == 201, first.text
    assert first.json()["sessions"][0]["id"] == "e2e-1"
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(lambda _: post(tenant, body).status_code, range(10)))
    assert codes == [200] * 10
    racing = signed(tenant, "e2e-2")
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: post(tenant, racing), range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert total_sessions(tenant) == 2
    session = requests.get(f"{tenant['url']}/v1/sessions/e2e-1", headers=_auth(tenant["member"]), timeout=30).json()
    assert session["commit_shas"] == [sha(1)]


def test_hostile_bodies_get_clear_4xx_and_store_nothing(tenant: dict[str, Any]) -> None:
    good = signed(tenant, "hostile")
    payload = json.loads(good)
    tampered = dict(payload, payload=base64.b64encode(b'{"_type": "x"}').decode())
    cases: list[tuple[bytes, int]] = [
        (b"", 400),
        (good[: len(good) // 2], 400),  # truncated
        (b'{"payloadType": "a", "payloadType": "b"}', 400),  # duplicate keys
        (json.dumps(tampered).encode(), 422),  # bad signature
        (b"x" * (20 * 1024 * 1024), 413),  # 20 MB
        (json.dumps(dict(payload, payloadType="text/plain")).encode(), 422),
    ]
    for body, status in cases:
        response = post(tenant, body)
        assert response.status_code == status, (status, response.text[:200])
        error = response.json()["error"]
        assert error["code"] and error["message"]
    assert post(tenant, good, token="not-a-token").status_code == 401
    listing = requests.get(f"{tenant['url']}/v1/sessions", headers=_auth(tenant["member"]), timeout=30).json()
    assert listing["items"] == []


def test_large_envelope_through_a_presigned_upload(tenant: dict[str, Any]) -> None:
    ev = evidence("big", started=recent(2), ended=recent(1), commits=[commit_entry(1)])
    ev["data"]["warnings"] = ["w" * 1000] * 5000
    body = json.dumps(sign(statement(ev, org=tenant["org"]), tenant["key"])).encode()
    assert post(tenant, body).status_code == 413
    upload = requests.post(
        f"{tenant['url']}/v1/uploads", json={"kind": "attestation"}, headers=_auth(tenant["member"]), timeout=30
    ).json()
    put = requests.put(upload["url"], data=body, headers=upload["headers"], timeout=60)
    assert put.status_code in (200, 204), put.text[:200]
    created = requests.post(
        f"{tenant['url']}/v1/attestations",
        json={"upload_id": upload["upload_id"]},
        headers=_auth(tenant["member"]),
        timeout=60,
    )
    assert created.status_code == 201, created.text[:300]
    assert created.json()["sessions"][0]["id"] == "big"


def test_cross_organisation_attempts_fail(tenant: dict[str, Any], served_stack: Any) -> None:
    assert post(tenant, signed(tenant, "owned")).status_code == 201
    other = requests.post(
        f"{tenant['url']}/v1/orgs", json={"name": tenant["org"] + "-o"}, headers=served_stack.admin(), timeout=30
    ).json()["token"]
    for method, path in [
        ("GET", "/v1/sessions/owned"),
        ("DELETE", "/v1/sessions/owned"),
        ("GET", "/v1/projects/web/contract"),
        ("GET", f"/v1/keys/{dsse.keyid(tenant['key'].public_key())}"),
    ]:
        response = requests.request(method, f"{tenant['url']}{path}", headers=_auth(other), timeout=30)
        assert response.status_code == 404, (method, path, response.text)
    # org B's token cannot push org A's envelope either (its key is not registered in org B)
    response = post(tenant, signed(tenant, "owned2"), token=other)
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_key"
