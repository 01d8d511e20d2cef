"""Scenario 6, a pull request's life cycle with a late session (SPEC §3.2, §3.5): Bob's push could not
reach the server (his network was down), so his session is missing when the PR opens (check run `failure`, listed in the
comment); the `skip-ai-session` label waives only that rule (`success`); when his spooled
attestation finally arrives, ingest correlates the open PR again and the flag is cleared for real
(the label removed, still `success`), with one comment updated in place throughout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import deliver, eventually
from scenario_kit import ClaudeSession, Dev, Link, link_github_repo, make_remote, new_tenant, pr_event

from tracemark_common.prs.render import CHECK_NAME, MARKER

pytestmark = pytest.mark.slow

PR = 5


def test_pr_life_cycle_with_a_late_session(served_stack: Any, tmp_path: Path, link: Link) -> None:
    served, gh = served_stack, served_stack.github
    tenant = new_tenant(served, "prlife")
    linked = link_github_repo(served, tenant, deliver)
    remote = make_remote(tmp_path, {"README.md": "# app\n"})

    # Given Alice set the repository up, and attested her session on the feature branch
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0
    alice.git("switch", "-q", "-c", "feature")
    a1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl")
    a1.start()
    a1.write("src/a.py", "".join(f"a{i} = {i}\n" for i in range(4)))
    a1.end()
    a_commit = alice.commit("feat: a")
    assert alice.push("-q", "origin", "feature").returncode == 0

    # And Bob added his session's commit while the server could not be reached (spooled)
    bob = Dev(tmp_path, "bob", remote)
    bob.login(served, tenant.user_token("bob@example.com"), via=link)
    bob.git("switch", "-q", "feature")
    b1 = ClaudeSession(bob, "claude_transcript_rejected_then_created_write.jsonl", model="claude-opus-4-5-20251101")
    b1.start()
    b1.write("src/b.py", "b0 = 0\nb1 = 1\n")
    b1.end()
    b_commit = bob.commit("feat: b")
    link.down()
    offline = bob.push("-q", "origin", "feature")
    assert offline.returncode == 0, offline.stderr
    assert len(bob.spool()) == 1
    assert [s["id"] for s in tenant.sessions()] == [a1.id]

    # When the pull request is opened
    shas = [a_commit, b_commit]
    pull = gh.add_pull(linked.full_name, PR, [bob.message(sha) for sha in shas], shas=shas)

    def check() -> dict[str, Any]:
        runs = [r for r in gh.check_runs_for(linked.full_name, pull.head_sha) if r.get("status") == "completed"]
        assert len(runs) == 1, runs  # one check run on the head, updated in place
        return runs[0]

    def comment() -> str:
        (only,) = gh.comments_on(linked.full_name, PR)
        body: str = only["body"]
        assert body.startswith(MARKER)
        return body

    assert deliver(served, "pull_request", pr_event(linked, PR, "opened")).status_code == 202
    # Then the check run fails on Bob's missing session, named in full with its commit
    eventually(lambda: gh.check_runs_for(linked.full_name, pull.head_sha) and check()["conclusion"], "the check")
    run = check()
    assert (run["name"], run["conclusion"]) == (CHECK_NAME, "failure")
    assert "1 missing session" in run["output"]["title"]
    assert b1.id in run["output"]["summary"]
    # And the comment shows Alice's session and lists Bob's as missing
    body = eventually(lambda: gh.comments_on(linked.full_name, PR) and comment(), "the comment")
    assert a1.id[:8] in body
    assert b1.id in body[body.lower().index("missing") :]

    # When the skip-ai-session label is applied
    pull.labels.append("skip-ai-session")
    assert deliver(served, "pull_request", pr_event(linked, PR, "labeled", "skip-ai-session")).status_code == 202
    # Then the same check run passes (only the missing-session rule is waived)
    eventually(lambda: check()["conclusion"] == "success", "the label to be read")

    # When Bob is back online and delivers his spooled attestation
    link.up()
    delivered = bob.tracemark("push")
    assert delivered.returncode == 0, delivered.stderr
    assert bob.spool() == []
    # Then ingest correlated the open PR again: both sessions shown, nothing missing any more
    body = eventually(lambda: b1.id[:8] in (text := comment()) and "issing" not in text and text, "the late session")
    assert a1.id[:8] in body
    run = eventually(lambda: "missing" not in (r := check())["output"]["title"] and r, "the check of the late session")
    assert run["conclusion"] == "success"
    assert run["output"]["title"].startswith("2 AI sessions")

    # When the label is removed again
    pull.labels.remove("skip-ai-session")
    published = len(gh.calls_to("PATCH", r"/check-runs/\d+$"))
    unlabeled = pr_event(linked, PR, "unlabeled", "skip-ai-session")
    assert deliver(served, "pull_request", unlabeled).status_code == 202
    # Then the check still passes: the flag was cleared, not waived
    eventually(lambda: len(gh.calls_to("PATCH", r"/check-runs/\d+$")) > published, "the unlabeled run")
    assert "missing" not in check()["output"]["title"]
    assert check()["conclusion"] == "success"
    assert len(gh.comments_on(linked.full_name, PR)) == 1

    # And a pull request without any trailer gets a passing "No AI sessions" check and no comment
    alice.write("NOTES.md", "by hand\n")
    human = alice.commit("docs: by hand")
    plain = gh.add_pull(linked.full_name, PR + 1, [alice.message(human)], shas=[human])
    assert deliver(served, "pull_request", pr_event(linked, PR + 1, "opened")).status_code == 202
    (quiet,) = eventually(
        lambda: [r for r in gh.check_runs_for(linked.full_name, plain.head_sha) if r.get("status") == "completed"],
        "the check of the PR without AI",
    )
    assert (quiet["conclusion"], quiet["output"]["title"]) == ("success", "No AI sessions")
    assert gh.comments_on(linked.full_name, PR + 1) == []

    # And the dashboard counts one AI-assisted PR, two sessions, two users
    cards = eventually(lambda: (c := tenant.dashboard("24h"))["ai_assisted_prs"]["value"] == 1 and c, "the PR")
    assert (cards["total_sessions"]["value"], cards["active_users"]["value"]) == (2, 2)
    for session in (a1, b1):
        prs = tenant.session(session.id)["prs"]
        assert [p["number"] for p in prs] == [PR]
