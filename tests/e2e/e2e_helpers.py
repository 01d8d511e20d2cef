"""Helpers for end-to-end tests against `tracemark serve` (plain HTTP, as an outside client)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import requests

from tracemark_common.prs.signature import signature_for


def call(served: Any, method: str, path: str, token: str | None, status: int, **kwargs: Any) -> Any:
    """One API call that must answer `status`; the parsed JSON body (None when empty)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.request(method, served.url + path, headers=headers, timeout=30, **kwargs)
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def deliver(served: Any, event: str, body: dict[str, Any], delivery: str | None = None) -> requests.Response:
    """A webhook delivery signed with the server's webhook secret, as GitHub sends it."""
    data = json.dumps(body).encode()
    return requests.post(
        served.webhook_url,
        data=data,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature_for(served.webhook_secret, data),
        },
        timeout=30,
    )


def eventually(check: Any, what: str, deadline_s: float = 60.0) -> Any:
    """Poll until `check()` is truthy (the workflow runs asynchronously); not a timing assertion."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")
