"""Webhook deliveries, domain side: enrolment, which events start the workflow, redeliveries."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tracemark_common.errors import BadRequest
from tracemark_common.prs.records import DELETED, REMOVED, SUSPENDED
from tracemark_common.prs.store import MemoryGitHubStore
from tracemark_common.prs.webhook import ExecutionExists, handle_delivery

FIXTURES = Path(__file__).parents[2] / "fixtures" / "github"


def payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"github_webhook_{name}.json").read_text())


class Starter:
    """An in-memory `WorkflowStarter` with Step Functions' name semantics."""

    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, str] = {}

    def start(self, name: str, input_: dict[str, Any]) -> None:
        if name in self.executions:
            raise ExecutionExists(name)
        self.executions[name] = input_
        self.statuses[name] = "RUNNING"

    def status(self, name: str) -> str | None:
        return self.statuses.get(name)


@pytest.fixture
def store() -> MemoryGitHubStore:
    return MemoryGitHubStore()


@pytest.fixture
def starter() -> Starter:
    return Starter()


def enrol_and_link(store: MemoryGitHubStore, starter: Starter, repo_id: int, installation_id: int = 1) -> None:
    created = payload("installation.created")
    created["installation"]["id"] = installation_id
    created["repositories"] = [{"id": repo_id, "full_name": "Codertocat/Hello-World", "private": False}]
    handle_delivery("installation", f"inst-{installation_id}-{repo_id}", created, store=store, starter=starter)
    store.update_installation(installation_id, lambda i: setattr(i, "org", "acme"))
    store.update_repository(repo_id, lambda r: setattr(r, "project", "web"))


def test_installation_created_enrols_its_repositories(store: MemoryGitHubStore, starter: Starter) -> None:
    # Given the real octokit installation.created payload
    body = payload("installation.created")
    # When it is delivered
    result = handle_delivery("installation", "d-1", body, store=store, starter=starter)
    # Then the installation and every listed repository are known, unbound and unlinked
    assert result.outcome == "enrolled"
    installation = store.get_installation(body["installation"]["id"])
    assert installation is not None and installation.org is None
    assert installation.account == body["installation"]["account"]["login"]
    repos = store.repositories_of(body["installation"]["id"])
    assert {r.id for r in repos} == {r["id"] for r in body["repositories"]}
    assert all(r.project is None for r in repos)


def test_installation_deleted_and_suspended_keep_history(store: MemoryGitHubStore, starter: Starter) -> None:
    handle_delivery("installation", "d-1", payload("installation.created"), store=store, starter=starter)
    deleted = payload("installation.deleted")
    handle_delivery("installation", "d-2", deleted, store=store, starter=starter)
    record = store.get_installation(deleted["installation"]["id"])
    assert record is not None and record.status == DELETED
    suspend = copy.deepcopy(deleted)
    suspend["action"] = "suspend"
    handle_delivery("installation", "d-3", suspend, store=store, starter=starter)
    record = store.get_installation(deleted["installation"]["id"])
    assert record is not None and record.status == SUSPENDED


def test_installation_repositories_added_and_removed(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("installation_repositories.added")
    result = handle_delivery("installation_repositories", "d-1", body, store=store, starter=starter)
    assert result.outcome == "enrolled"
    added = body["repositories_added"]
    assert store.get_repository(added[0]["id"]) is not None
    store.update_repository(added[0]["id"], lambda r: setattr(r, "project", "web"))
    removed = copy.deepcopy(body)
    removed["action"] = "removed"
    removed["repositories_removed"], removed["repositories_added"] = added, []
    handle_delivery("installation_repositories", "d-2", removed, store=store, starter=starter)
    repo = store.get_repository(added[0]["id"])
    assert repo is not None and repo.status == REMOVED and repo.project == "web"
    # re-added: active again and still linked
    handle_delivery("installation_repositories", "d-3", body, store=store, starter=starter)
    repo = store.get_repository(added[0]["id"])
    assert repo is not None and repo.status == "active" and repo.project == "web"


def test_duplicate_installation_delivery_is_not_applied_twice(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("installation.created")
    handle_delivery("installation", "same", body, store=store, starter=starter)
    store.update_installation(body["installation"]["id"], lambda i: setattr(i, "org", "acme"))
    again = handle_delivery("installation", "same", body, store=store, starter=starter)
    assert again.outcome == "duplicate"
    record = store.get_installation(body["installation"]["id"])
    assert record is not None and record.org == "acme"


@pytest.mark.parametrize("name", ["opened", "synchronize", "reopened"])
def test_pull_request_events_start_the_workflow(store: MemoryGitHubStore, starter: Starter, name: str) -> None:
    # Given a linked repository
    body = payload(f"pull_request.{name}")
    enrol_and_link(store, starter, body["repository"]["id"])
    # When the event arrives
    result = handle_delivery("pull_request", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body, store=store, starter=starter)
    # Then one execution is started, named after the delivery, with ids only
    assert result.outcome == "started"
    assert result.execution == "gh-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert starter.executions[result.execution] == {
        "installation_id": 1,
        "repository_id": body["repository"]["id"],
        "pr_number": body["number"],
        "delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "action": name,
    }


def test_skip_label_starts_other_labels_do_not(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("pull_request.labeled")
    enrol_and_link(store, starter, body["repository"]["id"])
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).outcome == "ignored"
    body["label"]["name"] = "skip-ai-session"
    result = handle_delivery("pull_request", "d-2", body, store=store, starter=starter)
    assert result.outcome == "started"
    assert starter.executions["gh-d-2"]["label"] == "skip-ai-session"
    body["action"] = "unlabeled"
    assert handle_delivery("pull_request", "d-3", body, store=store, starter=starter).outcome == "started"


def test_closed_pull_request_is_ignored(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("pull_request.closed")
    enrol_and_link(store, starter, body["repository"]["id"])
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).outcome == "ignored"
    assert starter.executions == {}


@pytest.mark.parametrize("state", ["unknown", "unbound", "unlinked", "removed", "suspended"])
def test_events_for_unlinked_repositories_start_nothing(store: MemoryGitHubStore, starter: Starter, state: str) -> None:
    body = payload("pull_request.opened")
    repo_id = body["repository"]["id"]
    if state != "unknown":
        enrol_and_link(store, starter, repo_id)
    if state == "unbound":
        store.update_installation(1, lambda i: setattr(i, "org", None))
    if state == "unlinked":
        store.update_repository(repo_id, lambda r: setattr(r, "project", None))
    if state == "removed":
        store.update_repository(repo_id, lambda r: setattr(r, "status", REMOVED))
    if state == "suspended":
        store.update_installation(1, lambda i: setattr(i, "status", SUSPENDED))
    result = handle_delivery("pull_request", "d-1", body, store=store, starter=starter)
    assert result.outcome == "ignored"
    assert starter.executions == {}


def test_installation_mismatch_is_ignored(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("pull_request.opened")
    enrol_and_link(store, starter, body["repository"]["id"])
    body["installation"]["id"] = 999
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).outcome == "ignored"


def test_redelivery_of_a_running_or_finished_execution_is_a_duplicate(
    store: MemoryGitHubStore, starter: Starter
) -> None:
    body = payload("pull_request.synchronize")
    enrol_and_link(store, starter, body["repository"]["id"])
    handle_delivery("pull_request", "d-1", body, store=store, starter=starter)
    again = handle_delivery("pull_request", "d-1", body, store=store, starter=starter)
    assert again.outcome == "duplicate"
    starter.statuses["gh-d-1"] = "SUCCEEDED"
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).outcome == "duplicate"
    assert list(starter.executions) == ["gh-d-1"]


def test_redelivery_after_a_failed_run_starts_r1_then_r2(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("pull_request.synchronize")
    enrol_and_link(store, starter, body["repository"]["id"])
    handle_delivery("pull_request", "d-1", body, store=store, starter=starter)
    starter.statuses["gh-d-1"] = "FAILED"
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).execution == "gh-d-1-r1"
    starter.statuses["gh-d-1-r1"] = "TIMED_OUT"
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).execution == "gh-d-1-r2"
    assert handle_delivery("pull_request", "d-1", body, store=store, starter=starter).outcome == "duplicate"


@pytest.mark.parametrize("event", ["ping", "check_run", "push", "issues"])
def test_unknown_events_are_ignored(store: MemoryGitHubStore, starter: Starter, event: str) -> None:
    assert handle_delivery(event, "d-1", {"zen": "x"}, store=store, starter=starter).outcome == "ignored"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("number"),
        lambda b: b.__setitem__("number", "5"),
        lambda b: b.__setitem__("repository", None),
        lambda b: b["repository"].__setitem__("id", -1),
        lambda b: b.pop("installation"),
        lambda b: b["installation"].__setitem__("id", True),
        lambda b: b.pop("pull_request"),
    ],
)
def test_malformed_pull_request_payloads(store: MemoryGitHubStore, starter: Starter, mutate: Any) -> None:
    body = payload("pull_request.opened")
    mutate(body)
    with pytest.raises(BadRequest):
        handle_delivery("pull_request", "d-1", body, store=store, starter=starter)


@pytest.mark.parametrize("body", [[], "x", None, 5])
def test_body_must_be_an_object(store: MemoryGitHubStore, starter: Starter, body: Any) -> None:
    with pytest.raises(BadRequest):
        handle_delivery("pull_request", "d-1", body, store=store, starter=starter)


def test_malformed_installation_payloads(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("installation.created")
    body["repositories"] = [{"id": 5, "full_name": "../../etc"}]
    with pytest.raises(BadRequest):
        handle_delivery("installation", "d-1", body, store=store, starter=starter)
    body["repositories"] = "nope"
    with pytest.raises(BadRequest):
        handle_delivery("installation", "d-2", body, store=store, starter=starter)


@pytest.mark.parametrize("delivery", ["", "a" * 65, "../x", "id with space", "x;y"])
def test_hostile_delivery_ids(store: MemoryGitHubStore, starter: Starter, delivery: str) -> None:
    with pytest.raises(BadRequest):
        handle_delivery("pull_request", delivery, payload("pull_request.opened"), store=store, starter=starter)


@pytest.mark.parametrize("event", ["", "Pull_Request", "a" * 65, "x y"])
def test_hostile_event_names(store: MemoryGitHubStore, starter: Starter, event: str) -> None:
    with pytest.raises(BadRequest):
        handle_delivery(event, "d-1", {}, store=store, starter=starter)


def test_pull_request_from_an_unseen_installation_is_recorded_for_linking(
    store: MemoryGitHubStore, starter: Starter
) -> None:
    # Given the backend never saw the installation webhook
    body = payload("pull_request.opened")
    # When a pull_request delivery arrives
    result = handle_delivery("pull_request", "d-1", body, store=store, starter=starter)
    # Then nothing runs, but the installation and repository are known (unbound, unlinked)
    assert result.outcome == "ignored"
    assert starter.executions == {}
    installation = store.get_installation(1)
    repository = store.get_repository(body["repository"]["id"])
    assert installation is not None and installation.org is None
    assert repository is not None and repository.full_name == body["repository"]["full_name"]
    assert repository.project is None


def test_closed_marks_a_known_pull_request_closed(store: MemoryGitHubStore, starter: Starter) -> None:
    body = payload("pull_request.closed")
    enrol_and_link(store, starter, body["repository"]["id"])
    store.update_pull(body["repository"]["id"], body["number"], lambda s: None)
    handle_delivery("pull_request", "d-1", body, store=store, starter=starter)
    state = store.get_pull(body["repository"]["id"], body["number"])
    assert state is not None and state.status == "closed"
    # an unknown PR is not created by a close
    body["number"] = 999
    handle_delivery("pull_request", "d-2", body, store=store, starter=starter)
    assert store.get_pull(body["repository"]["id"], 999) is None
