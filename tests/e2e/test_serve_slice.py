"""The first slice end to end (issue 2): `tracemark serve` in a subprocess, driven over HTTP with only
what the API and SPEC §4 promise — an organisation made with the admin token, a signed session
pushed and listed back, counted by the dashboard, a signed `pull_request` webhook whose state
machine runs the real step handlers, and the data still there after a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "backend"))

from attest_builders import commit_entry, evidence, public_pem, sign, statement
from e2e_helpers import call, deliver, eventually

from tracemark_common import dsse
from tracemark_common.prs.render import CHECK_NAME, MARKER

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
GITHUB_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"


def test_first_slice_org_push_list_dashboard_webhook_restart(served_stack: Any) -> None:
    served, github = served_stack, served_stack.github
    org = "slice-" + uuid.uuid4().hex[:8]

    # Given an organisation created with the admin token, a project and a developer's signing key
    admin = call(served, "POST", "/v1/orgs", served.admin_token, 201, json={"name": org})["token"]
    call(served, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    developer = call(served, "POST", "/v1/tokens", admin, 201, json={"subject": "dev@example.com", "kind": "user"})
    key = dsse.generate_private_key()
    call(served, "POST", "/v1/keys", developer["token"], 201, json={"public_key_pem": public_pem(key)})

    # And a repository of the org's GitHub App installation, linked to the project, with an open PR
    installation_id, repo_id, full_name = 990_001, 990_101, f"{org}/app"
    installed = json.loads((GITHUB_FIXTURES / "github_webhook_installation.created.json").read_text())
    installed["installation"]["id"] = installation_id
    installed["repositories"] = [{"id": repo_id, "full_name": full_name, "private": True}]
    assert deliver(served, "installation", installed).status_code == 202
    call(served, "PUT", f"/v1/installations/{installation_id}", served.admin_token, 200, json={"org": org})
    call(served, "PUT", f"/v1/repositories/{repo_id}", admin, 200, json={"project": "web"})
    github.add_repo(full_name, repo_id=repo_id, installation_id=installation_id)
    session_id = "sess-" + uuid.uuid4().hex[:12]
    pull = github.add_pull(full_name, 7, [f"feat: add parser\n\nTracemark-Sessions: {session_id}"])
    commit_sha = pull.commits[-1].sha

    # When the developer pushes the signed session for that commit
    now = datetime.now(UTC).replace(microsecond=0)
    entry = commit_entry(1)
    entry["sha"] = commit_sha
    ev = evidence(
        session_id,
        started=(now - timedelta(hours=1)).isoformat(),
        ended=(now - timedelta(minutes=5)).isoformat(),
        commits=[entry],
    )
    envelope = sign(statement(ev, org=org, project="web", subjects=[commit_sha]), key)
    pushed = call(served, "POST", "/v1/attestations", developer["token"], 201, json=envelope)
    assert [item["id"] for item in pushed["sessions"]] == [session_id]

    # Then it is listed back, and the dashboard counts it
    listed = call(served, "GET", "/v1/sessions", developer["token"], 200)
    assert [item["id"] for item in listed["items"]] == [session_id]
    # with its AI Session Score before any pull request has seen it
    scored = call(served, "GET", f"/v1/sessions/{session_id}", developer["token"], 200)["score"]
    assert 0 <= scored["score"] <= 100
    assert scored["flag"] in ("red", "yellow", "green")
    cards = call(served, "GET", "/v1/dashboard/ai", developer["token"], 200, params={"range": "7d"})
    assert cards["total_sessions"]["value"] == 1
    assert cards["active_users"]["value"] == 1

    # When GitHub delivers a correctly signed pull_request webhook
    opened = json.loads((GITHUB_FIXTURES / "github_webhook_pull_request.opened.json").read_text())
    opened["number"] = 7
    opened["repository"]["id"] = repo_id
    opened["installation"]["id"] = installation_id
    accepted = deliver(served, "pull_request", opened)
    assert accepted.status_code == 202, accepted.text

    # Then the state machine ran the real step handlers: a check run and one summary comment
    runs = eventually(lambda: github.check_runs_for(full_name, pull.head_sha), "the check run")
    assert [run["name"] for run in runs] == [CHECK_NAME]
    assert runs[0]["status"] == "completed"
    comments = eventually(lambda: github.comments_on(full_name, 7), "the summary comment")
    assert len(comments) == 1
    assert comments[0]["body"].startswith(MARKER)
    assert session_id[:8] in comments[0]["body"]
    # And the session now knows its PR, and the dashboard counts an AI-assisted PR
    detail = eventually(
        lambda: (body := call(served, "GET", f"/v1/sessions/{session_id}", developer["token"], 200))["prs"] and body,
        "the session to know its PR",
    )
    assert detail["prs"][0]["number"] == 7
    cards = call(served, "GET", "/v1/dashboard/ai", developer["token"], 200, params={"range": "7d"})
    assert cards["ai_assisted_prs"]["value"] == 1

    # When serve is stopped with Ctrl-C and started again on the same data dir
    assert served.restart_and_report() == 0
    # Then everything is still there
    listed = call(served, "GET", "/v1/sessions", developer["token"], 200)
    assert [item["id"] for item in listed["items"]] == [session_id]
    cards = call(served, "GET", "/v1/dashboard/ai", developer["token"], 200, params={"range": "7d"})
    assert cards["total_sessions"]["value"] == 1
    again = call(served, "POST", "/v1/attestations", developer["token"], 200, json=envelope)
    assert again["digest"] == pushed["digest"]


def test_errors_are_json_from_one_error_map(served_stack: Any) -> None:
    url = served_stack.url
    # Unknown route: 404
    missing = requests.get(f"{url}/v1/nothing-here", timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    # Known path, wrong method: 405 with Allow
    wrong = requests.delete(f"{url}/v1/orgs", headers=served_stack.admin(), timeout=30)
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["Allow"]
    assert wrong.json()["error"]["message"]
    # Malformed JSON: 400
    bad = requests.post(
        f"{url}/v1/orgs",
        data=b"{not json",
        headers={**served_stack.admin(), "Content-Type": "application/json"},
        timeout=30,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "malformed_json"
    # Missing token: 401
    anonymous = requests.get(f"{url}/v1/sessions", timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"]
    # Oversize body: 413
    huge = requests.post(
        f"{url}/v1/attestations", data=b"x" * (11 * 1024 * 1024), headers=served_stack.admin(), timeout=60
    )
    assert huge.status_code == 413
    # The dashboard and the OpenAPI document are served at the same origin
    assert requests.get(f"{url}/", timeout=30).headers["Content-Type"].startswith("text/html")
    assert requests.get(f"{url}/v1/openapi.json", timeout=30).json()["openapi"].startswith("3.")


def run_serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracemark", "serve", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT), "TRACEMARK_SERVE_MAX_SECONDS": "30"},
    )


def test_serve_on_a_busy_port_is_a_clear_error(served_stack: Any, tmp_path: Path) -> None:
    port = served_stack.url.rsplit(":", 1)[1]
    result = run_serve("--port", port, "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_an_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_serve("--port", "0", "--data-dir", str(blocker / "data"))
    assert result.returncode == 1
    assert "not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_rejects_a_short_admin_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracemark", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TRACEMARK_ADMIN_TOKEN": "short", "TRACEMARK_SERVE_MAX_SECONDS": "30"},
    )
    assert result.returncode == 1
    assert "at least 32 characters" in result.stderr
