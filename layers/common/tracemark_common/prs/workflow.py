"""The four steps of the PR correlation workflow (SPEC §3.5), free of AWS: GitHub, storage and
session look-ups come in through `WorkflowDeps`. The Lambda handlers in `functions/wf_*` call
these with the state of the Step Functions execution:

    {"input": {"installation_id", "repository_id", "pr_number", "delivery_id", "action", "label"?},
     "execution": "<execution name>",
     "pr": <load_pull_request>, "correlation": <correlate_pull_request>,
     "comment": <publish_comment>, "check": <publish_check>}

The PR is read from the API (never from the webhook payload). Publishing holds a short lease on
the PR's state item (conditional writes): the head sha is re-read under the lease, so two
executions racing for one PR end with the newest head's comment, and the comment id is stored
before the lease is released, so there is never a second comment.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tracemark_common.errors import BadRequest
from tracemark_common.github.client import GitHubNotFound, check_full_name, check_sha
from tracemark_common.prs.correlate import PrCommit, SessionLookup, correlate
from tracemark_common.prs.records import ACTIVE, PullRequestState
from tracemark_common.prs.render import (
    MARKER,
    CheckResult,
    Links,
    render_check,
    render_comment,
    repo_web_url,
)
from tracemark_common.prs.store import GitHubStore
from tracemark_common.prs.webhook import SKIP_LABEL

LEASE_SECONDS = 120.0
LEASE_WAIT_SECONDS = 8.0
NO_SESSIONS_ANY_MORE = (
    f"{MARKER}\n### Tracemark: AI coding sessions in this pull request\n\n"
    "No commit of this pull request names an AI session any more."
)
_EXECUTION = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_HEX_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class PublishBusy(Exception):
    """Another execution is publishing to this PR right now; Step Functions retries the step."""


class PullRequestApi(Protocol):
    """The part of `GitHubClient` the workflow uses."""

    def get_pull(self, installation_id: int, full_name: str, number: int) -> dict[str, Any]: ...
    def list_pull_commits(
        self,
        installation_id: int,
        full_name: str,
        number: int,
        *,
        base_sha: str = "",
        head_sha: str = "",
        total: int | None = None,
    ) -> list[dict[str, Any]]: ...
    def list_issue_comments(self, installation_id: int, full_name: str, number: int) -> Iterator[dict[str, Any]]: ...
    def create_issue_comment(self, installation_id: int, full_name: str, number: int, body: str) -> dict[str, Any]: ...
    def update_issue_comment(
        self, installation_id: int, full_name: str, comment_id: int, body: str
    ) -> dict[str, Any]: ...
    def create_check_run(self, installation_id: int, full_name: str, fields: dict[str, Any]) -> dict[str, Any]: ...
    def update_check_run(
        self, installation_id: int, full_name: str, check_run_id: int, fields: dict[str, Any]
    ) -> dict[str, Any]: ...
    def find_check_run(self, installation_id: int, full_name: str, head_sha: str, name: str) -> int | None: ...


@dataclass
class WorkflowDeps:
    store: GitHubStore
    github: PullRequestApi
    sessions: SessionLookup
    dashboard_url: str = ""
    # (org, project, repository id, PR number, when) -> the dashboard's AI-assisted PR counter
    on_correlated: Callable[[str, str, int, int, datetime], object] | None = None
    # (org, session id, PR reference) -> the session's list of PRs
    on_session_pr: Callable[[str, str, dict[str, Any]], object] | None = None
    # (org, session id, score) -> the session's AI Session Score
    on_session_score: Callable[[str, str, dict[str, Any]], object] | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"workflow input: {what} must be a positive integer", code="bad_workflow_input")
    return value


def _skip(reason: str) -> dict[str, Any]:
    return {"skip": True, "reason": reason}


# -- step 1: load the pull request ---------------------------------------------------------------------


def load_pull_request(state: dict[str, Any], deps: WorkflowDeps) -> dict[str, Any]:
    given: dict[str, Any] = state["input"] if isinstance(state.get("input"), dict) else state
    installation_id = _positive(given.get("installation_id"), "installation_id")
    repository_id = _positive(given.get("repository_id"), "repository_id")
    number = _positive(given.get("pr_number"), "pr_number")
    repository = deps.store.get_repository(repository_id)
    if repository is None or repository.status != ACTIVE or repository.installation_id != installation_id:
        return _skip("repository is not enrolled with this installation")
    if not repository.project:
        return _skip("repository is not linked to a project")
    installation = deps.store.get_installation(installation_id)
    if installation is None or not installation.usable or installation.org is None:
        return _skip("installation is not active or not bound to an organisation")
    full_name = check_full_name(repository.full_name)
    try:
        pull = deps.github.get_pull(installation_id, full_name, number)
    except GitHubNotFound:
        _note(deps, repository_id, number, status="deleted", error="GitHub answered 404 for the pull request")
        return _skip("pull request not found (deleted, or the App lost access)")
    base_repo = ((pull.get("base") or {}).get("repo") or {}).get("id")
    if base_repo is not None and base_repo != repository_id:
        return _skip("the pull request belongs to another repository")
    if pull.get("state", "open") != "open" or pull.get("merged"):
        _note(deps, repository_id, number, status="closed")
        return _skip("pull request is closed")
    head_sha = check_sha(str((pull.get("head") or {}).get("sha", "")))
    base_sha = str((pull.get("base") or {}).get("sha", ""))
    labels = [str(label.get("name")) for label in pull.get("labels") or [] if isinstance(label, dict)]
    commits = pull.get("commits")
    return {
        "skip": False,
        "org": installation.org,
        "project": repository.project,
        "installation_id": installation_id,
        "repository_id": repository_id,
        "full_name": full_name,
        "number": number,
        "head_sha": head_sha,
        "base_sha": base_sha,
        "commits": commits if isinstance(commits, int) and not isinstance(commits, bool) else None,
        "labels": labels[:100],
        "skip_label": SKIP_LABEL in labels,
        "html_url": str(pull.get("html_url") or ""),
        "title": str(pull.get("title") or "")[:300],
    }


def _note(deps: WorkflowDeps, repository_id: int, number: int, *, status: str, error: str | None = None) -> None:
    now = _iso(deps.clock())

    def change(pr: PullRequestState) -> None:
        pr.status = status
        pr.last_error = error
        pr.updated_at = now

    deps.store.update_pull(repository_id, number, change)


# -- step 2: correlate -----------------------------------------------------------------------------------


def correlate_pull_request(state: dict[str, Any], deps: WorkflowDeps) -> dict[str, Any]:
    pr = state["pr"]
    head_sha = check_sha(pr["head_sha"])
    raw = deps.github.list_pull_commits(
        pr["installation_id"],
        pr["full_name"],
        pr["number"],
        base_sha=pr["base_sha"],
        head_sha=head_sha,
        total=pr.get("commits"),
    )
    commits = [
        PrCommit(c["sha"].lower(), str((c.get("commit") or {}).get("message") or ""))
        for c in raw
        if isinstance(c.get("sha"), str) and _HEX_SHA.fullmatch(c["sha"].lower())
    ]
    expected = pr.get("commits")
    if head_sha not in {c.sha for c in commits} or (isinstance(expected, int) and len(commits) > expected):
        return {"stale": True, "reason": "the branch moved while its commits were listed"}
    org = pr["org"]
    correlation = correlate(org, commits, deps.sessions)
    links = Links(repo_web_url(pr.get("html_url", ""), pr["full_name"]), head_sha, deps.dashboard_url)
    comment = render_comment(correlation, links)
    check = render_check(correlation, skip_missing=bool(pr.get("skip_label")))
    _record_links(pr, correlation.references, [row.id for row in correlation.sessions], deps)
    for row in correlation.sessions:
        if deps.on_session_score is not None:
            deps.on_session_score(org, row.id, {**row.score.to_dict(), "pr": _pr_ref(pr)})
    return {
        "stale": False,
        "comment": comment,
        "check": {"conclusion": check.conclusion, "title": check.title, "summary": check.summary},
        "sessions": [row.id for row in correlation.sessions],
        "missing": sorted(correlation.missing),
    }


def _pr_ref(pr: dict[str, Any]) -> dict[str, Any]:
    return {
        "repo_id": pr["repository_id"],
        "repository": pr["full_name"],
        "number": pr["number"],
        "url": pr.get("html_url", ""),
        "title": pr.get("title", ""),
    }


def _record_links(
    pr: dict[str, Any], references: dict[str, list[str]], verified: list[str], deps: WorkflowDeps
) -> None:
    org, repository_id, number = pr["org"], pr["repository_id"], pr["number"]
    for sid in references:
        deps.store.link_session_pull(org, sid, repository_id, number)
    for sid in verified:
        if deps.on_session_pr is not None:
            deps.on_session_pr(org, sid, _pr_ref(pr))
    now = deps.clock()
    first = False

    def change(state: PullRequestState) -> None:
        nonlocal first
        state.session_ids = sorted(references)[:500]
        state.status = "open"
        state.updated_at = _iso(now)
        first = bool(verified) and state.correlated_at is None
        if first:
            state.correlated_at = _iso(now)

    deps.store.update_pull(repository_id, number, change)
    if first and deps.on_correlated is not None:
        deps.on_correlated(org, pr["project"], repository_id, number, datetime.fromtimestamp(now, UTC))


# -- the lease --------------------------------------------------------------------------------------------


def _acquire(deps: WorkflowDeps, pr: dict[str, Any], owner: str) -> PullRequestState:
    """Take the PR's lease, waiting up to `LEASE_WAIT_SECONDS` in-process (publishing takes a few
    GitHub calls); after that `PublishBusy` lets Step Functions retry the step later."""
    deadline = deps.clock() + LEASE_WAIT_SECONDS
    pause = 0.05
    while True:
        now = deps.clock()

        def change(state: PullRequestState, now: float = now) -> None:
            if state.lock_owner and state.lock_owner != owner and state.lock_expires > now:
                raise PublishBusy(f"execution {state.lock_owner} is publishing to this pull request")
            state.lock_owner = owner
            state.lock_expires = now + LEASE_SECONDS

        try:
            return deps.store.update_pull(pr["repository_id"], pr["number"], change)
        except PublishBusy:
            if deps.clock() + pause > deadline:
                raise
            deps.sleep(pause)
            pause = min(0.5, pause * 2)


def _release(deps: WorkflowDeps, pr: dict[str, Any], owner: str, update: Callable[[PullRequestState], None]) -> None:
    def change(state: PullRequestState) -> None:
        if state.lock_owner == owner:
            update(state)
            state.lock_owner = None
            state.lock_expires = 0.0
        else:  # the lease expired and another execution took it: keep what it wrote
            raise PublishBusy("the publishing lease was lost")

    deps.store.update_pull(pr["repository_id"], pr["number"], change)


def _owner(state: dict[str, Any]) -> str:
    owner = state.get("execution")
    if not isinstance(owner, str) or not _EXECUTION.fullmatch(owner):
        raise BadRequest("workflow state: execution must be the execution name", code="bad_workflow_input")
    return owner


# -- step 3: the summary comment ------------------------------------------------------------------------


def publish_comment(state: dict[str, Any], deps: WorkflowDeps) -> dict[str, Any]:
    pr, correlation = state["pr"], state["correlation"]
    if correlation.get("stale"):
        return {"published": False, "stale": True}
    owner = _owner(state)
    held = _acquire(deps, pr, owner)
    installation_id, full_name, number = pr["installation_id"], pr["full_name"], pr["number"]
    try:
        try:
            current = deps.github.get_pull(installation_id, full_name, number)
        except GitHubNotFound:
            _release(deps, pr, owner, lambda s: setattr(s, "status", "deleted"))
            return {"published": False, "stale": True, "reason": "pull request not found"}
        head = str((current.get("head") or {}).get("sha", ""))
        if head != pr["head_sha"] or current.get("state", "open") != "open" or current.get("merged"):
            _release(deps, pr, owner, lambda s: None)
            return {"published": False, "stale": True, "reason": "the head moved or the PR was closed"}
        body = correlation.get("comment")
        if body is None and held.comment_id is None:
            _release(deps, pr, owner, lambda s: setattr(s, "published_head", pr["head_sha"]))
            return {"published": False, "stale": False, "reason": "no commit names an AI session"}
        text = body if isinstance(body, str) else NO_SESSIONS_ANY_MORE
        try:
            comment_id, created = _upsert_comment(deps, pr, held.comment_id, text)
        except GitHubNotFound:  # the PR went away between the re-read and the write
            _release(deps, pr, owner, lambda s: setattr(s, "status", "deleted"))
            return {"published": False, "stale": True, "reason": "pull request not found"}
    except BaseException:
        _release_quietly(deps, pr, owner)
        raise
    now = _iso(deps.clock())

    def done(s: PullRequestState) -> None:
        s.comment_id = comment_id
        s.published_head = pr["head_sha"]
        s.published_at = now
        s.last_error = None

    _release(deps, pr, owner, done)
    return {"published": True, "stale": False, "comment_id": comment_id, "created": created}


def _upsert_comment(deps: WorkflowDeps, pr: dict[str, Any], comment_id: int | None, body: str) -> tuple[int, bool]:
    installation_id, full_name, number = pr["installation_id"], pr["full_name"], pr["number"]
    if comment_id is not None:
        try:
            deps.github.update_issue_comment(installation_id, full_name, comment_id, body)
            return comment_id, False
        except GitHubNotFound:
            pass  # someone deleted our comment: post a new one
    else:
        # A run that posted but died before storing the id left a comment with our marker.
        found = _find_marked_comment(deps, pr)
        if found is not None:
            deps.github.update_issue_comment(installation_id, full_name, found, body)
            return found, False
    created = deps.github.create_issue_comment(installation_id, full_name, number, body)
    return int(created["id"]), True


def _find_marked_comment(deps: WorkflowDeps, pr: dict[str, Any]) -> int | None:
    try:
        for comment in deps.github.list_issue_comments(pr["installation_id"], pr["full_name"], pr["number"]):
            if MARKER in str(comment.get("body") or "") and _ours(comment) and isinstance(comment.get("id"), int):
                return int(comment["id"])
    except GitHubNotFound:
        return None  # listing unavailable: creating is the only option left
    return None


def _ours(comment: dict[str, Any]) -> bool:
    user = comment.get("user") or {}
    return bool(comment.get("performed_via_github_app")) or str(user.get("type")) == "Bot"


def _release_quietly(deps: WorkflowDeps, pr: dict[str, Any], owner: str) -> None:
    # The lease expires by itself; the original error is the one to report.
    with contextlib.suppress(Exception):
        _release(deps, pr, owner, lambda s: None)


# -- step 4: the check run --------------------------------------------------------------------------------


def _mark_check_pending(deps: WorkflowDeps, pr: dict[str, Any], owner: str, head_sha: str) -> None:
    """Remember, under the lease, that a check run is being created for `head_sha`: if storing its
    id fails afterwards, the retried step looks the run up instead of creating a second one."""

    def change(state: PullRequestState) -> None:
        if state.lock_owner != owner:
            raise PublishBusy("the publishing lease was lost")
        if head_sha not in state.check_pending:
            state.check_pending = [*state.check_pending, head_sha][-20:]

    deps.store.update_pull(pr["repository_id"], pr["number"], change)


def publish_check(state: dict[str, Any], deps: WorkflowDeps) -> dict[str, Any]:
    pr, correlation = state["pr"], state["correlation"]
    comment = state.get("comment") or {}
    if correlation.get("stale") or comment.get("stale"):
        return {"published": False, "stale": True}
    owner = _owner(state)
    held = _acquire(deps, pr, owner)
    head_sha = pr["head_sha"]
    if held.published_head not in (None, head_sha):
        # A newer execution published for another head after our comment step: it owns the PR now.
        _release(deps, pr, owner, lambda s: None)
        return {"published": False, "stale": True, "reason": "a newer head was published"}
    check = correlation["check"]
    result = CheckResult(check["conclusion"], check["title"], check["summary"], "")
    fields = result.fields(head_sha)
    fields["output"].pop("text", None)
    try:
        run_id = held.check_runs.get(head_sha)
        created = False
        if run_id is None and head_sha in held.check_pending:
            # An earlier attempt created the run but failed before storing its id: find it.
            run_id = deps.github.find_check_run(pr["installation_id"], pr["full_name"], head_sha, fields["name"])
        if run_id is not None:
            try:
                deps.github.update_check_run(pr["installation_id"], pr["full_name"], run_id, fields)
            except GitHubNotFound:
                run_id = None
        if run_id is None:
            _mark_check_pending(deps, pr, owner, head_sha)
            try:
                run = deps.github.create_check_run(pr["installation_id"], pr["full_name"], fields)
            except GitHubNotFound:  # the repository or the commit went away
                _release(deps, pr, owner, lambda s: None)
                return {"published": False, "stale": True, "reason": "GitHub answered 404 for the check run"}
            run_id, created = int(run["id"]), True
    except BaseException:
        _release_quietly(deps, pr, owner)
        raise

    def done(s: PullRequestState) -> None:
        s.check_pending = [sha for sha in s.check_pending if sha != head_sha]
        runs = {k: v for k, v in s.check_runs.items() if k != head_sha}
        # keep the ids of the last few heads only: the item stays small
        s.check_runs = dict(list(runs.items())[-19:]) | {head_sha: run_id}

    _release(deps, pr, owner, done)
    return {
        "published": True,
        "stale": False,
        "check_run_id": run_id,
        "created": created,
        "conclusion": result.conclusion,
    }
