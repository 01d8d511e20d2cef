"""Webhook deliveries (SPEC §3.4): enrolment of installations and repositories, and which
pull-request events start the correlation workflow. No HTTP and no AWS here: the Lambda
handler verifies the signature and parses the body; the workflow is started through the
`WorkflowStarter` port.

Execution names are `gh-<delivery id>`; when the execution of that name failed (a redelivery
after a failure), the next free `gh-<delivery id>-r<n>` is used. A redelivery whose execution
is running or succeeded is acknowledged and does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tracemark_common.errors import BadRequest
from tracemark_common.prs.records import (
    ACTIVE,
    DELETED,
    REMOVED,
    SUSPENDED,
    DeliveryRecord,
    InstallationRecord,
    PullRequestState,
    RepositoryRecord,
)
from tracemark_common.prs.store import GitHubStore

SKIP_LABEL = "skip-ai-session"
PR_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
LABEL_ACTIONS = frozenset({"labeled", "unlabeled"})
MAX_RERUNS = 20
FAILED_STATES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EVENT = re.compile(r"^[a-z_]{1,64}$")
_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_GITHUB_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class ExecutionExists(Exception):
    """An execution of that name exists already (running, succeeded or failed)."""


class WorkflowStarter(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> None: ...  # ExecutionExists
    def status(self, name: str) -> str | None: ...  # RUNNING | SUCCEEDED | FAILED | ... | None


@dataclass(frozen=True)
class WebhookResult:
    outcome: str  # started | duplicate | ignored | enrolled | updated
    detail: str = ""
    execution: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": self.outcome}
        if self.detail:
            body["detail"] = self.detail
        if self.execution:
            body["execution"] = self.execution
        return body


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"malformed payload: {what} must be a positive integer", code="malformed_payload")
    return value


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"malformed payload: {what} must be an object", code="malformed_payload")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"malformed payload: {what} must be a string", code="malformed_payload")
    return value


def check_delivery_id(delivery_id: str) -> str:
    if not _DELIVERY_ID.fullmatch(delivery_id or ""):
        raise BadRequest("X-GitHub-Delivery must be a GUID", code="malformed_delivery")
    return delivery_id


def check_event(event: str) -> str:
    if not _EVENT.fullmatch(event or ""):
        raise BadRequest("X-GitHub-Event is missing or malformed", code="malformed_event")
    return event


def handle_delivery(
    event: str,
    delivery_id: str,
    payload: Any,
    *,
    store: GitHubStore,
    starter: WorkflowStarter,
    now: Callable[[], str] = _now,
) -> WebhookResult:
    """Act on one verified delivery. Raises `BadRequest` for a malformed payload."""
    check_event(event)
    check_delivery_id(delivery_id)
    body = _obj(payload, "the body")
    action = body.get("action") if isinstance(body.get("action"), str) else ""
    if event == "pull_request":
        return _pull_request(delivery_id, body, str(action), store=store, starter=starter)
    if event not in ("installation", "installation_repositories"):
        return WebhookResult("ignored", f"event {event!r} is not used")
    if not store.record_delivery(DeliveryRecord(delivery_id, event, str(action), now())):
        return WebhookResult("duplicate", "delivery already processed")
    if event == "installation":
        return _installation(body, str(action), store, now())
    return _installation_repositories(body, str(action), store, now())


# -- enrolment --------------------------------------------------------------------------------------


def _repositories(items: Any, what: str) -> list[tuple[int, str, bool]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadRequest(f"malformed payload: {what} must be a list", code="malformed_payload")
    repos = []
    for item in items:
        repo = _obj(item, f"{what}[]")
        full_name = _str(repo.get("full_name"), f"{what}[].full_name")
        if not _FULL_NAME.fullmatch(full_name):
            raise BadRequest(f"malformed payload: {what}[].full_name is not owner/name", code="malformed_payload")
        repos.append((_int(repo.get("id"), f"{what}[].id"), full_name, bool(repo.get("private", False))))
    return repos


def _enrol(store: GitHubStore, installation_id: int, repos: list[tuple[int, str, bool]], at: str) -> None:
    for repo_id, full_name, private in repos:
        existing = store.get_repository(repo_id)
        record = RepositoryRecord(repo_id, full_name, installation_id, at, ACTIVE, None, private)
        if existing is not None and existing.installation_id == installation_id:
            record.project = existing.project  # a re-added repository keeps its link
        store.put_repository(record)


def _remove(store: GitHubStore, repos: list[tuple[int, str, bool]], at: str) -> None:
    for repo_id, _, _ in repos:

        def change(record: RepositoryRecord) -> None:
            record.status = REMOVED
            record.updated_at = at

        store.update_repository(repo_id, change)


def _installation(body: dict[str, Any], action: str, store: GitHubStore, at: str) -> WebhookResult:
    installation = _obj(body.get("installation"), "installation")
    installation_id = _int(installation.get("id"), "installation.id")
    account: dict[str, Any] = installation["account"] if isinstance(installation.get("account"), dict) else {}
    login = str(account.get("login") or "")[:100]
    status = {"deleted": DELETED, "suspend": SUSPENDED}.get(action, ACTIVE)
    if action not in ("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"):
        return WebhookResult("ignored", f"installation action {action!r} is not used")
    existing = store.get_installation(installation_id)
    record = existing or InstallationRecord(installation_id, login, str(account.get("type") or ""), at, at)
    record.status = status
    record.updated_at = at
    record.account = login or record.account
    selection = installation.get("repository_selection")
    if isinstance(selection, str):
        record.repository_selection = selection[:20]
    store.put_installation(record)
    repos = _repositories(body.get("repositories"), "repositories")
    if action == "created":
        _enrol(store, installation_id, repos, at)
    return WebhookResult("enrolled" if action == "created" else "updated", f"installation {installation_id} {status}")


def _installation_repositories(body: dict[str, Any], action: str, store: GitHubStore, at: str) -> WebhookResult:
    installation = _obj(body.get("installation"), "installation")
    installation_id = _int(installation.get("id"), "installation.id")
    added = _repositories(body.get("repositories_added"), "repositories_added")
    removed = _repositories(body.get("repositories_removed"), "repositories_removed")
    if store.get_installation(installation_id) is None:
        account: dict[str, Any] = installation["account"] if isinstance(installation.get("account"), dict) else {}
        store.put_installation(InstallationRecord(installation_id, str(account.get("login") or "")[:100], "", at, at))
    _enrol(store, installation_id, added, at)
    _remove(store, removed, at)
    return WebhookResult("enrolled", f"{len(added)} added, {len(removed)} removed")


# -- pull requests ----------------------------------------------------------------------------------


def _pull_request(
    delivery_id: str, body: dict[str, Any], action: str, *, store: GitHubStore, starter: WorkflowStarter
) -> WebhookResult:
    number = _int(body.get("number"), "number")
    repository_id = _int(_obj(body.get("repository"), "repository").get("id"), "repository.id")
    installation_id = _int(_obj(body.get("installation"), "installation").get("id"), "installation.id")
    event_at = _event_time(_obj(body.get("pull_request"), "pull_request"))
    label = None
    if action in LABEL_ACTIONS:
        label = _str(_obj(body.get("label"), "label").get("name"), "label.name")
        if label != SKIP_LABEL:
            return WebhookResult("ignored", f"label {label[:50]!r} does not affect correlation")
    elif action == "closed":
        _mark_closed(store, repository_id, number, event_at)
        return WebhookResult("ignored", "closed pull requests are not updated")
    elif action not in PR_ACTIONS:
        return WebhookResult("ignored", f"pull_request action {action[:30]!r} does not start correlation")
    repository = store.get_repository(repository_id)
    if repository is None:
        # The App was installed before this backend saw the installation webhook: enrol what the
        # (signed) delivery names, so the server admin can bind it; nothing runs until then.
        _enrol_from_pull_request(body, installation_id, repository_id, store)
        return WebhookResult("ignored", "repository was not enrolled; recorded it for an admin to link")
    if repository.status != ACTIVE or repository.installation_id != installation_id:
        return WebhookResult("ignored", "repository is not enrolled")
    installation = store.get_installation(installation_id)
    if installation is None or not installation.usable:
        return WebhookResult("ignored", "installation is not bound to an organisation or is not active")
    if not repository.project:
        return WebhookResult("ignored", "repository is not linked to a project")
    payload: dict[str, Any] = {
        "installation_id": installation_id,
        "repository_id": repository_id,
        "pr_number": number,
        "delivery_id": delivery_id,
        "action": action,
    }
    if label is not None:
        payload["label"] = label
    if event_at is not None:
        _note_event(store, repository_id, number, event_at)
    return start_execution(starter, f"gh-{delivery_id}", payload)


def _event_time(pull_request: dict[str, Any]) -> str | None:
    """GitHub's `updated_at` of the pull request in a delivery (`YYYY-MM-DDTHH:MM:SSZ`), if any."""
    value = pull_request.get("updated_at")
    return value if isinstance(value, str) and _GITHUB_TIME.fullmatch(value) else None


def _note_event(store: GitHubStore, repository_id: int, number: int, event_at: str) -> None:
    def change(state: PullRequestState) -> None:
        if state.event_at is None or event_at > state.event_at:
            state.event_at = event_at

    store.update_pull(repository_id, number, change)


def _mark_closed(store: GitHubStore, repository_id: int, number: int, event_at: str | None = None) -> None:
    """A late attestation must not start a run for a closed PR (`runtime.correlate_again`). A
    "closed" older than an event already handled (a reopen, delivered first) changes nothing."""
    if store.get_pull(repository_id, number) is None:
        return

    def change(state: PullRequestState) -> None:
        if event_at is not None and state.event_at is not None and event_at < state.event_at:
            return
        state.status = "closed"
        state.updated_at = _now()
        if event_at is not None:
            state.event_at = event_at

    store.update_pull(repository_id, number, change)


def _enrol_from_pull_request(
    body: dict[str, Any], installation_id: int, repository_id: int, store: GitHubStore
) -> None:
    full_name = body["repository"].get("full_name")
    if not isinstance(full_name, str) or not _FULL_NAME.fullmatch(full_name):
        return
    at = _now()
    if store.get_installation(installation_id) is None:
        owner = full_name.split("/")[0]
        store.put_installation(InstallationRecord(installation_id, owner, "", at, at))
    private = bool(body["repository"].get("private", False))
    store.put_repository(RepositoryRecord(repository_id, full_name, installation_id, at, ACTIVE, None, private))


def start_execution(starter: WorkflowStarter, base_name: str, payload: dict[str, Any]) -> WebhookResult:
    """Start `base_name`, or `base_name-r<n>` after failed runs; a live or finished run is a duplicate."""
    name = base_name
    for attempt in range(MAX_RERUNS + 1):
        name = base_name if attempt == 0 else f"{base_name}-r{attempt}"
        try:
            starter.start(name, payload)
        except ExecutionExists:
            status = starter.status(name)
            if status in FAILED_STATES:
                continue
            return WebhookResult("duplicate", f"execution {name} is {status or 'known'}", name)
        return WebhookResult("started", "", name)
    return WebhookResult("duplicate", f"{MAX_RERUNS} failed reruns of {base_name}; not starting another", name)
