"""Racing webhooks (SPEC §3.4: "deliveries are de-duplicated by X-GitHub-Delivery"; §3.5: "two
executions racing for one PR end with the state of the newest head commit; no duplicate
comments"): duplicate deliveries at once, out-of-order pull_request events, concurrent runs.

The deliveries go through the webhook's domain entry point (`prs.webhook.handle_delivery`, what
`functions/webhook` calls after the signature check) from 20 threads released together by a
barrier, as 20 concurrent Lambda instances would run them (the local stack runs one event per
function at a time, like one Lambda instance); the state machine runs for real on moto and
GitHub is the fake on loopback.
"""

from __future__ import annotations

import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from attest_builders import sha

from tracemark_common.prs import runtime
from tracemark_common.prs.render import CHECK_NAME
from tracemark_common.prs.webhook import handle_delivery
from tracemark_local.fake_github import FakeGitHub
from tracemark_local.stack import wait_for_execution

_GITHUB_TESTS = Path(__file__).resolve().parents[1] / "integration" / "github"
if str(_GITHUB_TESTS) not in sys.path:
    sys.path.insert(0, str(_GITHUB_TESTS))

import test_github_flow as flow  # noqa: E402  (fixtures and helpers of the GitHub integration tests)

gh = flow.gh
linked = flow.linked


def deliver_together(deliveries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """(delivery id, pull_request payload) pairs, all handled at the same moment."""
    barrier = threading.Barrier(len(deliveries))

    def one(item: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        delivery, body = item
        barrier.wait()
        result = handle_delivery("pull_request", delivery, body, store=runtime.store(), starter=runtime.starter())
        return result.to_dict()

    with ThreadPoolExecutor(max_workers=len(deliveries)) as pool:
        return list(pool.map(one, deliveries))


def finish(stack: Any, results: list[dict[str, Any]]) -> list[str]:
    """Wait for every execution the deliveries started; their final statuses."""
    client = stack.boto3_client("stepfunctions")
    prefix = stack.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + ":"
    names = sorted({r["execution"] for r in results if r.get("outcome") == "started"})
    return [wait_for_execution(client, prefix + name, timeout_s=120)["status"] for name in names]


def assert_one_execution_each(stack: Any, names: list[str]) -> None:
    client = stack.boto3_client("stepfunctions")
    pages = client.get_paginator("list_executions").paginate(stateMachineArn=stack.settings.state_machine_arn)
    all_names = [e["name"] for page in pages for e in page["executions"]]
    assert [all_names.count(name) for name in names] == [1] * len(names), names


def test_twenty_copies_of_one_delivery_at_once_start_one_run(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any]
) -> None:
    # Given a PR naming a session, and GitHub delivering the same "opened" 20 times at once
    gh.add_pull(linked["full_name"], 30, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(30)])
    delivery = str(uuid.uuid4())
    body = flow.pr_event(linked, "opened", 30)
    # When the copies are handled concurrently
    results = deliver_together([(delivery, body)] * 20)
    # Then they all name one execution, and exactly one execution exists (Step Functions' start is
    # idempotent for a running execution of the same name and input, so a copy that raced the
    # first one may report "started" for that same run rather than "duplicate")
    assert {r["outcome"] for r in results} <= {"started", "duplicate"}, results
    assert {r.get("execution") for r in results} == {f"gh-{delivery}"}
    assert_one_execution_each(stack, [f"gh-{delivery}"])
    assert finish(stack, results) == ["SUCCEEDED"]
    # and GitHub got one comment and one check run
    assert len(gh.comments_on(linked["full_name"], 30)) == 1
    assert [r["name"] for r in gh.check_runs_for(linked["full_name"])] == [CHECK_NAME]


def test_out_of_order_and_concurrent_events_end_with_the_latest_head(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any]
) -> None:
    full_name = linked["full_name"]
    # Given a PR opened with commit 31 (session a), then pushed with commit 32 (session b), and
    # its webhooks arriving late, out of order and concurrently: synchronize before opened,
    # a reopened, and each of them delivered twice
    gh.add_pull(full_name, 31, ["a\n\nTracemark-Sessions: ghost-a"], shas=[sha(31)])
    head = gh.push(full_name, 31, ["b\n\nTracemark-Sessions: ghost-b"], shas=[sha(32)])
    events = [
        (str(uuid.uuid4()), flow.pr_event(linked, action, 31)) for action in ("synchronize", "opened", "reopened")
    ]
    # When all six deliveries are handled at once
    results = deliver_together([*events, *events])
    # Then each distinct delivery started exactly one run, and every run ended well
    assert {r["outcome"] for r in results} <= {"started", "duplicate"}, results
    assert_one_execution_each(stack, [f"gh-{delivery}" for delivery, _ in events])
    assert finish(stack, results) == ["SUCCEEDED"] * 3
    # and GitHub shows one comment, for the latest head, and one check run per head sha
    comments = gh.comments_on(full_name, 31)
    assert len(comments) == 1
    assert head[:12] in comments[0]["body"] and "ghost-b" in comments[0]["body"]
    assert [r["conclusion"] for r in gh.check_runs_for(full_name, head)] == ["failure"]
    assert gh.check_runs_for(full_name, sha(31)) == []  # never the head seen by the runs

    # When the branch moves while two more deliveries for the older head race a new one
    new_head = gh.push(full_name, 31, ["c\n\nTracemark-Sessions: ghost-c"], shas=[sha(33)])
    late = [(str(uuid.uuid4()), flow.pr_event(linked, "synchronize", 31)) for _ in range(3)]
    results = deliver_together(late)
    assert finish(stack, results) == ["SUCCEEDED"] * 3
    # Then the comment (still one, edited in place) and the check run reflect the newest head
    comments = gh.comments_on(full_name, 31)
    assert len(comments) == 1 and new_head[:12] in comments[0]["body"] and "ghost-c" in comments[0]["body"]
    assert len(gh.calls_to("POST", r"/issues/31/comments$")) == 1
    for commit in (sha(31), head, new_head):
        assert len(gh.check_runs_for(full_name, commit)) <= 1
    assert [r["conclusion"] for r in gh.check_runs_for(full_name, new_head)] == ["failure"]

    # When the PR is closed and a stale "synchronize" is redelivered after the "closed"
    gh.pull(full_name, 31).state = "closed"
    closed = deliver_together([(str(uuid.uuid4()), flow.pr_event(linked, "closed", 31))])
    assert closed[0]["outcome"] == "ignored"
    gh.calls.clear()
    stale = deliver_together([(str(uuid.uuid4()), flow.pr_event(linked, "synchronize", 31))])
    assert finish(stack, stale) == ["SUCCEEDED"]
    # Then the run reads the PR from the API, sees it closed, and publishes nothing
    assert [c.method for c in gh.api_calls()] == ["GET"]
    assert len(gh.comments_on(full_name, 31)) == 1


def event_at(linked: dict[str, Any], action: str, number: int, updated_at: str) -> tuple[str, dict[str, Any]]:
    body = flow.pr_event(linked, action, number)
    body["pull_request"]["updated_at"] = updated_at
    return str(uuid.uuid4()), body


def test_a_closed_delivered_after_a_newer_reopen_does_not_close_the_pr(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any]
) -> None:
    full_name = linked["full_name"]
    # Given a PR opened at 10:00, closed at 11:00 and reopened at 12:00, whose "closed" webhook
    # is delivered last (GitHub does not guarantee the order of deliveries)
    gh.add_pull(full_name, 34, ["feat\n\nTracemark-Sessions: late-34"], shas=[sha(34)])
    opened = deliver_together([event_at(linked, "opened", 34, "2026-11-20T10:00:00Z")])
    reopened = deliver_together([event_at(linked, "reopened", 34, "2026-11-20T12:00:00Z")])
    assert finish(stack, [*opened, *reopened]) == ["SUCCEEDED", "SUCCEEDED"]
    late_close = deliver_together([event_at(linked, "closed", 34, "2026-11-20T11:00:00Z")])
    assert late_close[0]["outcome"] == "ignored"
    # When the session is attested late
    digest = flow.push_session(stack, linked, "late-34", [34])
    # Then the open PR is correlated again (the stale "closed" did not close it here)
    started = runtime.correlate_again(linked["org"], "late-34", digest)
    assert len(started) == 1
    assert finish(stack, [{"outcome": "started", "execution": started[0]}]) == ["SUCCEEDED"]
    assert "late-34" in gh.comments_on(full_name, 34)[0]["body"]
    assert len(gh.comments_on(full_name, 34)) == 1

    # When the PR is really closed later (a newer "closed")
    gh.pull(full_name, 34).state = "closed"
    deliver_together([event_at(linked, "closed", 34, "2026-11-20T13:00:00Z")])
    # Then a later attestation starts nothing for it
    assert runtime.correlate_again(linked["org"], "late-34", "f" * 64) == []
