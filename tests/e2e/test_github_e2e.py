"""A pull request's life cycle against the real `tracemark serve` (subprocess, loopback HTTP) and
the fake GitHub: enrolment, opened, labelled, pushed again, closed — checking GitHub's calls."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_helpers import deliver as send_webhook
from e2e_helpers import eventually

from tracemark_common.prs.render import CHECK_NAME, MARKER

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"


def payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"github_webhook_{name}.json").read_text())


def deliver(served: Any, event: str, body: dict[str, Any]) -> dict[str, Any]:
    response = send_webhook(served, event, body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def api(served: Any, method: str, path: str, token: str, status: int = 200, **kwargs: Any) -> Any:
    response = requests.request(
        method, served.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )
    assert response.status_code == status, response.text
    return response.json()


def test_pull_request_life_cycle_through_tracemark_serve(served_stack: Any) -> None:
    served, gh = served_stack, served_stack.github
    org = "e2e-gh-" + uuid.uuid4().hex[:8]
    admin = api(served, "POST", "/v1/orgs", served.admin_token, 201, json={"name": org})["token"]
    api(served, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    installation_id, repo_id, full_name = 777_001, 888_001, f"{org}/app"

    # The App is installed: the installation and its repository are enrolled, then bound and linked
    created = payload("installation.created")
    created["installation"]["id"] = installation_id
    created["repositories"] = [{"id": repo_id, "full_name": full_name, "private": False}]
    assert deliver(served, "installation", created)["outcome"] == "enrolled"
    api(served, "PUT", f"/v1/installations/{installation_id}", served.admin_token, json={"org": org})
    api(served, "PUT", f"/v1/repositories/{repo_id}", admin, json={"project": "web"})
    gh.add_repo(full_name, repo_id=repo_id, installation_id=installation_id)

    def pr_event(action: str, label: str | None = None) -> dict[str, Any]:
        body = payload("pull_request.labeled" if label else "pull_request.opened")
        body.update(action=action, number=3)
        body["repository"]["id"] = repo_id
        body["installation"]["id"] = installation_id
        if label:
            body["label"]["name"] = label
        return body

    # Opened: a PR naming a session nobody attested
    pull = gh.add_pull(full_name, 3, ["feat: x\n\nTracemark-Sessions: never-pushed"])
    assert deliver(served, "pull_request", pr_event("opened"))["outcome"] == "started"
    runs = eventually(lambda: gh.check_runs_for(full_name, pull.head_sha), "the first check run")
    assert [(r["name"], r["conclusion"]) for r in runs] == [(CHECK_NAME, "failure")]
    comments = gh.comments_on(full_name, 3)
    assert len(comments) == 1 and comments[0]["body"].startswith(MARKER)
    assert "never-pushed" in comments[0]["body"]

    # Labelled skip-ai-session: the same check run turns green
    pull.labels.append("skip-ai-session")
    deliver(served, "pull_request", pr_event("labeled", label="skip-ai-session"))
    eventually(lambda: gh.check_runs_for(full_name, pull.head_sha)[0]["conclusion"] == "success", "the label to count")

    # Pushed again: one comment updated in place, a check run on the new head, within the call budget
    gh.calls.clear()
    head = gh.push(full_name, 3, ["fix: y"])
    deliver(served, "pull_request", pr_event("synchronize"))
    eventually(lambda: gh.check_runs_for(full_name, head), "the check run of the new head")
    assert len(gh.comments_on(full_name, 3)) == 1
    assert head[:12] in gh.comments_on(full_name, 3)[0]["body"]
    assert len(gh.api_calls()) <= math.ceil(2 / 100) + 4

    # Closed: ignored, nothing more is called
    gh.calls.clear()
    assert deliver(served, "pull_request", pr_event("closed"))["outcome"] == "ignored"
    assert gh.calls == []
