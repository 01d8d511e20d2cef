"""Scenario 4, `requireTrace: true` (SPEC §2.1, §2.6; docs/evidence.md §7): any failure to attest
blocks the push with the reason and the fix — not logged in, the server down, the server rejecting
the attestation — and once the cause is fixed the same push goes through, each session once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scenario_kit import ClaudeSession, Dev, Link, api, make_remote, new_tenant

pytestmark = pytest.mark.slow


def test_require_trace_blocks_every_failure_until_fixed(served_stack: Any, tmp_path: Path, link: Link) -> None:
    served = served_stack
    tenant = new_tenant(served, "strict")
    remote = make_remote(tmp_path, {"README.md": "# app\n"})
    alice = Dev(tmp_path, "alice", remote)
    token = tenant.user_token("alice@example.com")
    alice.login(served, token)

    # Given a repository initialised with --require-trace
    init = alice.tracemark("init", "--project", "web", "--org", tenant.org, "--require-trace")
    assert init.returncode == 0, init.stderr
    assert "requireTrace: true" in (alice.root / ".tracemark.yml").read_text()
    config_commit = alice.commit("chore: trace AI sessions, strictly")
    assert alice.push().returncode == 0  # no trailer, nothing to attest: never blocked
    s1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl")
    s1.start()
    s1.write("src/a.py", "a = 1\nb = 2\n")
    s1.end()
    c1 = alice.commit("feat: a")

    # When Alice is not logged in and pushes
    assert alice.tracemark("auth", "logout").returncode == 0
    blocked = alice.push()
    # Then the push is blocked, says why and how to fix it, and the remote did not move
    assert blocked.returncode != 0
    assert "requireTrace" in blocked.stderr
    assert "not logged in" in blocked.stderr
    assert "tracemark auth login" in blocked.stderr
    assert alice.remote_head() == config_commit

    # When she logs in again but the server cannot be reached (her network is down)
    alice.login(served, token, via=link)
    link.down()
    down = alice.push()
    # Then the push is blocked again, says why, and the attestation waits in the spool
    assert down.returncode != 0
    assert "requireTrace" in down.stderr
    assert "spool" in down.stderr
    assert alice.remote_head() == config_commit
    assert len(alice.spool()) == 1

    # When the server is reachable again and she pushes again
    link.up()
    through = alice.push()
    # Then the spooled attestation is delivered and the push goes through
    assert through.returncode == 0, through.stderr
    assert alice.remote_head() == c1
    assert alice.spool() == [] and alice.rejected() == []
    assert [s["id"] for s in tenant.sessions()] == [s1.id]

    # When the project in .tracemark.yml does not exist on the server
    alice.login(served, token)
    config = alice.root / ".tracemark.yml"
    config.write_text(config.read_text().replace("projectName: web", "projectName: mobile"))
    s2 = ClaudeSession(alice, "claude_transcript_rejected_then_created_write.jsonl")
    s2.start()
    s2.write("src/b.py", "b = 1\n")
    s2.end()
    c2 = alice.commit("feat: b, for mobile")
    rejected = alice.push()
    # Then the server's 4xx blocks the push with its message; the attestation is kept, not retried
    assert rejected.returncode != 0
    assert "requireTrace" in rejected.stderr
    assert "unknown_project" in rejected.stderr or "mobile" in rejected.stderr
    assert alice.remote_head() == c1
    assert len(alice.rejected()) == 1 and alice.spool() == []

    # When an admin creates the project and Alice pushes again
    api(served, "POST", "/v1/projects", tenant.admin, 201, json={"name": "mobile"})
    fixed = alice.push()
    # Then it goes through, and the server has each session once
    assert fixed.returncode == 0, fixed.stderr
    assert alice.remote_head() == c2
    assert sorted(s["id"] for s in tenant.sessions()) == sorted([s1.id, s2.id])
    assert tenant.session(s2.id)["project"] == "mobile"
    cards = tenant.dashboard("24h")
    assert cards["total_sessions"]["value"] == 2
    assert cards["ai_authored_code"]["ai_lines"] == 2 + 1
    # and per project
    for project, lines in (("web", 2), ("mobile", 1)):
        scoped = tenant.get("/v1/dashboard/ai", range="24h", project=project)
        assert (scoped["total_sessions"]["value"], scoped["ai_authored_code"]["ai_lines"]) == (1, lines)
