"""GitHub faults against the real `tracemark serve` (subprocess, loopback), injected through the
fake GitHub's HTTP control API (`POST /_fake/faults`), as a script driving a local demo would.
Faults here stay within the GitHub client's own retries (`Retry-After: 0`): Step Functions'
10-second Retry intervals run for real in `tracemark serve` (tests/faults/test_faults_github.py
covers them on the in-process stack, where they are skipped)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_helpers import deliver, eventually

from tracemark_common.prs.render import CHECK_NAME, MARKER

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"


def payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"github_webhook_{name}.json").read_text())


def call(served: Any, method: str, path: str, token: str, status: int = 200, **kwargs: Any) -> Any:
    response = requests.request(
        method, served.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )
    assert response.status_code == status, response.text
    return response.json()


def test_github_errors_injected_over_http_are_retried_by_the_served_backend(served_stack: Any) -> None:
    served, gh = served_stack, served_stack.github
    org = "flt-gh-" + uuid.uuid4().hex[:8]
    admin = call(served, "POST", "/v1/orgs", served.admin_token, 201, json={"name": org})["token"]
    call(served, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    installation_id, repo_id, full_name = 777_101, 888_101, f"{org}/app"
    created = payload("installation.created")
    created["installation"]["id"] = installation_id
    created["repositories"] = [{"id": repo_id, "full_name": full_name, "private": False}]
    assert deliver(served, "installation", created).status_code == 202
    call(served, "PUT", f"/v1/installations/{installation_id}", served.admin_token, json={"org": org})
    call(served, "PUT", f"/v1/repositories/{repo_id}", admin, json={"project": "web"})
    control = requests.Session()
    repo = {"full_name": full_name, "repo_id": repo_id, "installation_id": installation_id}
    assert control.post(f"{gh.url}/_fake/repos", json=repo, timeout=10).status_code == 201
    head = control.post(
        f"{gh.url}/_fake/pulls",
        json={"full_name": full_name, "number": 4, "messages": ["feat\n\nTracemark-Sessions: ghost"]},
        timeout=10,
    ).json()["head_sha"]
    # Given GitHub failing the commit listing twice (502) and the check run once (429), through
    # the fake's HTTP control API
    faults = [
        {"method": "GET", "path": "/pulls/4/commits$", "status": 502, "times": 2, "headers": {"Retry-After": "0"}},
        {"method": "POST", "path": "/check-runs$", "status": 429, "times": 1, "headers": {"Retry-After": "0"}},
    ]
    for fault in faults:
        assert control.post(f"{gh.url}/_fake/faults", json=fault, timeout=10).status_code == 201
    # When the PR is opened
    body = payload("pull_request.opened")
    body.update(action="opened", number=4)
    body["repository"]["id"] = repo_id
    body["installation"]["id"] = installation_id
    assert deliver(served, "pull_request", body).status_code == 202
    # Then the served backend retried through them: one comment, one check run on the head
    runs = eventually(lambda: gh.check_runs_for(full_name, head), "the check run")
    assert [(r["name"], r["conclusion"]) for r in runs] == [(CHECK_NAME, "failure")]
    comments = gh.comments_on(full_name, 4)
    assert len(comments) == 1 and comments[0]["body"].startswith(MARKER)
    state = control.get(f"{gh.url}/_fake/state", timeout=10).json()
    statuses = [
        (c["method"], c["path"].rsplit("/", 1)[-1], c["status"])
        for c in state["calls"]
        if f"/{full_name}/" in c["path"]
    ]
    assert statuses.count(("GET", "commits", 502)) == 2 and statuses.count(("GET", "commits", 200)) == 1
    assert statuses.count(("POST", "check-runs", 429)) == 1 and statuses.count(("POST", "check-runs", 201)) == 1
    assert [f["remaining"] for f in state["faults"]][-2:] == [0, 0]
    assert control.delete(f"{gh.url}/_fake/faults", timeout=10).json() == {"faults": 0}
