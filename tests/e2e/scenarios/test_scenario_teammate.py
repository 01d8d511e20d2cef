"""Scenario 2, a teammate onboarding without `tracemark init`: the committed `.tracemark.yml` and
agent config are all it takes (SPEC §2.1 "Teammates"); a teammate without the CLI sees nothing;
commits carrying the trailer of a session nobody attested are pushed as they are and flagged as
missing on the pull request (SPEC §2.6, §3.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import deliver, eventually
from scenario_kit import ClaudeSession, CursorSession, Dev, link_github_repo, make_remote, new_tenant, pr_event

from tracemark_common.prs.render import CHECK_NAME, MARKER

pytestmark = pytest.mark.slow

GIT_HOOKS = ("commit-msg", "post-commit", "post-rewrite", "pre-push")


def our_hooks(dev: Dev) -> list[str]:
    hooks = dev.root / ".git" / "hooks"
    return [name for name in GIT_HOOKS if (hooks / name).exists() and "tracemark-managed" in (hooks / name).read_text()]


def test_a_teammate_onboards_without_init(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "mate")
    remote = make_remote(tmp_path, {"README.md": "# app\n"})

    # Given Alice initialised the repository and committed the config
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org, "--claude", "--cursor").returncode == 0
    alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0
    # and attested a Claude session for a commit on her own branch
    alice.git("switch", "-q", "-c", "alice-work")
    a1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl", model="claude-opus-4-6")
    a1.start()
    a1.write("src/alice.py", "".join(f"alice_{i} = {i}\n" for i in range(6)))
    a1.end()
    alice_commit = alice.commit("feat: alice's part")
    assert alice.trailer_sessions(alice_commit) == [a1.id]
    assert alice.push("-q", "origin", "alice-work").returncode == 0
    # and a second session's commit she never pushes
    a2 = ClaudeSession(alice, None)
    a2.start()
    a2.write("src/alice2.py", "x = 1\n")
    alice_unpushed = alice.commit("feat: alice's second part")
    assert alice.trailer_sessions(alice_unpushed) == [a2.id]
    # and she mails Bob both commits as patches (the trailers travel in the messages)
    patch = alice.git("format-patch", "-2", "--stdout", alice_unpushed).stdout

    # Given Carol, who has no tracemark CLI at all, opens the project in Claude Code and Cursor
    carol = Dev(tmp_path, "carol", remote, with_cli=False)
    c1 = ClaudeSession(carol, None)
    # Then every installed hook runs quietly (exit 0, nothing printed, Cursor reads `{}`) and does nothing
    assert c1.start()
    c1.write("notes.md", "carol\n")
    cursor = CursorSession(carol)
    assert cursor.start()
    assert our_hooks(carol) == []
    assert not (carol.root / ".git" / "tracemark").exists()

    # Given Dave, with the CLI, whose first agent session is in Cursor: its hook installs the git hooks
    dave = Dev(tmp_path, "dave", remote)
    assert our_hooks(dave) == []
    CursorSession(dave).start()
    assert our_hooks(dave) == list(GIT_HOOKS)

    # Given Bob clones without running `init`
    bob = Dev(tmp_path, "bob", remote)
    bob.login(served, tenant.user_token("bob@example.com"))
    bob.git("switch", "-q", "-c", "onboarding")
    # When he commits by hand before any agent session
    bob.write("README.md", "# app\n\nBob was here.\n")
    human = bob.commit("docs: readme")
    # Then nothing is installed yet and the commit has no trailer
    assert our_hooks(bob) == []
    assert bob.trailer_sessions(human) == []

    # When he applies Alice's patches (new commits: hers were attested for other shas, or never)
    bob.git("am", "-q", stdin=patch)
    applied, applied2 = bob.head("HEAD~1"), bob.head()
    assert applied != alice_commit
    assert (bob.trailer_sessions(applied), bob.trailer_sessions(applied2)) == ([a1.id], [a2.id])
    # and his first Claude session starts
    b1 = ClaudeSession(bob, "claude_transcript_rejected_then_created_write.jsonl", model="claude-opus-4-5-20251101")
    b1.start()
    # Then the agent hook installed the git hooks in his clone
    assert our_hooks(bob) == list(GIT_HOOKS)
    # When the session writes a file and Bob commits it
    b1.write("src/bob.py", "".join(f"bob_{i} = {i}\n" for i in range(4)))
    b1.end()
    bob_commit = bob.commit("feat: bob's part")
    # Then only his own session is named (Alice's lines were committed before, by her)
    assert bob.trailer_sessions(bob_commit) == [b1.id]

    # When Bob pushes the branch with the four commits
    pushed = bob.push("-q", "origin", "onboarding")
    # Then the push goes through, attests his session and skips Alice's two (no local record)
    assert pushed.returncode == 0, pushed.stderr
    assert f"sessions/{b1.id}" in pushed.stderr
    for session in (a1, a2):
        assert f"session {session.id} has no local record" in pushed.stderr
        assert any(
            session.id in line and "skipped" in line for line in (bob.state / "log.txt").read_text().splitlines()
        )
    assert bob.remote_head("onboarding") == bob_commit
    assert sorted(s["id"] for s in tenant.sessions()) == sorted([a1.id, b1.id])
    detail = tenant.session(b1.id)
    assert detail["evidence"]["data"]["code_changes"]["ai_lines_added"] == 4
    assert [c["sha"] for c in detail["evidence"]["data"]["git_context"]["tracemark_commits"]] == [bob_commit]

    # When the pull request of the branch is opened
    linked = link_github_repo(served, tenant, deliver)
    gh = served.github
    shas = [human, applied, applied2, bob_commit]
    pull = gh.add_pull(linked.full_name, 4, [bob.message(sha) for sha in shas], shas=shas)
    assert deliver(served, "pull_request", pr_event(linked, 4, "opened")).status_code == 202
    # Then the check run fails on Alice's two sessions — the copied reference is not verified for
    # this commit, the other was never attested — each named in full with its commit
    (run,) = eventually(
        lambda: [r for r in gh.check_runs_for(linked.full_name, pull.head_sha) if r.get("status") == "completed"],
        "the check run",
    )
    assert (run["name"], run["conclusion"]) == (CHECK_NAME, "failure")
    assert run["output"]["title"].startswith("1 AI session")
    assert "2 missing sessions" in run["output"]["title"]
    summary = run["output"]["summary"]
    for session, sha in ((a1, applied), (a2, applied2)):
        assert session.id in summary
        assert sha[:12] in summary
    # And the comment has Bob's session row; Alice's are listed as missing, without session details
    (comment,) = eventually(lambda: gh.comments_on(linked.full_name, 4), "the comment")
    body = comment["body"]
    assert body.startswith(MARKER)
    assert b1.id[:8] in body
    missing = body[body.lower().index("missing") :]
    assert a1.id in missing and a2.id in missing
    assert "claude-opus-4-6" not in body  # Alice's attested session is not shown for a copied trailer

    # And the dashboard counts Alice's attested session and Bob's: 2 sessions, 2 users
    cards = eventually(lambda: (b := tenant.dashboard("24h"))["ai_assisted_prs"]["value"] == 1 and b, "the PR")
    assert (cards["total_sessions"]["value"], cards["active_users"]["value"]) == (2, 2)
    assert cards["ai_authored_code"]["ai_lines"] == 6 + 4
    assert cards["ai_authored_code"]["all_lines"] == 6 + 4
