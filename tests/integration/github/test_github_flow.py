"""Webhook → Step Functions → step handlers → fake GitHub, on the local stack (SPEC §3.4–3.5)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attest_builders import commit_entry, evidence, public_pem, sha, sign, statement
from cryptography.hazmat.primitives import serialization

from tracemark_common import dsse
from tracemark_common.github.client import DEFAULT_TOKEN_CACHE
from tracemark_common.prs.render import CHECK_NAME, MARKER
from tracemark_common.prs.signature import signature_for
from tracemark_local.fake_github import FakeGitHub
from tracemark_local.stack import wait_for_execution

FIXTURES = Path(__file__).parents[2] / "fixtures" / "github"


def payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"github_webhook_{name}.json").read_text())


def ok(stack: Any, method: str, path: str, token: str, status: int = 200, **kwargs: Any) -> Any:
    code, _, body = stack.invoke_http(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert code == status, body
    return body


def deliver(
    stack: Any,
    event: str,
    body: Any,
    *,
    delivery: str | None = None,
    secret: str | None = None,
    raw: bytes | None = None,
    signature: str | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    key = secret if secret is not None else stack.secret_value("GitHubWebhookSecretArn")
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "User-Agent": "GitHub-Hookshot/abc123",
    }
    if signature != "":
        headers["X-Hub-Signature-256"] = signature or signature_for(key, data)
    status, _, parsed = stack.invoke_http("POST", "/github/webhook", body=data, headers=headers)
    return status, parsed


@pytest.fixture
def gh(stack: Any) -> Iterator[FakeGitHub]:
    private = serialization.load_pem_private_key(stack.secret_value("GitHubPrivateKeySecretArn").encode(), None)
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with FakeGitHub(app_id=stack.settings.github_app_id, public_key_pem=public, max_lifetime_seconds=300) as fake:
        stack.set_env("GITHUB_API_URL", fake.url)
        # A new fake may reuse an old port: forget tokens issued by the previous one.
        DEFAULT_TOKEN_CACHE.clear()
        yield fake


@pytest.fixture
def linked(stack: Any, gh: FakeGitHub) -> dict[str, Any]:
    """An org with a project, an installation bound to it and a repository linked to the project."""
    org = "gh-" + uuid.uuid4().hex[:10]
    admin = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": org})["token"]
    ok(stack, "POST", "/v1/projects", admin, 201, json_body={"name": "web"})
    installation_id = int(uuid.uuid4().int % 10**9) + 1
    repo_id = int(uuid.uuid4().int % 10**9) + 1
    full_name = f"{org}/app"
    created = payload("installation.created")
    created["installation"]["id"] = installation_id
    created["repositories"] = [{"id": repo_id, "full_name": full_name, "private": True}]
    status, body = deliver(stack, "installation", created)
    assert (status, body["outcome"]) == (202, "enrolled")
    # an unbound installation is visible to the server admin only
    listed = ok(stack, "GET", "/v1/installations", stack.admin_token, query="limit=200")
    assert any(i["id"] == installation_id and i["org"] is None for i in listed["items"]) or listed["next_cursor"]
    assert ok(stack, "GET", "/v1/repositories", admin)["items"] == []
    ok(stack, "PUT", f"/v1/installations/{installation_id}", stack.admin_token, json_body={"org": org})
    repos = ok(stack, "GET", "/v1/repositories", admin)["items"]
    assert [(r["github_id"], r["full_name"], r["project"]) for r in repos] == [(repo_id, full_name, None)]
    ok(stack, "PUT", f"/v1/repositories/{repo_id}", admin, json_body={"project": "web"})
    gh.add_repo(full_name, repo_id=repo_id, installation_id=installation_id)
    member = ok(stack, "POST", "/v1/tokens", admin, 201, json_body={"subject": "dev", "kind": "user"})
    key = dsse.generate_private_key()
    ok(stack, "POST", "/v1/keys", member["token"], 201, json_body={"public_key_pem": public_pem(key)})
    return {
        "org": org,
        "admin": admin,
        "member": member["token"],
        "key": key,
        "installation_id": installation_id,
        "repo_id": repo_id,
        "full_name": full_name,
    }


def pr_event(linked: dict[str, Any], action: str, number: int, label: str | None = None) -> dict[str, Any]:
    name = "labeled" if label else action
    body = copy.deepcopy(
        payload(f"pull_request.{'opened' if name not in ('synchronize', 'labeled', 'closed') else name}")
    )
    body["action"] = action
    body["number"] = number
    body["repository"]["id"] = linked["repo_id"]
    body["installation"]["id"] = linked["installation_id"]
    if label:
        body["label"]["name"] = label
    return body


def run_delivery(stack: Any, body: dict[str, Any], delivery: str | None = None) -> dict[str, Any]:
    status, result = deliver(stack, "pull_request", body, delivery=delivery)
    assert status == 202, result
    assert result["outcome"] == "started", result
    client = stack.boto3_client("stepfunctions")
    arn = stack.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + result["execution"]
    described = wait_for_execution(client, arn)
    return {"result": result, "status": described["status"], "output": json.loads(described.get("output") or "{}")}


def push_session(stack: Any, linked: dict[str, Any], session: str, commit_numbers: list[int]) -> str:
    """Push a signed attestation; returns its digest."""
    ev = evidence(session, commits=[commit_entry(n) for n in commit_numbers])
    return ok(
        stack,
        "POST",
        "/v1/attestations",
        linked["member"],
        201,
        json_body=sign(statement(ev, org=linked["org"]), linked["key"]),
    )["digest"]


def test_pull_request_life_cycle(stack: Any, gh: FakeGitHub, linked: dict[str, Any]) -> None:
    full_name = linked["full_name"]
    # Given an attested session s-1 with commit 1, and a PR whose commits name s-1 and a ghost
    push_session(stack, linked, "s-1", [1])
    gh.add_pull(
        full_name,
        7,
        ["feat: one\n\nTracemark-Sessions: s-1", "feat: two\n\nTracemark-Sessions: ghost"],
        shas=[sha(1), sha(2)],
    )
    # When the PR is opened
    run = run_delivery(stack, pr_event(linked, "opened", 7))
    # Then the workflow succeeded, with one comment and a failing check (missing session)
    assert run["status"] == "SUCCEEDED", run
    comments = gh.comments_on(full_name, 7)
    assert len(comments) == 1 and comments[0]["body"].startswith(MARKER)
    assert "`s-1`" in comments[0]["body"] and "ghost" in comments[0]["body"]
    check = gh.check_runs_for(full_name, sha(2))
    assert [(c["name"], c["conclusion"]) for c in check] == [(CHECK_NAME, "failure")]
    # the session now lists the PR and carries its score; the dashboard counts one AI-assisted PR
    session = ok(stack, "GET", "/v1/sessions/s-1", linked["member"])
    assert any(p.get("number") == 7 for p in session.get("prs", [])), session
    assert session.get("score", {}).get("flag") in ("green", "yellow", "red"), session
    cards = ok(stack, "GET", "/v1/dashboard/ai", linked["admin"], query="range=7d")
    assert cards["ai_assisted_prs"]["value"] == 1, cards

    # When the same delivery comes again (GitHub redelivery)
    delivery = run["result"]["execution"].removeprefix("gh-")
    status, again = deliver(stack, "pull_request", pr_event(linked, "opened", 7), delivery=delivery)
    assert (status, again["outcome"]) == (202, "duplicate")

    # When the label skip-ai-session is added (read from the API, not the payload)
    gh.pull(full_name, 7).labels.append("skip-ai-session")
    run = run_delivery(stack, pr_event(linked, "labeled", 7, label="skip-ai-session"))
    assert run["status"] == "SUCCEEDED"
    assert [c["conclusion"] for c in gh.check_runs_for(full_name, sha(2))] == ["success"]

    # When a new commit is pushed: the comment is updated in place within the call budget
    gh.calls.clear()
    gh.push(full_name, 7, ["fix: three\n\nTracemark-Sessions: s-1"], shas=[sha(3)])
    run = run_delivery(stack, pr_event(linked, "synchronize", 7))
    assert run["status"] == "SUCCEEDED"
    assert len(gh.comments_on(full_name, 7)) == 1
    assert len(gh.api_calls()) <= 1 + 4
    assert gh.check_runs_for(full_name, sha(3))[0]["conclusion"] == "success"

    # the PR still counts once on the dashboard
    cards = ok(stack, "GET", "/v1/dashboard/ai", linked["admin"], query="range=7d")
    assert cards["ai_assisted_prs"]["value"] == 1

    # When the PR is closed: nothing is started, and a late attestation starts nothing either
    gh.pull(full_name, 7).state = "closed"
    gh.calls.clear()
    status, closed = deliver(stack, "pull_request", pr_event(linked, "closed", 7))
    assert (status, closed["outcome"]) == (202, "ignored")
    from tracemark_common.prs import runtime

    assert runtime.correlate_again(linked["org"], "ghost", "e" * 64) == []
    assert gh.calls == []


def test_failed_run_is_rerun_on_redelivery(stack: Any, gh: FakeGitHub, linked: dict[str, Any]) -> None:
    gh.add_pull(linked["full_name"], 3, ["x\n\nTracemark-Sessions: ghost"])
    gh.fail("GET", r"/pulls/3$", 403, times=1, body={"message": "Resource not accessible by integration"})
    first = run_delivery(stack, pr_event(linked, "opened", 3), delivery="fixed-delivery-1")
    assert first["status"] == "FAILED"
    second = run_delivery(stack, pr_event(linked, "opened", 3), delivery="fixed-delivery-1")
    assert second["result"]["execution"] == "gh-fixed-delivery-1-r1"
    assert second["status"] == "SUCCEEDED"
    assert len(gh.comments_on(linked["full_name"], 3)) == 1


def test_deleted_pull_request_ends_quietly(stack: Any, gh: FakeGitHub, linked: dict[str, Any]) -> None:
    gh.add_pull(linked["full_name"], 4, ["x\n\nTracemark-Sessions: s"]).deleted = True
    run = run_delivery(stack, pr_event(linked, "opened", 4))
    assert run["status"] == "SUCCEEDED"
    assert run["output"]["pr"]["skip"] is True
    assert gh.comments_on(linked["full_name"], 4) == [] and gh.check_runs == {}


def test_transient_github_errors_are_retried(stack: Any, gh: FakeGitHub, linked: dict[str, Any]) -> None:
    gh.add_pull(linked["full_name"], 5, ["x\n\nTracemark-Sessions: ghost"])
    gh.fail("GET", r"/pulls/5/commits$", 502, times=1)
    gh.fail("POST", r"/issues/5/comments$", 429, headers={"Retry-After": "0"})
    gh.fail_secondary_rate_limit("POST", r"/check-runs$", retry_after=0)
    run = run_delivery(stack, pr_event(linked, "opened", 5))
    assert run["status"] == "SUCCEEDED"
    assert len(gh.comments_on(linked["full_name"], 5)) == 1
    assert len(gh.check_runs_for(linked["full_name"])) == 1


def test_unlinked_repository_starts_nothing(stack: Any, gh: FakeGitHub, linked: dict[str, Any]) -> None:
    ok(stack, "PUT", f"/v1/repositories/{linked['repo_id']}", linked["admin"], json_body={"project": None})
    status, body = deliver(stack, "pull_request", pr_event(linked, "opened", 1))
    assert (status, body["outcome"]) == (202, "ignored")
    assert gh.calls == []


@pytest.mark.usefixtures("gh")
def test_bad_and_missing_signatures_are_401(stack: Any) -> None:
    body = payload("pull_request.opened")
    assert deliver(stack, "pull_request", body, secret="wrong")[0] == 401
    assert deliver(stack, "pull_request", body, signature="")[0] == 401
    assert deliver(stack, "pull_request", body, signature="sha1=abc")[0] == 401
    # a signature over other bytes
    status, _ = deliver(
        stack,
        "pull_request",
        body,
        raw=json.dumps(body).encode() + b" ",
        signature=signature_for(stack.secret_value("GitHubWebhookSecretArn"), json.dumps(body).encode()),
    )
    assert status == 401


@pytest.mark.usefixtures("gh")
def test_unknown_events_and_malformed_payloads(stack: Any) -> None:
    assert deliver(stack, "ping", {"zen": "Keep it logically awesome."}) == (
        202,
        {"outcome": "ignored", "detail": "event 'ping' is not used"},
    )
    assert deliver(stack, "check_run", payload("check_run.created"))[0] == 202
    assert deliver(stack, "pull_request", None, raw=b"{not json")[0] == 400
    assert deliver(stack, "pull_request", {"action": "opened"})[0] == 400
    assert deliver(stack, "pull_request", payload("pull_request.opened"), delivery="bad id!")[0] == 400


def test_admin_routes_enforce_roles_and_input(stack: Any, linked: dict[str, Any]) -> None:
    admin, member = linked["admin"], linked["member"]
    code, _, _ = stack.invoke_http("GET", "/v1/installations", headers={"Authorization": f"Bearer {admin}"})
    assert code == 403
    code, _, _ = stack.invoke_http("GET", "/v1/repositories", headers={"Authorization": f"Bearer {member}"})
    assert code == 403
    code, _, _ = stack.invoke_http("GET", "/v1/repositories")
    assert code == 401
    repo = linked["repo_id"]
    ok(stack, "PUT", f"/v1/repositories/{repo}", admin, 404, json_body={"project": "nope"})
    ok(stack, "PUT", f"/v1/repositories/{repo}", admin, 400, json_body={"project": ["x"]})
    ok(stack, "PUT", f"/v1/repositories/{repo}", admin, 400, body=b"[]")
    ok(stack, "PUT", "/v1/repositories/abc", admin, 400, json_body={"project": "web"})
    ok(stack, "PUT", "/v1/repositories/999999999999", admin, 404, json_body={"project": "web"})
    ok(
        stack,
        "PUT",
        f"/v1/installations/{linked['installation_id']}",
        stack.admin_token,
        404,
        json_body={"org": "no-such-org"},
    )
    ok(stack, "PUT", "/v1/installations/1", admin, 403, json_body={"org": linked["org"]})
    # another org's admin sees none of these repositories
    other = ok(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": "gh-" + uuid.uuid4().hex[:10]})
    assert ok(stack, "GET", "/v1/repositories", other["token"])["items"] == []
    ok(stack, "PUT", f"/v1/repositories/{repo}", other["token"], 404, json_body={"project": "web"})


def test_late_attestation_correlates_the_open_pr_again(stack: Any, gh: FakeGitHub, linked: dict[str, Any]) -> None:
    from tracemark_common.prs import runtime

    full_name = linked["full_name"]
    # Given an open PR whose trailer names a session nobody has pushed yet
    gh.add_pull(full_name, 8, ["feat\n\nTracemark-Sessions: late-1"], shas=[sha(11)])
    assert run_delivery(stack, pr_event(linked, "opened", 8))["status"] == "SUCCEEDED"
    assert gh.check_runs_for(full_name, sha(11))[0]["conclusion"] == "failure"
    # When the session is attested: ingest starts the workflow again for that PR
    digest = push_session(stack, linked, "late-1", [11])
    client = stack.boto3_client("stepfunctions")
    executions = client.list_executions(stateMachineArn=stack.settings.state_machine_arn)["executions"]
    late = [e for e in executions if e["name"].startswith("att-")]
    assert late, "ingest started no att- execution"
    for execution in late:
        assert wait_for_execution(client, execution["executionArn"])["status"] == "SUCCEEDED"
    # Then the same comment and check run now show the session
    assert gh.check_runs_for(full_name, sha(11))[0]["conclusion"] == "success"
    comments = gh.comments_on(full_name, 8)
    assert len(comments) == 1 and "Missing sessions" not in comments[0]["body"]
    # The same attestation again starts nothing new
    assert runtime.correlate_again(linked["org"], "late-1", digest) == []


def test_racing_executions_leave_one_comment_for_the_newest_head(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any]
) -> None:
    full_name = linked["full_name"]
    gh.add_pull(full_name, 9, ["a\n\nTracemark-Sessions: ghost-a"])
    client = stack.boto3_client("stepfunctions")
    # Given two deliveries for the same PR started together (moto runs them on worker threads)
    names = []
    for action in ("opened", "synchronize", "reopened"):
        status, result = deliver(stack, "pull_request", pr_event(linked, action, 9))
        assert (status, result["outcome"]) == (202, "started")
        names.append(result["execution"])
    prefix = stack.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + ":"
    # While they run, the branch moves on
    head = gh.push(full_name, 9, ["b\n\nTracemark-Sessions: ghost-b"])
    statuses = [wait_for_execution(client, prefix + name)["status"] for name in names]
    assert statuses == ["SUCCEEDED"] * 3
    # A final run for the new head, as GitHub's synchronize webhook for it would start
    assert run_delivery(stack, pr_event(linked, "synchronize", 9))["status"] == "SUCCEEDED"
    comments = gh.comments_on(full_name, 9)
    assert len(comments) == 1
    assert head[:12] in comments[0]["body"] and "ghost-b" in comments[0]["body"]
    assert gh.check_runs_for(full_name, head)[0]["conclusion"] == "failure"
    assert len(gh.check_runs_for(full_name, head)) == 1


@pytest.mark.usefixtures("gh")
def test_oversize_webhook_body_is_413(stack: Any) -> None:
    big = json.dumps({"action": "opened", "pad": "x" * (5 * 1024 * 1024 + 10)}).encode()
    assert deliver(stack, "pull_request", None, raw=big)[0] == 413


def test_admin_lists_paginate_and_refuse_hostile_input(stack: Any, linked: dict[str, Any]) -> None:
    admin = linked["admin"]
    more = payload("installation_repositories.added")
    more["installation"]["id"] = linked["installation_id"]
    more["repositories_added"] = [
        {"id": linked["repo_id"] + n, "full_name": f"{linked['org']}/extra-{n}", "private": False} for n in (1, 2)
    ]
    assert deliver(stack, "installation_repositories", more)[0] == 202
    first = ok(stack, "GET", "/v1/repositories", admin, query="limit=2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = ok(stack, "GET", "/v1/repositories", admin, query=f"limit=2&cursor={first['next_cursor']}")
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    names = [r["full_name"] for r in first["items"] + second["items"]]
    assert names == sorted(names) and len(set(names)) == 3
    ok(stack, "GET", "/v1/repositories", admin, 400, query="limit=0")
    ok(stack, "GET", "/v1/repositories", admin, 400, query="cursor=not-a-cursor")
    ok(stack, "PUT", f"/v1/repositories/{linked['repo_id']}", admin, 400, body=b"{" * 5000)
    ok(stack, "PUT", f"/v1/repositories/{linked['repo_id']}", admin, 400, body=b"{not json")
    ok(stack, "PUT", f"/v1/repositories/{linked['repo_id']}", admin, 400, json_body={"project": "../etc"})
    ok(stack, "PUT", f"/v1/installations/{linked['installation_id']}", stack.admin_token, 400, json_body={"org": 5})
    installs = ok(stack, "GET", "/v1/installations", stack.admin_token, query="limit=1")
    assert len(installs["items"]) == 1
