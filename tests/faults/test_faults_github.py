"""GitHub and storage faults inside the PR correlation workflow (SPEC §3.4, §3.5, §5 "GitHub").

The real state machine (statemachine/pr_correlation.asl.json) runs on moto's executor with the
real step handlers; GitHub is the fake on loopback, which fails the next N requests matching a
method and a path with a chosen status and headers. The GitHub client's sleeps are recorded
instead of slept (its waits are asserted, never timed); the state machine's Retry intervals are
skipped by the session stack. Faults are chosen by counting requests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attest_builders import sha
from fault_tools import BotoFaults

from tracemark_common.prs.render import CHECK_NAME, MARKER
from tracemark_local.fake_github import FakeGitHub
from tracemark_local.stack import wait_for_execution

_GITHUB_TESTS = Path(__file__).resolve().parents[1] / "integration" / "github"
if str(_GITHUB_TESTS) not in sys.path:
    sys.path.insert(0, str(_GITHUB_TESTS))

import test_github_flow as flow  # noqa: E402  (fixtures and helpers of the GitHub integration tests)

gh = flow.gh
linked = flow.linked

# The in-process client makes 3 attempts per step invocation; Step Functions makes 1 + 4 of those.
CLIENT_ATTEMPTS = 3
STEP_ATTEMPTS = 5


@pytest.fixture
def waits(stack: Any, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The seconds the GitHub client chose to wait between attempts (recorded, not slept)."""
    from tracemark_common.prs import runtime

    recorded: list[float] = []
    monkeypatch.setattr(runtime.github_client(), "sleep", recorded.append)
    yield recorded


def step_history(stack: Any, execution_arn: str) -> list[dict[str, Any]]:
    client = stack.boto3_client("stepfunctions")
    events: list[dict[str, Any]] = client.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return events


def failed_attempts(events: list[dict[str, Any]]) -> list[str]:
    """The error names of the Lambda task attempts that failed, in order."""
    return [
        str(e["lambdaFunctionFailedEventDetails"].get("error"))
        for e in events
        if e["type"] == "LambdaFunctionFailed" and "lambdaFunctionFailedEventDetails" in e
    ]


def run(stack: Any, linked: dict[str, Any], action: str, number: int, delivery: str | None = None) -> dict[str, Any]:
    status, result = flow.deliver(stack, "pull_request", flow.pr_event(linked, action, number), delivery=delivery)
    assert status == 202 and result["outcome"] == "started", result
    arn = stack.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + result["execution"]
    described = wait_for_execution(stack.boto3_client("stepfunctions"), arn)
    return {
        "execution": result["execution"],
        "arn": arn,
        "status": described["status"],
        "error": described.get("error"),
        "history": step_history(stack, arn),
    }


STEPS = {
    # step: (method, path regex) of the GitHub request it makes, and how many such requests a run
    # without faults makes (PublishComment reads the PR again before publishing)
    "LoadPullRequest": ("GET", r"/pulls/{n}$", 2),
    "CorrelateSessions": ("GET", r"/pulls/{n}/commits$", 1),
    "PublishComment": ("POST", r"/issues/{n}/comments$", 1),
    "PublishCheckRun": ("POST", r"/check-runs$", 1),
}
FAULTS = {
    "502": (502, {}),
    "429-retry-after": (429, {"Retry-After": "3"}),
    "403-secondary-rate-limit": (403, {"Retry-After": "2"}),
    "403-primary-rate-limit": (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "{reset}"}),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("step", list(STEPS))
def test_transient_github_error_at_each_step_is_retried_then_succeeds(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], *, waits: list[float], step: str, fault: str
) -> None:
    # Given a PR naming a session, and GitHub failing the step's request more times than the
    # client retries in-process (so Step Functions' Retry has to run the step again)
    number = 20
    gh.add_pull(linked["full_name"], number, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(20)])
    method, path, requests_without_faults = STEPS[step]
    status, headers = FAULTS[fault]
    reset = int(time.time()) + 5
    headers = {k: v.replace("{reset}", str(reset)) for k, v in headers.items()}
    body = {"message": "You have exceeded a secondary rate limit"} if status == 403 else None
    # A create that failed with a 5xx may have been applied: the client does not send it again,
    # the step fails at once and its retry looks for what it created
    resend = not (method == "POST" and status >= 500)
    times = CLIENT_ATTEMPTS + 1 if resend else 1
    gh.fail(method, path.format(n=number), status, times=times, headers=headers, body=body)
    # When the PR is opened
    result = run(stack, linked, "opened", number)
    # Then the execution succeeded after exactly one Step Functions retry of that step
    assert result["status"] == "SUCCEEDED", result
    assert failed_attempts(result["history"]) == ["GitHubUnavailable"]
    assert len(gh.calls_to(method, path.format(n=number))) == requests_without_faults + times
    # and the client waited as GitHub asked (Retry-After, or the exponential back-off on 5xx)
    if "Retry-After" in headers:
        assert set(waits) == {float(headers["Retry-After"])}
    elif not resend:
        assert waits == []
    elif status == 502:
        assert waits == [1.0, 2.0, 1.0]
    else:  # x-ratelimit-reset: until the reset time
        assert len(waits) == CLIENT_ATTEMPTS and all(0 < w <= 5 for w in waits), waits
    # and exactly one comment and one check run were published
    comments = gh.comments_on(linked["full_name"], number)
    assert len(comments) == 1 and comments[0]["body"].startswith(MARKER)
    runs = gh.check_runs_for(linked["full_name"], sha(20))
    assert [(r["name"], r["conclusion"]) for r in runs] == [(CHECK_NAME, "failure")]


def test_retry_after_longer_than_a_step_may_wait_is_left_to_step_functions(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], waits: list[float]
) -> None:
    # Given GitHub asking to wait 60 s before posting the comment (a step may wait 10 s at most)
    gh.add_pull(linked["full_name"], 21, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(21)])
    gh.fail("POST", r"/issues/21/comments$", 429, times=1, headers={"Retry-After": "60"})
    # When the PR is opened
    result = run(stack, linked, "opened", 21)
    # Then the client did not sleep in the Lambda; Step Functions retried the step instead
    assert result["status"] == "SUCCEEDED", result
    assert waits == []
    assert failed_attempts(result["history"]) == ["GitHubUnavailable"]
    assert len(gh.comments_on(linked["full_name"], 21)) == 1


def test_a_step_failing_past_its_retries_fails_visibly_and_a_redelivery_edits_in_place(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], waits: list[float]
) -> None:
    # Given GitHub failing every check-run request
    gh.add_pull(linked["full_name"], 22, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(22)])
    gh.fail("POST", r"/check-runs$", 502, times=1000)
    # When the PR is opened
    first = run(stack, linked, "opened", 22, delivery="flt-terminal-22")
    # Then the execution fails visibly after the state machine's retries (1 + 4 step attempts; a
    # create is never re-sent by the client after a 5xx), with the comment published once and no
    # check run
    assert first["status"] == "FAILED" and first["error"] == "CorrelationFailed", first
    assert failed_attempts(first["history"]) == ["GitHubUnavailable"] * STEP_ATTEMPTS
    assert len(gh.calls_to("POST", r"/check-runs$")) == STEP_ATTEMPTS
    comments = gh.comments_on(linked["full_name"], 22)
    assert len(comments) == 1 and gh.check_runs_for(linked["full_name"]) == []
    # When GitHub recovers and redelivers the same delivery
    gh.faults.clear()
    second = run(stack, linked, "opened", 22, delivery="flt-terminal-22")
    # Then the re-run succeeds; the comment is edited in place, never posted again
    assert second["execution"] == "gh-flt-terminal-22-r1" and second["status"] == "SUCCEEDED", second
    assert [c["id"] for c in gh.comments_on(linked["full_name"], 22)] == [comments[0]["id"]]
    assert len(gh.calls_to("POST", r"/issues/22/comments$")) == 1
    assert len(gh.calls_to("PATCH", rf"/issues/comments/{comments[0]['id']}$")) == 1
    assert [r["conclusion"] for r in gh.check_runs_for(linked["full_name"], sha(22))] == ["failure"]


# -- DynamoDB throttling inside the workflow's writes ----------------------------------------------------


def test_throttled_lease_write_is_retried_by_the_state_machine(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], boto_faults: BotoFaults
) -> None:
    # Given the PR state's first conditional write being throttled (the publishing lease)
    gh.add_pull(linked["full_name"], 23, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(23)])
    boto_faults.throttle("PutItem", when=lambda: bool(gh.calls_to("GET", r"/pulls/23/commits$")), times=2)
    # When the PR is opened
    result = run(stack, linked, "opened", 23)
    # Then the throttled step raised the retryable `Unavailable` and the run completed once
    assert result["status"] == "SUCCEEDED", result
    assert "Unavailable" in failed_attempts(result["history"])
    assert len(gh.comments_on(linked["full_name"], 23)) == 1
    assert len(gh.check_runs_for(linked["full_name"], sha(23))) == 1


def test_throttled_write_after_the_check_run_was_created_does_not_create_a_second_one(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], boto_faults: BotoFaults
) -> None:
    # Given the write that stores the new check run's id being throttled (GitHub has the run)
    gh.add_pull(linked["full_name"], 24, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(24)])
    boto_faults.throttle("PutItem", when=lambda: bool(gh.calls_to("POST", r"/check-runs$")), times=1)
    # When the PR is opened
    result = run(stack, linked, "opened", 24)
    # Then the step is retried and finds the run it created: one check run for the head
    assert result["status"] == "SUCCEEDED", result
    assert failed_attempts(result["history"]) == ["Unavailable"]
    assert len(gh.check_runs_for(linked["full_name"], sha(24))) == 1
    assert len(gh.comments_on(linked["full_name"], 24)) == 1
    # and a later run for the same head updates that run in place
    again = run(stack, linked, "synchronize", 24)
    assert again["status"] == "SUCCEEDED"
    assert len(gh.check_runs_for(linked["full_name"], sha(24))) == 1


def test_throttled_write_after_the_comment_was_posted_does_not_post_a_second_one(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], boto_faults: BotoFaults
) -> None:
    # Given the write that stores the new comment's id being throttled (GitHub has the comment)
    gh.add_pull(linked["full_name"], 25, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(25)])
    boto_faults.throttle("PutItem", when=lambda: bool(gh.calls_to("POST", r"/issues/25/comments$")), times=1)
    # When the PR is opened
    result = run(stack, linked, "opened", 25)
    # Then the retried step finds its comment by the hidden marker and edits it in place
    assert result["status"] == "SUCCEEDED", result
    assert failed_attempts(result["history"]) == ["Unavailable"]
    assert len(gh.calls_to("POST", r"/issues/25/comments$")) == 1
    assert len(gh.comments_on(linked["full_name"], 25)) == 1
    assert len(gh.check_runs_for(linked["full_name"], sha(25))) == 1


@pytest.mark.parametrize("nth_write", [0, 1, 2, 3])
def test_throttled_write_while_correlating_is_retried_without_duplicates(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], boto_faults: BotoFaults, nth_write: int
) -> None:
    # Given an attested session named by a PR, and the n-th item write of CorrelateSessions
    # (session <-> PR link, the session's PR list and score, the PR state) being throttled
    number = 26 + nth_write
    flow.push_session(stack, linked, f"w-{nth_write}", [number])
    gh.add_pull(linked["full_name"], number, [f"feat\n\nTracemark-Sessions: w-{nth_write}"], shas=[sha(number)])
    listed = f"/pulls/{number}/commits$"
    fault = boto_faults.throttle(
        "PutItem",
        skip=nth_write,
        when=lambda: bool(gh.calls_to("GET", listed)) and not gh.calls_to("GET", rf"/issues/{number}/comments$"),
    )
    # When the PR is opened
    result = run(stack, linked, "opened", number)
    # Then the step was retried once and everything it writes is there exactly once
    assert fault.fired == 1
    assert result["status"] == "SUCCEEDED", result
    assert failed_attempts(result["history"]) == ["Unavailable"]
    assert len(gh.comments_on(linked["full_name"], number)) == 1
    assert [r["conclusion"] for r in gh.check_runs_for(linked["full_name"], sha(number))] == ["success"]
    session = flow.ok(stack, "GET", f"/v1/sessions/w-{nth_write}", linked["member"])
    assert [p["number"] for p in session["prs"]] == [number]
    assert session["score"]["pr"]["number"] == number


@pytest.mark.parametrize("target", ["comment", "check-run"])
def test_a_create_that_failed_after_github_applied_it_is_not_duplicated(
    stack: Any, gh: FakeGitHub, linked: dict[str, Any], waits: list[float], target: str
) -> None:
    # Given GitHub applying the create, then answering 502 (a gateway timing out after the write)
    number = 35 if target == "comment" else 36
    gh.add_pull(linked["full_name"], number, ["feat\n\nTracemark-Sessions: ghost"], shas=[sha(number)])
    path = rf"/issues/{number}/comments$" if target == "comment" else r"/check-runs$"
    gh.fail("POST", path, 502, times=1, apply=True)
    # When the PR is opened
    result = run(stack, linked, "opened", number)
    # Then the client did not send the create again; the retried step found it and edited it
    assert result["status"] == "SUCCEEDED", result
    assert failed_attempts(result["history"]) == ["GitHubUnavailable"]
    assert len(gh.calls_to("POST", path)) == 1
    assert len(gh.comments_on(linked["full_name"], number)) == 1
    assert len(gh.check_runs_for(linked["full_name"], sha(number))) == 1
    if target == "comment":
        assert len(gh.calls_to("PATCH", r"/issues/comments/\d+$")) == 1
    else:
        assert len(gh.calls_to("PATCH", r"/check-runs/\d+$")) == 1
