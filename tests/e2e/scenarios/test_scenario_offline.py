"""Scenario 3, offline push and recovery from the spool (SPEC §2.6): `tracemark serve` is stopped,
`git push` still pushes and keeps the attestations in the spool; when the server is back, the next
push delivers them, `tracemark push` finds nothing left, a later push of the same session merges
into it, and the server counts every session exactly once."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from scenario_kit import ClaudeSession, Dev, api, expected_usage, make_remote, new_tenant, numstat_lines

pytestmark = pytest.mark.slow

TRANSCRIPTS = ("claude_transcript_write_create_and_bash.jsonl", "claude_transcript_rejected_then_created_write.jsonl")


def status(dev: Dev) -> dict[str, Any]:
    result = dev.tracemark("status", "--json", check=True)
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_offline_push_then_recovery_from_the_spool(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "offline")
    remote = make_remote(tmp_path, {"README.md": "# app\n"})
    alice = Dev(tmp_path, "alice", remote)
    alice_token = tenant.user_token("alice@example.com")
    alice.login(served, alice_token)
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0

    # Given two Claude sessions, each with a commit
    s1 = ClaudeSession(alice, TRANSCRIPTS[0])
    s1.start()
    s1.write("src/a.py", "".join(f"a{i} = {i}\n" for i in range(5)))
    c1 = alice.commit("feat: a")
    s2 = ClaudeSession(alice, TRANSCRIPTS[1], model="claude-opus-4-5-20251101")
    s2.start()
    s2.write("src/b.py", "b0 = 0\nb1 = 1\nb2 = 2\n")
    s2.end()
    c2 = alice.commit("feat: b")

    # When the server is down and Alice pushes, one commit at a time
    assert served.stop() == 0
    try:
        first = alice.push("-q", "origin", f"{c1}:refs/heads/main")
        second = alice.push("-q", "origin", "main")
        # Then both pushes went through, with a warning, and nothing was lost: two items in the spool
        assert first.returncode == 0, first.stderr
        assert second.returncode == 0, second.stderr
        assert "spooled" in first.stderr and "spooled" in second.stderr
        assert alice.remote_head() == c2
        spooled = alice.spool()
        assert len(spooled) == 2
        assert {json.loads(p.read_text())["session_id"] for p in spooled} == {s1.id, s2.id}
        down = status(alice)
        assert down["spool"] == {"pending": 2, "rejected": 0}
        assert down["server"]["reachable"] is False
        # And `tracemark push` while it is still down keeps them and says so
        still = alice.tracemark("push")
        assert still.returncode != 0
        assert re.search(r"\b0 delivered\b.*\b2 still pending, 0 rejected", still.stdout + still.stderr)
        envelopes = [json.loads(p.read_text())["envelope"] for p in spooled]
    finally:
        # When the server is back (same data directory)
        served.start()

    # And Alice pushes an unrelated commit of her own
    alice.write("README.md", "# app\n\nBy hand.\n")
    alice.commit("docs: readme")
    recovered = alice.push()
    # Then that push delivered the spool first: nothing pending, nothing rejected
    assert recovered.returncode == 0, recovered.stderr
    assert alice.spool() == [] and alice.rejected() == []
    nothing = alice.tracemark("push")
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to deliver: the spool is empty" in nothing.stderr
    up = status(alice)
    assert up["spool"] == {"pending": 0, "rejected": 0}
    assert up["server"]["reachable"] is True

    # And the server holds each session once, with its commit
    assert sorted(s["id"] for s in tenant.sessions()) == sorted([s1.id, s2.id])
    for session, sha in ((s1, c1), (s2, c2)):
        commits = tenant.session(session.id)["evidence"]["data"]["git_context"]["tracemark_commits"]
        assert [c["sha"] for c in commits] == [sha]
    # and a replay of a delivered envelope is the stored result, not a new session
    for envelope in envelopes:
        api(served, "POST", "/v1/attestations", alice_token, 200, json=envelope)

    tokens = sum(expected_usage(t)["input_tokens"] + expected_usage(t)["output_tokens"] for t in TRANSCRIPTS)
    cards = tenant.dashboard("24h")
    assert (cards["total_sessions"]["value"], cards["active_users"]["value"]) == (2, 1)
    assert cards["total_tokens"]["value"] == tokens
    assert cards["ai_authored_code"]["ai_lines"] == 5 + 3
    assert cards["ai_authored_code"]["all_lines"] == numstat_lines(alice, c1) + numstat_lines(alice, c2) == 8

    # When the first session goes on, online again, and its next commit is pushed
    s1.write("src/a.py", (alice.root / "src/a.py").read_text() + "a5 = 5\na6 = 6\n")
    s1.end()
    c4 = alice.commit("feat: more a")
    again = alice.push()
    assert again.returncode == 0, again.stderr
    # Then it is merged into the same session (commits united), still two sessions, tokens not summed
    assert sorted(s["id"] for s in tenant.sessions()) == sorted([s1.id, s2.id])
    merged = tenant.session(s1.id)["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert {c["sha"] for c in merged} >= {c4}
    cards = tenant.dashboard("24h")
    assert cards["total_sessions"]["value"] == 2
    assert cards["total_tokens"]["value"] == tokens
    assert cards["ai_authored_code"]["ai_lines"] == 5 + 3 + 2
    assert cards["ai_authored_code"]["all_lines"] == 8 + numstat_lines(alice, c4) == 10
    assert alice.spool() == []

    # When an admin erases the second session
    api(served, "DELETE", f"/v1/sessions/{s2.id}", tenant.admin, 200)
    # Then it is gone and the dashboard moved back by exactly its numbers
    assert [s["id"] for s in tenant.sessions()] == [s1.id]
    cards = tenant.dashboard("24h")
    assert cards["total_sessions"]["value"] == 1
    assert cards["total_tokens"]["value"] == tokens - sum(
        expected_usage(TRANSCRIPTS[1])[k] for k in ("input_tokens", "output_tokens")
    )
    assert (cards["ai_authored_code"]["ai_lines"], cards["ai_authored_code"]["all_lines"]) == (5 + 2, 5 + 2)
