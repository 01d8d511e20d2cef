"""What the GitHub side stores, as plain data (no AWS): installations, repositories, pull-request
state and webhook deliveries. `prs.store` holds the interface and the in-memory fake,
`prs.dynamo` the DynamoDB adapter (item layout in docs/architecture.md, "GitHub App").
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIVE = "active"
SUSPENDED = "suspended"
DELETED = "deleted"
REMOVED = "removed"


@dataclass
class InstallationRecord:
    """A GitHub App installation seen in an `installation*` webhook; bound to one org by the
    server admin (`org` None until then)."""

    id: int
    account: str
    account_type: str
    created_at: str
    updated_at: str
    status: str = ACTIVE  # active | suspended | deleted
    org: str | None = None
    repository_selection: str = ""

    @property
    def usable(self) -> bool:
        return self.status == ACTIVE and self.org is not None


@dataclass
class RepositoryRecord:
    """A repository of an installation; linked to a project by an org admin (`project`)."""

    id: int
    full_name: str
    installation_id: int
    updated_at: str
    status: str = ACTIVE  # active | removed
    project: str | None = None
    private: bool = False


@dataclass
class PullRequestState:
    """What the workflow remembers of one pull request (written with conditional updates)."""

    repository_id: int
    number: int
    comment_id: int | None = None
    check_runs: dict[str, int] = field(default_factory=dict)  # head sha -> check run id
    # head shas whose check run was being created when the step failed (its id may be unknown)
    check_pending: list[str] = field(default_factory=list)
    published_head: str | None = None  # head sha of the last published comment
    published_at: str | None = None
    lock_owner: str | None = None  # the execution publishing right now
    lock_expires: float = 0.0
    status: str = "open"  # open | closed | deleted
    session_ids: list[str] = field(default_factory=list)  # trailer references at the last run
    last_error: str | None = None
    correlated_at: str | None = None  # first time a verified session was found (dashboard)
    # the newest `pull_request.updated_at` of the webhooks handled: a "closed" delivered after a
    # newer "reopened" (GitHub does not guarantee delivery order) does not close the PR here
    event_at: str | None = None
    updated_at: str = ""
    version: int = 0


@dataclass
class DeliveryRecord:
    id: str
    event: str
    action: str
    received_at: str
    outcome: str = ""
