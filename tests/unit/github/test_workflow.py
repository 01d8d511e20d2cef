"""The four workflow steps against the fake GitHub (real loopback HTTP) and in-memory stores."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

from tracemark_common.github import GitHubClient, GitHubError, GitHubUnavailable
from tracemark_common.prs.records import InstallationRecord, RepositoryRecord
from tracemark_common.prs.render import CHECK_NAME, MARKER
from tracemark_common.prs.store import MemoryGitHubStore
from tracemark_common.prs.workflow import (
    PublishBusy,
    WorkflowDeps,
    correlate_pull_request,
    load_pull_request,
    publish_check,
    publish_comment,
)
from tracemark_local.fake_github import FakeGitHub

REPO, REPO_ID, INST = "acme/app", 42, 7


class Recorder:
    def __init__(self) -> None:
        self.correlated: list[tuple[Any, ...]] = []
        self.session_prs: list[tuple[Any, ...]] = []
        self.scores: list[tuple[Any, ...]] = []

    def on_correlated(self, org: str, project: str, repo: int, number: int, at: datetime) -> None:
        self.correlated.append((org, project, repo, number))

    def on_session_pr(self, org: str, sid: str, ref: dict[str, Any]) -> None:
        self.session_prs.append((org, sid, ref["number"]))

    def on_session_score(self, org: str, sid: str, score: dict[str, Any]) -> None:
        self.scores.append((org, sid, score["score"]))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def store() -> MemoryGitHubStore:
    store = MemoryGitHubStore()
    store.put_installation(InstallationRecord(INST, "acme", "Organization", "t", "t", org="acme"))
    store.put_repository(RepositoryRecord(REPO_ID, REPO, INST, "t", project="web"))
    return store


@pytest.fixture
def deps(store: MemoryGitHubStore, client: GitHubClient, sessions: Any, recorder: Recorder) -> WorkflowDeps:
    return WorkflowDeps(
        store=store,
        github=client,
        sessions=sessions,
        dashboard_url="https://dash.example",
        on_correlated=recorder.on_correlated,
        on_session_pr=recorder.on_session_pr,
        on_session_score=recorder.on_session_score,
    )


@pytest.fixture
def gh(fake_github: FakeGitHub) -> FakeGitHub:
    fake_github.add_repo(REPO, repo_id=REPO_ID, installation_id=INST)
    return fake_github


def start(number: int = 1, execution: str = "gh-d1") -> dict[str, Any]:
    return {
        "input": {
            "installation_id": INST,
            "repository_id": REPO_ID,
            "pr_number": number,
            "delivery_id": "d1",
            "action": "opened",
        },
        "execution": execution,
    }


def run(deps: WorkflowDeps, state: dict[str, Any]) -> dict[str, Any]:
    """The state machine's happy path, step by step."""
    state["pr"] = load_pull_request(state, deps)
    if state["pr"]["skip"]:
        return state
    state["correlation"] = correlate_pull_request(state, deps)
    state["comment"] = publish_comment(state, deps)
    if state["comment"]["stale"]:
        return state
    state["check"] = publish_check(state, deps)
    return state


def test_opened_then_synchronize(deps: WorkflowDeps, gh: FakeGitHub, sessions: Any, recorder: Recorder) -> None:
    # Given a PR whose commits name one attested session
    pull = gh.add_pull(REPO, 1, ["feat: a\n\nTracemark-Sessions: s1", "chore: b"])
    sessions.add("s1", [pull.commits[0].sha])
    # When the workflow runs for "opened"
    state = run(deps, start())
    # Then one comment with the marker and a successful check run on the head
    comments = gh.comments_on(REPO, 1)
    assert len(comments) == 1 and comments[0]["body"].startswith(MARKER)
    runs = gh.check_runs_for(REPO, pull.head_sha)
    assert [(r["name"], r["conclusion"], r["output"]["title"]) for r in runs] == [
        (CHECK_NAME, "success", "1 AI session")
    ]
    assert state["comment"]["created"] is True
    assert recorder.correlated == [("acme", "web", REPO_ID, 1)]
    assert recorder.session_prs == [("acme", "s1", 1)]
    # When a new commit is pushed and the workflow runs again
    gh.calls.clear()
    head = gh.push(REPO, 1, ["fix: c\n\nTracemark-Sessions: s1"])
    sessions.records[("acme", "s1")].commits.append(head)
    run(deps, start(execution="gh-d2"))
    # Then the same comment is updated, a check run is created on the new head, within the call budget
    assert len(gh.comments_on(REPO, 1)) == 1
    assert len(gh.calls_to("PATCH", r"/issues/comments/\d+$")) == 1
    assert not gh.calls_to("GET", r"/issues/1/comments$")
    assert gh.check_runs_for(REPO, head)[0]["conclusion"] == "success"
    assert len(gh.api_calls()) <= math.ceil(3 / 100) + 4
    assert recorder.correlated == [("acme", "web", REPO_ID, 1)]  # counted once


def test_call_budget_for_a_large_pr(deps: WorkflowDeps, gh: FakeGitHub, sessions: Any) -> None:
    messages = [f"c{i}\n\nTracemark-Sessions: s{i % 20}" for i in range(250)]
    pull = gh.add_pull(REPO, 2, messages)
    for n in range(20):
        sessions.add(f"s{n}", [c.sha for c in pull.commits])
    run(deps, start(2))
    gh.calls.clear()
    gh.push(REPO, 2, ["more"])
    run(deps, start(2, "gh-d2"))
    # 251 commits: the compare endpoint (3 pages), plus load, re-read, comment, check
    assert len(gh.api_calls()) <= math.ceil(251 / 100) + 4


def test_no_trailers_means_no_comment_but_a_check(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    pull = gh.add_pull(REPO, 1, ["plain"])
    state = run(deps, start())
    assert gh.comments_on(REPO, 1) == []
    assert state["comment"]["published"] is False
    run_ = gh.check_runs_for(REPO, pull.head_sha)[0]
    assert (run_["conclusion"], run_["output"]["title"]) == ("success", "No AI sessions")


def test_missing_session_fails_until_labelled(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    pull = gh.add_pull(REPO, 1, ["x\n\nTracemark-Sessions: ghost"])
    run(deps, start())
    assert gh.check_runs_for(REPO, pull.head_sha)[0]["conclusion"] == "failure"
    assert "Missing sessions" in gh.comments_on(REPO, 1)[0]["body"]
    # the label is read from the API, not from the webhook
    pull.labels.append("skip-ai-session")
    state = run(deps, start(execution="gh-d2"))
    runs = gh.check_runs_for(REPO, pull.head_sha)
    assert len(runs) == 1  # the same head's check run is updated in place
    assert runs[0]["conclusion"] == "success"
    assert state["check"]["created"] is False


def test_late_attestation_turns_the_check_green(deps: WorkflowDeps, gh: FakeGitHub, sessions: Any) -> None:
    pull = gh.add_pull(REPO, 1, ["x\n\nTracemark-Sessions: late"])
    run(deps, start())
    assert gh.check_runs_for(REPO, pull.head_sha)[0]["conclusion"] == "failure"
    sessions.add("late", [pull.head_sha])
    run(deps, start(execution="att-0123"))
    assert gh.check_runs_for(REPO, pull.head_sha)[0]["conclusion"] == "success"
    assert "Missing sessions" not in gh.comments_on(REPO, 1)[0]["body"]
    assert deps.store.pulls_for_session("acme", "late") == [(REPO_ID, 1)]


def test_deleted_pull_request_is_recorded(deps: WorkflowDeps, gh: FakeGitHub, store: MemoryGitHubStore) -> None:
    gh.add_pull(REPO, 1, ["x"]).deleted = True
    state = run(deps, start())
    assert state["pr"]["skip"] is True
    record = store.get_pull(REPO_ID, 1)
    assert record is not None and record.status == "deleted"
    assert gh.comments_on(REPO, 1) == [] and gh.check_runs == {}


def test_pull_request_deleted_before_publishing(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    pull = gh.add_pull(REPO, 1, ["x\n\nTracemark-Sessions: s"])
    state = start()
    state["pr"] = load_pull_request(state, deps)
    state["correlation"] = correlate_pull_request(state, deps)
    pull.deleted = True
    assert publish_comment(state, deps)["stale"] is True
    assert gh.check_runs == {}


@pytest.mark.parametrize("closed", ["closed", "merged"])
def test_closed_or_merged_pull_requests_are_not_updated(deps: WorkflowDeps, gh: FakeGitHub, closed: str) -> None:
    pull = gh.add_pull(REPO, 1, ["x\n\nTracemark-Sessions: s"])
    pull.state = "closed"
    pull.merged = closed == "merged"
    assert run(deps, start())["pr"] == {"skip": True, "reason": "pull request is closed"}
    assert gh.comments_on(REPO, 1) == []


@pytest.mark.parametrize("unlinked", ["project", "org", "removed"])
def test_unlinked_repositories_are_skipped(
    deps: WorkflowDeps, gh: FakeGitHub, store: MemoryGitHubStore, unlinked: str
) -> None:
    gh.add_pull(REPO, 1, ["x"])
    if unlinked == "project":
        store.update_repository(REPO_ID, lambda r: setattr(r, "project", None))
    elif unlinked == "org":
        store.update_installation(INST, lambda i: setattr(i, "org", None))
    else:
        store.update_repository(REPO_ID, lambda r: setattr(r, "status", "removed"))
    assert run(deps, start())["pr"]["skip"] is True
    assert gh.calls == []


def test_transient_github_errors_are_retried_without_duplicates(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 1, ["x\n\nTracemark-Sessions: s"])
    gh.fail("GET", r"/pulls/1$", 502)
    gh.fail("GET", r"/pulls/1/commits$", 429, headers={"Retry-After": "0"})
    gh.fail_secondary_rate_limit("POST", r"/issues/1/comments$", retry_after=0)
    gh.fail("POST", r"/check-runs$", 500)
    state = start()
    # a create that failed with a 5xx may have been applied: not re-sent by the client, the step
    # fails and Step Functions retries it
    with pytest.raises(GitHubUnavailable):
        run(deps, state)
    state["check"] = publish_check(state, deps)
    assert len(gh.comments_on(REPO, 1)) == 1
    assert len(gh.check_runs) == 1


def test_race_newest_head_wins(deps: WorkflowDeps, gh: FakeGitHub, sessions: Any) -> None:
    # Given execution A loaded and correlated head h1
    pull = gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    sessions.add("s1", [pull.head_sha])
    a = start(execution="gh-a")
    a["pr"] = load_pull_request(a, deps)
    a["correlation"] = correlate_pull_request(a, deps)
    # When the branch moves to h2 and execution B runs to the end
    h2 = gh.push(REPO, 1, ["b\n\nTracemark-Sessions: s2"])
    b = run(deps, start(execution="gh-b"))
    # Then A publishes nothing: the comment and the check runs are B's (h2)
    assert publish_comment(a, deps) == {
        "published": False,
        "stale": True,
        "reason": "the head moved or the PR was closed",
    }
    comments = gh.comments_on(REPO, 1)
    assert len(comments) == 1 and h2[:12] in comments[0]["body"]
    assert b["check"]["published"] is True
    assert [r["head_sha"] for r in gh.check_runs.values()] == [h2]


def test_check_step_of_an_older_head_publishes_nothing(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    a = start(execution="gh-a")
    a["pr"] = load_pull_request(a, deps)
    a["correlation"] = correlate_pull_request(a, deps)
    a["comment"] = publish_comment(a, deps)
    gh.push(REPO, 1, ["b"])
    run(deps, start(execution="gh-b"))
    assert publish_check(a, deps)["stale"] is True
    assert len(gh.check_runs) == 1


def test_lease_makes_a_concurrent_publisher_wait(deps: WorkflowDeps, gh: FakeGitHub, store: MemoryGitHubStore) -> None:
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    state = start(execution="gh-b")
    state["pr"] = load_pull_request(state, deps)
    state["correlation"] = correlate_pull_request(state, deps)
    now = deps.clock()
    store.update_pull(REPO_ID, 1, lambda s: (setattr(s, "lock_owner", "gh-a"), setattr(s, "lock_expires", now + 60)))
    # a fake clock that moves with each pause: the step waits a few seconds, then gives up
    moment = [now]
    waits: list[float] = []
    deps.clock = lambda: moment[0]
    deps.sleep = lambda s: (waits.append(s), moment.__setitem__(0, moment[0] + s))  # type: ignore[func-returns-value]
    with pytest.raises(PublishBusy):
        publish_comment(state, deps)
    assert gh.comments_on(REPO, 1) == []
    assert waits and sum(waits) <= 8.0
    # an expired lease is taken over
    deps.clock = lambda: now + 61
    assert publish_comment(state, deps)["published"] is True
    record = store.get_pull(REPO_ID, 1)
    assert record is not None and record.lock_owner is None


def test_comment_posted_by_a_crashed_run_is_found_by_marker(
    deps: WorkflowDeps, gh: FakeGitHub, client: GitHubClient
) -> None:
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    client.create_issue_comment(INST, REPO, 1, "a human comment")
    client.create_issue_comment(INST, REPO, 1, f"{MARKER}\nold")
    run(deps, start())
    bodies = [c["body"] for c in gh.comments_on(REPO, 1)]
    assert len(bodies) == 2 and bodies[1].startswith(MARKER) and bodies[1] != f"{MARKER}\nold"


def test_comment_deleted_by_a_user_is_posted_again(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    run(deps, start())
    gh.comments.clear()
    run(deps, start(execution="gh-d2"))
    assert len(gh.comments_on(REPO, 1)) == 1


def test_failure_releases_the_lease(deps: WorkflowDeps, gh: FakeGitHub, store: MemoryGitHubStore) -> None:
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    state = start()
    state["pr"] = load_pull_request(state, deps)
    state["correlation"] = correlate_pull_request(state, deps)
    gh.fail("POST", r"/issues/1/comments$", 422, body={"message": "Body is too long"})
    with pytest.raises(GitHubError):
        publish_comment(state, deps)
    record = store.get_pull(REPO_ID, 1)
    assert record is not None and record.lock_owner is None


def test_head_moving_while_listing_is_stale(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 1, ["a"])
    state = start()
    state["pr"] = load_pull_request(state, deps)
    gh.push(REPO, 1, ["b"])
    assert correlate_pull_request(state, deps)["stale"] is True


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"input": {"installation_id": "7", "repository_id": REPO_ID, "pr_number": 1}},
        {"input": {"installation_id": INST, "repository_id": REPO_ID, "pr_number": 0}},
    ],
)
def test_bad_workflow_input(deps: WorkflowDeps, bad: dict[str, Any]) -> None:
    from tracemark_common.errors import BadRequest

    with pytest.raises(BadRequest):
        load_pull_request(bad, deps)


def test_404_while_writing_the_comment_is_recorded_not_raised(
    deps: WorkflowDeps, gh: FakeGitHub, store: MemoryGitHubStore
) -> None:
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    state = start()
    state["pr"] = load_pull_request(state, deps)
    state["correlation"] = correlate_pull_request(state, deps)
    gh.fail("GET", r"/issues/1/comments$", 404)
    gh.fail("POST", r"/issues/1/comments$", 404)
    assert publish_comment(state, deps) == {"published": False, "stale": True, "reason": "pull request not found"}
    record = store.get_pull(REPO_ID, 1)
    assert record is not None and record.status == "deleted" and record.lock_owner is None


def test_404_on_the_check_run_is_not_a_crash(deps: WorkflowDeps, gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 1, ["a"])
    state = start()
    state["pr"] = load_pull_request(state, deps)
    state["correlation"] = correlate_pull_request(state, deps)
    state["comment"] = publish_comment(state, deps)
    gh.fail("POST", r"/check-runs$", 404)
    assert publish_check(state, deps)["stale"] is True


def test_publisher_waits_for_a_short_lease(deps: WorkflowDeps, gh: FakeGitHub, store: MemoryGitHubStore) -> None:
    # Given another execution holds the lease and releases it while we wait
    gh.add_pull(REPO, 1, ["a\n\nTracemark-Sessions: s1"])
    state = start(execution="gh-b")
    state["pr"] = load_pull_request(state, deps)
    state["correlation"] = correlate_pull_request(state, deps)
    now = deps.clock()
    store.update_pull(REPO_ID, 1, lambda s: (setattr(s, "lock_owner", "gh-a"), setattr(s, "lock_expires", now + 60)))
    deps.sleep = lambda _s: store.update_pull(REPO_ID, 1, lambda s: setattr(s, "lock_owner", None))  # type: ignore[func-returns-value,assignment]
    # When we publish, Then we get the lease after one pause and publish
    assert publish_comment(state, deps)["published"] is True
    assert len(gh.comments_on(REPO, 1)) == 1
