"""Scenario 1, a developer's day: two developers, Claude Code and Cursor sessions, human edits in the
same files, `git commit --amend`, a rebase onto a teammate's work, `git push` — then the numbers
everywhere (commit trailers, per-file attribution in the stored evidence, the PR comment and check
run, the dashboard cards) equal what this test computes on its own from what it typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import deliver, eventually
from scenario_kit import (
    ClaudeSession,
    CursorSession,
    Dev,
    commits_between,
    expected_cost,
    expected_usage,
    link_github_repo,
    make_remote,
    new_tenant,
    numstat_lines,
    pr_event,
)

from tracemark_common.prs.render import CHECK_NAME, MARKER
from tracemark_local.fake_github import FakeCommit

pytestmark = pytest.mark.slow

UTIL = "def a():\n    return 0\n\n\ndef b():\n    return 1\n"
APP = "".join(f"line_{i} = {i}\n" for i in range(1, 11))


def files_of(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in detail["evidence"]["data"]["code_changes"]["files"]}


def ranges(file: dict[str, Any]) -> list[tuple[int, int]]:
    return [(r["start"], r["end"]) for r in file.get("line_ranges", [])]


def tokens_of(fixture: str) -> int:
    usage = expected_usage(fixture)
    return usage["input_tokens"] + usage["output_tokens"]


def test_a_developers_day(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "day")
    remote = make_remote(tmp_path, {"README.md": "# app\n", "src/util.py": UTIL})

    # Given Alice, logged in, who sets the repository up once with `tracemark init` (checked online)
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    init = alice.tracemark("init", "--project", "web", "--org", tenant.org, "--claude", "--cursor")
    assert init.returncode == 0, init.stderr
    alice.commit("chore: trace AI sessions")
    assert alice.trailer_sessions() == []  # no AI edit, no trailer
    assert alice.push().returncode == 0
    alice.git("switch", "-q", "-c", "feature")

    # And Bob, a teammate who clones after that and never runs `init`
    bob = Dev(tmp_path, "bob", remote)
    bob.login(served, tenant.user_token("bob@example.com"))

    # When Alice has Claude write a module, then fixes one of its lines and adds two by hand
    a1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl", model="claude-opus-4-6")
    a1.start()
    a1.write("src/app.py", APP)
    a1.end()
    alice.write("src/app.py", APP.replace("line_3 = 3\n", "line_3 = 33\n") + "human_1 = 1\nhuman_2 = 2\n")
    c1 = alice.commit("feat: app module")
    # Then the commit names exactly that session, as a trailer git reads back
    assert alice.trailer_sessions(c1) == [a1.id]

    # When Cursor's agent rewrites a function and Alice edits the same file and the README by hand
    c_1 = CursorSession(alice, model="composer-2")
    c_1.start()
    ledger = alice.state / "sessions" / f"{c_1.id}.jsonl"
    captured = ledger.read_text()
    # (Cursor relays the same prompt and edit to the project's Claude Code hooks too: ignored)
    old_b, new_b = "def b():\n    return 1\n", "def b():\n    return 2\n\n\ndef c():\n    return 3\n"
    edit = {"file_path": str(alice.root / "src/util.py"), "old_string": old_b, "new_string": new_b}
    assert c_1.relay_through_claude_hooks("UserPromptSubmit", prompt="Refactor the helper.")
    assert c_1.relay_through_claude_hooks("PreToolUse", tool_name="Edit", tool_input=edit, tool_use_id="relayed-1")
    c_1.edit("src/util.py", old_b, new_b)
    assert c_1.relay_through_claude_hooks("PostToolUse", tool_name="Edit", tool_input=edit, tool_use_id="relayed-1")
    assert ledger.read_text().startswith(captured)
    assert ledger.read_text().count("\n") == captured.count("\n") + 1  # the afterFileEdit, once
    relayed = [line for line in (alice.state / "log.txt").read_text().splitlines() if c_1.id in line]
    assert sum("result=ignored" in line for line in relayed) == 3
    c_1.stop(input_tokens=40450, output_tokens=754)
    c_1.end()
    util = (alice.root / "src/util.py").read_text()
    alice.write("src/util.py", util.replace("    return 0\n", "    return 00\n") + "# end\n")
    c2 = alice.commit("refactor: util", "src/util.py")
    assert alice.trailer_sessions(c2) == [c_1.id]
    # and amends that commit with a README line and a message of her own (no trailer typed)
    alice.write("README.md", "# app\n\nA small app.\n")
    c2_amended = alice.commit("refactor: util, and say what the app is", amend=True)
    # Then the amended commit still names the Cursor session
    assert c2_amended != c2
    assert alice.trailer_sessions(c2_amended) == [c_1.id]

    # When a second Claude session changes one of the first session's lines and writes a test
    a2 = ClaudeSession(alice, "claude_transcript_rejected_then_created_write.jsonl", model="claude-opus-4-5-20251101")
    a2.start()
    a2.edit("src/app.py", "line_5 = 5\n", "line_5 = 50\nline_5b = 51\n")
    a2.write("tests/test_app.py", "from src.app import line_1\n\n\nassert line_1 == 1\n")
    a2.end()
    c3 = alice.commit("test: app", signoff=True)
    # Then the trailer joins the Signed-off-by block (one trailer paragraph, git reads both)
    assert alice.trailer_sessions(c3) == [a2.id]
    assert alice.message(c3).rstrip().endswith(f"Signed-off-by: Alice <alice@example.com>\nTracemark-Sessions: {a2.id}")

    # And meanwhile Bob's first Claude session (two models) writes docs on main and he pushes
    b1 = ClaudeSession(bob, "claude_transcript_model_switch_trimmed.jsonl", model="claude-sonnet-4-5-20250929")
    b1.start()
    b1.write("docs/bob.md", "".join(f"bob {i}\n" for i in range(5)))
    b1.end()
    bob_commit = bob.commit("docs: bob")
    assert bob.trailer_sessions(bob_commit) == [b1.id]
    pushed = bob.push()
    assert pushed.returncode == 0, pushed.stderr

    # When Alice rebases her branch onto Bob's work and pushes it
    alice.git("fetch", "-q", "origin")
    alice.git("rebase", "-q", "origin/main")
    rebased = commits_between(alice, "origin/main", "HEAD")
    r1, r2, r3 = (sha for sha, _ in rebased)
    assert {r1, r2, r3}.isdisjoint({c1, c2_amended, c3})
    pushed = alice.push("-q", "origin", "feature")
    assert pushed.returncode == 0, pushed.stderr
    for session in (a1, c_1, a2):
        assert f"sessions/{session.id}" in pushed.stderr

    # Then the trailers survived the rebase
    assert [alice.trailer_sessions(sha) for sha in (r1, r2, r3)] == [[a1.id], [c_1.id], [a2.id]]
    # And the server holds exactly the four sessions
    assert sorted(s["id"] for s in tenant.sessions()) == sorted([a1.id, c_1.id, a2.id, b1.id])

    # And each session's evidence carries the rebased commits and the attribution of what was typed
    first = tenant.session(a1.id)
    changes = first["evidence"]["data"]["code_changes"]
    app = files_of(first)["src/app.py"]
    assert (app["lines_added"], app["lines_removed"]) == (12, 0)
    assert ranges(app) == [(1, 2), (4, 10)]  # line 3 was changed by hand: human
    assert (changes["ai_lines_added"], changes["human_lines_added"]) == (9, 3)
    commits = first["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert [c["sha"] for c in commits] == [r1]
    assert c1 in commits[0]["rewritten_from"]

    cursor = tenant.session(c_1.id)
    changes = cursor["evidence"]["data"]["code_changes"]
    util_file = files_of(cursor)["src/util.py"]
    assert (util_file["lines_added"], util_file["lines_removed"]) == (7, 2)
    assert ranges(util_file) == [(6, 10)]
    assert files_of(cursor)["README.md"]["attribution"] == "human"
    assert (changes["ai_lines_added"], changes["ai_lines_removed"]) == (5, 1)
    assert (changes["human_lines_added"], changes["human_lines_removed"]) == (2 + 2, 1)  # util + README
    commits = cursor["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert [c["sha"] for c in commits] == [r2]
    assert c2_amended in commits[0]["rewritten_from"]
    assert cursor["evidence"]["data"]["agent"]["name"] == "cursor"

    second = tenant.session(a2.id)
    changes = second["evidence"]["data"]["code_changes"]
    assert ranges(files_of(second)["src/app.py"]) == [(5, 6)]
    assert ranges(files_of(second)["tests/test_app.py"]) == [(1, 4)]
    assert (changes["ai_lines_added"], changes["ai_lines_removed"], changes["human_lines_added"]) == (6, 1, 0)

    assert ranges(files_of(tenant.session(b1.id))["docs/bob.md"]) == [(1, 5)]

    # When GitHub opens the pull request of Alice's branch
    linked = link_github_repo(served, tenant, deliver)
    gh = served.github
    pull = gh.add_pull(linked.full_name, 1, [m for _, m in rebased], shas=[r1, r2, r3], title="Alice's day")
    assert deliver(served, "pull_request", pr_event(linked, 1, "opened")).status_code == 202
    # Then the check run passes and the one comment has a row per session and nothing missing
    runs = eventually(
        lambda: [r for r in gh.check_runs_for(linked.full_name, pull.head_sha) if r.get("status") == "completed"],
        "the check run",
    )
    assert [(r["name"], r["conclusion"]) for r in runs] == [(CHECK_NAME, "success")], runs[0]["output"]["summary"]
    assert runs[0]["output"]["title"].startswith("3 AI sessions")
    (comment,) = eventually(lambda: gh.comments_on(linked.full_name, 1), "the summary comment")
    body = comment["body"]
    assert body.startswith(MARKER)
    for session in (a1, c_1, a2):
        assert session.id[:8] in body
    assert b1.id[:8] not in body
    assert "issing" not in body  # no "missing sessions" warning

    # And the dashboard equals what we compute from what was typed and what git says
    ai_lines = 9 + (5 + 1) + (6 + 1) + 5
    all_lines = sum(numstat_lines(alice, sha) for sha in (r1, r2, r3)) + numstat_lines(bob, bob_commit)
    assert all_lines == 12 + (9 + 2) + (6 + 1) + 5
    tokens = (
        tokens_of("claude_transcript_write_create_and_bash.jsonl")
        + tokens_of("claude_transcript_rejected_then_created_write.jsonl")
        + tokens_of("claude_transcript_model_switch_trimmed.jsonl")
        + 40450
        + 754
    )
    cards = eventually(
        lambda: (body := tenant.dashboard("24h"))["ai_assisted_prs"]["value"] == 1 and body, "the PR to count"
    )
    assert cards["total_sessions"]["value"] == 4
    assert cards["active_users"]["value"] == 2
    assert cards["ai_authored_code"]["ai_lines"] == ai_lines
    assert cards["ai_authored_code"]["all_lines"] == all_lines
    assert cards["ai_authored_code"]["value"] == round(100 * ai_lines / all_lines, 2)
    assert cards["total_tokens"]["value"] == tokens
    assert cards["total_sessions"]["previous"] == 0 and cards["total_sessions"]["delta_pct"] is None
    users = {row["user"]: row for row in cards["top_users"]}
    assert users["alice@example.com"]["sessions"] == 3
    assert users["alice@example.com"]["ai_lines"] == 9 + 6 + 7
    assert users["bob@example.com"]["sessions"] == 1
    series = cards["series"]
    assert len(series) == 24
    assert sum(point["sessions"] for point in series) == 4
    assert sum(point["tokens"] for point in series) == tokens
    assert sum(point["ai_lines"] for point in series) == ai_lines
    models = {row["model"]: row["sessions"] for row in cards["model_breakdown"]}
    assert models == {
        "claude-opus-4-6": 1,
        "claude-opus-4-5-20251101": 2,  # Alice's second session and Bob's (it switched models)
        "claude-sonnet-4-5-20250929": 1,
        "composer-2": 1,
    }


def test_squashing_two_sessions_into_one_commit(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "squash")
    remote = make_remote(tmp_path, {"README.md": "# app\n"})
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    base = alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0

    # Given two sessions, one commit each
    s1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl")
    s1.start()
    s1.write("src/a.py", "a0 = 0\na1 = 1\na2 = 2\n")
    s1.end()
    c1 = alice.commit("feat: a")
    s2 = ClaudeSession(alice, "claude_transcript_rejected_then_created_write.jsonl", model="claude-opus-4-5-20251101")
    s2.start()
    s2.write("src/b.py", "b0 = 0\nb1 = 1\n")
    s2.end()
    alice.write("src/b.py", "b0 = 0\nb1 = 1\nb2 = 2\n")  # and one line by hand
    c2 = alice.commit("feat: b")

    # When Alice squashes them with an interactive rebase (git's combined message kept)
    alice.env["GIT_SEQUENCE_EDITOR"] = "sed -i '2s/^pick/squash/'"
    alice.env["GIT_EDITOR"] = "true"
    alice.git("rebase", "-q", "-i", base)
    squashed = alice.head()
    assert alice.out("rev-list", "--count", f"{base}..HEAD") == "1"
    # Then the one commit names both sessions, as the readers take them (each line of the message)
    assert sorted(alice.message_sessions(squashed)) == sorted([s1.id, s2.id])
    pushed = alice.push()
    assert pushed.returncode == 0, pushed.stderr

    # And each session is attested with the squashed commit, its own lines, from both old commits
    first, second = tenant.session(s1.id), tenant.session(s2.id)
    for detail, old in ((first, c1), (second, c2)):
        (commit,) = detail["evidence"]["data"]["git_context"]["tracemark_commits"]
        assert commit["sha"] == squashed
        assert old in commit["rewritten_from"]
    assert ranges(files_of(first)["src/a.py"]) == [(1, 3)]
    assert ranges(files_of(second)["src/b.py"]) == [(1, 2)]
    changes = second["evidence"]["data"]["code_changes"]
    assert (changes["ai_lines_added"], changes["human_lines_added"], changes["tracemark_other_ai_lines_added"]) == (
        2,
        1,
        3,
    )
    # And the dashboard counts the shared commit once: 6 lines, 5 of them AI
    cards = tenant.dashboard("24h")
    assert cards["total_sessions"]["value"] == 2
    assert (cards["ai_authored_code"]["ai_lines"], cards["ai_authored_code"]["all_lines"]) == (5, 6)
    assert numstat_lines(alice, squashed) == 6
    # and the cost is the two transcripts' list-price cost
    cost = expected_cost("claude_transcript_write_create_and_bash.jsonl") + expected_cost(
        "claude_transcript_rejected_then_created_write.jsonl"
    )
    assert cards["total_cost_usd"]["value"] == pytest.approx(cost, abs=1e-6)


def test_force_push_after_a_rebase_replaces_the_sessions_commits(served_stack: Any, tmp_path: Path) -> None:
    served, gh = served_stack, served_stack.github
    tenant = new_tenant(served, "force")
    remote = make_remote(tmp_path, {"README.md": "# app\n"})
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0

    # Given a session's commit pushed on a branch, with its pull request open
    alice.git("switch", "-q", "-c", "feature")
    s1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl")
    s1.start()
    s1.write("src/a.py", "a0 = 0\na1 = 1\na2 = 2\na3 = 3\n")
    s1.end()
    c1 = alice.commit("feat: a")
    assert alice.push("-q", "origin", "feature").returncode == 0
    linked = link_github_repo(served, tenant, deliver)
    pull = gh.add_pull(linked.full_name, 2, [alice.message(c1)], shas=[c1])
    assert deliver(served, "pull_request", pr_event(linked, 2, "opened")).status_code == 202
    eventually(lambda: gh.check_runs_for(linked.full_name, c1), "the first check run")

    # When main moves on (a teammate's human commit) and Alice rebases and force-pushes
    bob = Dev(tmp_path, "bob", remote)
    bob.write("README.md", "# app\n\nBy Bob.\n")
    bob.commit("docs: readme")
    assert bob.push().returncode == 0
    alice.git("fetch", "-q", "origin")
    alice.git("rebase", "-q", "origin/main")
    r1 = alice.head()
    pushed = alice.push("-q", "--force", "origin", "feature")
    assert pushed.returncode == 0, pushed.stderr

    # Then the session's commits are the rebased one only (the old one was rewritten)
    (commit,) = tenant.session(s1.id)["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert commit["sha"] == r1 and c1 in commit["rewritten_from"]
    assert len(tenant.sessions()) == 1
    # And the dashboard counts its lines once
    cards = tenant.dashboard("24h")
    assert cards["total_sessions"]["value"] == 1
    assert (cards["ai_authored_code"]["ai_lines"], cards["ai_authored_code"]["all_lines"]) == (4, 4)

    # When GitHub reports the force-push (synchronize)
    pull.commits = [FakeCommit(r1, alice.message(r1), [pull.base_sha])]
    assert deliver(served, "pull_request", pr_event(linked, 2, "synchronize")).status_code == 202
    # Then the new head's check run passes with the session verified through its new sha
    (run,) = eventually(
        lambda: [r for r in gh.check_runs_for(linked.full_name, r1) if r.get("status") == "completed"], "the new check"
    )
    assert run["conclusion"] == "success", run["output"]
    assert run["output"]["title"].startswith("1 AI session")
    (comment,) = gh.comments_on(linked.full_name, 2)
    assert s1.id[:8] in comment["body"] and "issing" not in comment["body"]


def test_a_session_in_a_linked_worktree(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "worktree")
    remote = make_remote(tmp_path, {"README.md": "# app\n", "src/m.py": "m = 0\n"})
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0

    # Given Claude Code working in a linked worktree of the clone (as it does for parallel tasks)
    tree = alice.worktree("alice-wt", "wt-task")
    s1 = ClaudeSession(tree, "claude_transcript_write_create_and_bash.jsonl")
    s1.start()
    s1.write("src/w.py", "w0 = 0\nw1 = 1\nw2 = 2\n")
    s1.edit("src/m.py", "m = 0\n", "m = 1\n")
    s1.end()
    # and a human line in the same file in the main checkout (another file, another work tree)
    alice.write("src/w.py", "elsewhere = 1\n")
    # When the worktree's commit is made and pushed from the worktree
    sha = tree.commit("feat: w")
    assert tree.trailer_sessions(sha) == [s1.id]
    pushed = tree.push("-q", "origin", "wt-task")
    assert pushed.returncode == 0, pushed.stderr
    # Then the state is shared (common dir) and the session attributed as typed in the worktree
    assert tree.state == alice.state
    detail = tenant.session(s1.id)
    assert ranges(files_of(detail)["src/w.py"]) == [(1, 3)]
    assert ranges(files_of(detail)["src/m.py"]) == [(1, 1)]
    changes = detail["evidence"]["data"]["code_changes"]
    assert (changes["ai_lines_added"], changes["ai_lines_removed"], changes["human_lines_added"]) == (4, 1, 0)
    assert detail["evidence"]["data"]["git_context"]["branch"] == "wt-task"
