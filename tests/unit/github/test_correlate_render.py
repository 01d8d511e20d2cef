"""Correlation of trailer references, the summary comment and the check run."""

from __future__ import annotations

from typing import Any

import pytest

from tracemark_common.prs.correlate import PrCommit, correlate
from tracemark_common.prs.render import (
    CHECK_NAME,
    COMMENT_LIMIT,
    MARKER,
    Links,
    render_check,
    render_comment,
    repo_web_url,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40
LINKS = Links("https://github.com/acme/app", C, "https://dash.example")


def commits(*items: tuple[str, str]) -> list[PrCommit]:
    return [PrCommit(sha, message) for sha, message in items]


def test_verified_unverified_and_never_attested(sessions: Any) -> None:
    # Given s1 attested with A; s2 attested with another commit only (a copied trailer); s3 unknown
    sessions.add("s1", [A])
    sessions.add("s2", ["f" * 40])
    pr = commits((A, "x\n\nTracemark-Sessions: s1, s2"), (B, "y\n\nChainloop-Trace-Sessions: s3"))
    # When correlated
    result = correlate("acme", pr, sessions)
    # Then only s1 is a session row; s2 and s3 are missing with their commits
    assert [row.id for row in result.sessions] == ["s1"]
    assert result.missing == {"s2": [A], "s3": [B]}


def test_other_orgs_session_is_not_verified(sessions: Any) -> None:
    sessions.add("s1", [A], org="other")
    result = correlate("acme", commits((A, "Tracemark-Sessions: s1")), sessions)
    assert result.sessions == []
    assert result.missing == {"s1": [A]}
    assert ("acme", "s1") in sessions.calls


def test_rewritten_from_counts_as_attested(sessions: Any) -> None:
    sessions.add("s1", [B], rewritten_from={B: [A]})
    result = correlate("acme", commits((A, "Tracemark-Sessions: s1")), sessions)
    assert [row.id for row in result.sessions] == ["s1"]
    assert result.missing == {}


def test_aggregation_uses_per_commit_data_in_the_pr(sessions: Any, envelope: dict[str, Any]) -> None:
    # Given a session with two commits, only one of them in the PR
    envelope["data"]["git_context"] = {
        "tracemark_commits": [
            {
                "sha": A,
                "signature": "G",
                "files": [
                    {
                        "path": "src/a.py",
                        "status": "created",
                        "lines_added": 5,
                        "attribution": "ai",
                        "line_ranges": [{"start": 1, "end": 5}],
                    }
                ],
            },
            {"sha": "e" * 40, "files": [{"path": "src/other.py", "lines_added": 50, "attribution": "ai"}]},
        ]
    }
    record = sessions.add("s1", [A, "e" * 40], envelope=envelope)
    record.facts = {"commits": {A: {"lines_added": 6, "lines_removed": 0, "ai_lines_added": 5, "ai_lines_removed": 0}}}
    sessions.records[("acme", "s1")] = record
    row = correlate("acme", commits((A, "Tracemark-Sessions: s1")), sessions).sessions[0]
    assert [f.path for f in row.files] == ["src/a.py"]
    assert (row.lines_added, row.ai_lines_added) == (6, 5)
    assert row.attribution_pct == pytest.approx(100 * 5 / 6)


def test_no_trailer_no_comment_and_no_ai_sessions_check(sessions: Any) -> None:
    result = correlate("acme", commits((A, "plain commit")), sessions)
    assert render_comment(result, LINKS) is None
    check = render_check(result, skip_missing=False)
    assert (check.conclusion, check.title) == ("success", "No AI sessions")
    assert check.fields(C)["name"] == CHECK_NAME


def test_comment_contents(sessions: Any) -> None:
    sessions.add("1dea3f43-4c8f-4625-8732-349613261162", [A])
    pr = commits((A, "Tracemark-Sessions: 1dea3f43-4c8f-4625-8732-349613261162, ghost"))
    body = render_comment(correlate("acme", pr, sessions), LINKS)
    assert body is not None
    assert body.startswith(MARKER)
    assert "[`1dea3f43`](https://dash.example/#/sessions/1dea3f43-4c8f-4625-8732-349613261162)" in body
    assert "claude-code 2.1.92" in body and "claude-opus-4-6" in body
    assert "| +10 / −2 |" in body
    assert "$0.42" in body and "10m 0s" in body
    assert "<details><summary>Session <code>1dea3f43-4c8f-4625-8732-349613261162</code>" in body
    assert f"(https://github.com/acme/app/blob/{C}/src/app.py)" in body
    assert "Missing sessions (1)" in body and "`ghost`" in body
    assert "provenance 🟢 20/20" in body


def test_pr_row_when_several_sessions(sessions: Any) -> None:
    sessions.add("s1", [A])
    sessions.add("s2", [B])
    body = render_comment(
        correlate("acme", commits((A, "Tracemark-Sessions: s1"), (B, "Tracemark-Sessions: s2")), sessions), LINKS
    )
    assert body is not None and "**This PR**" in body


def test_hostile_paths_are_escaped_in_the_table(sessions: Any, envelope: dict[str, Any]) -> None:
    envelope["data"]["code_changes"]["files"] = [
        {"path": "a|b](javascript:x)<img>.py", "status": "modified", "attribution": "ai", "lines_added": 1}
    ]
    sessions.add("s1", [A], envelope=envelope)
    body = render_comment(correlate("acme", commits((A, "Tracemark-Sessions: s1")), sessions), LINKS)
    assert body is not None
    assert "a\\|b\\](javascript:x)" in body
    assert "/blob/" + C + "/a%7Cb%5D%28javascript%3Ax%29%3Cimg%3E.py" in body


def test_comment_stays_under_the_limit_with_graceful_truncation(sessions: Any, envelope: dict[str, Any]) -> None:
    # Given 150 sessions of 200 files each
    envelope["data"]["code_changes"]["files"] = [
        {
            "path": f"src/module_{i:04d}/file_with_a_long_name.py",
            "status": "modified",
            "attribution": "ai",
            "lines_added": i,
            "line_ranges": [{"start": 1, "end": i + 1}],
        }
        for i in range(200)
    ]
    message = "x"
    for n in range(150):
        sid = f"session-{n:03d}"
        sessions.add(sid, [A], envelope=envelope)
        message += f"\nTracemark-Sessions: {sid}"
    body = render_comment(correlate("acme", commits((A, message)), sessions), LINKS)
    assert body is not None
    assert len(body) <= COMMENT_LIMIT
    assert body.startswith(MARKER)
    assert "left out to stay within GitHub's comment size limit" in body
    assert "more files" in body
    assert body.rstrip().endswith("</sub>")


def test_huge_missing_list_still_fits(sessions: Any) -> None:
    message = "\n".join(f"Tracemark-Sessions: {'m' * 100}{n:03d}" for n in range(200))
    result = correlate("acme", commits((A, message)), sessions)
    body = render_comment(result, LINKS)
    assert body is not None and len(body) <= COMMENT_LIMIT
    check = render_check(result, skip_missing=False)
    assert len(check.summary) <= 65_535


def test_check_run_rules(sessions: Any) -> None:
    violation = [{"policy": "approved-models", "status": "fail", "violations": ["model x not approved"]}]
    neutral = [{"policy": "budget", "status": "neutral", "reason": "timeout"}]
    sessions.add("ok", [A])
    sessions.add("bad", [A], policy_results=violation)
    sessions.add("unsure", [A], policy_results=neutral)

    def check(ids: str, skip: bool = False) -> Any:
        return render_check(correlate("acme", commits((A, f"Tracemark-Sessions: {ids}")), sessions), skip_missing=skip)

    assert check("ok").conclusion == "success"
    assert check("ok").title == "1 AI session"
    failed = check("ok, bad")
    assert failed.conclusion == "failure"
    assert failed.title == "2 AI sessions, 1 policy violation"
    assert "`bad` **approved-models**: model x not approved" in failed.summary
    assert check("ok, unsure").conclusion == "neutral"
    # missing sessions fail unless the label skips that rule; violations still fail with the label
    missing = check("ok, ghost")
    assert missing.conclusion == "failure"
    assert f"`ghost` named in commits `{A}`" in missing.summary
    assert check("ok, ghost", skip=True).conclusion == "success"
    assert "skipped by label" in check("ok, ghost", skip=True).title
    assert check("bad, ghost", skip=True).conclusion == "failure"
    assert check("unsure, ghost", skip=True).conclusion == "neutral"


@pytest.mark.parametrize(
    ("html_url", "expected"),
    [
        ("https://github.com/acme/app/pull/5", "https://github.com/acme/app"),
        ("https://ghe.example/acme/app/pull/5", "https://ghe.example/acme/app"),
        ("https://evil.example/other/repo/pull/5", "https://github.com/acme/app"),
        ("javascript:alert(1)", "https://github.com/acme/app"),
        ("", "https://github.com/acme/app"),
    ],
)
def test_repo_web_url(html_url: str, expected: str) -> None:
    assert repo_web_url(html_url, "acme/app") == expected


def test_session_score_of_a_whole_session(sessions: Any) -> None:
    from tracemark_common.prs.correlate import session_score

    record = sessions.add("s1", [A, B])
    score = session_score(record)
    assert score["score"] == 100 and score["flag"] == "green"
    assert set(score["criteria"]) == {"provenance", "oversight", "verification", "risk", "policy"}
