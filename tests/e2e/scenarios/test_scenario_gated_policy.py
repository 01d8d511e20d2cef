"""Scenario 5, a gated policy blocks the push (SPEC §2.6, §3.3; docs/policies.md): the project's
contract gates `approved-models`; a session that used another model is stored with its violations,
the pre-push hook interrupts this push and every later one containing the session, an advisory
(`gate: false`) violation never blocks, and the PR's check run fails listing every violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import deliver, eventually
from scenario_kit import ClaudeSession, Dev, api, link_github_repo, make_remote, new_tenant, pr_event

from tracemark_common.prs.render import CHECK_NAME

pytestmark = pytest.mark.slow

CONTRACT = """\
apiVersion: chainloop.dev/v1
kind: Contract
metadata:
  name: house-rules
spec:
  policies:
    materials:
      - ref: builtin:approved-models
        with:
          allowed_models: claude-sonnet-*
        gate: true
      - ref: builtin:token-budget
        with:
          max_tokens: 100
        gate: false
"""


def test_a_gated_policy_blocks_the_push(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "gated")
    # Given the project's contract: only Sonnet models (gated), a 100-token budget (advisory)
    api(served, "PUT", "/v1/projects/web/contract", tenant.admin, 200, json={"contract": CONTRACT})
    remote = make_remote(tmp_path, {"README.md": "# app\n"})
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    base = alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0
    # and a Claude session on Opus (483 tokens in its transcript)
    s1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl", model="claude-opus-4-6")
    s1.start()
    s1.write("src/a.py", "".join(f"a{i} = {i}\n" for i in range(3)))
    s1.end()
    c1 = alice.commit("feat: a")

    # When Alice pushes
    blocked = alice.push()
    # Then the push is interrupted with the violation, and nothing reached the remote
    assert blocked.returncode != 0
    assert "gated policy" in blocked.stderr
    # the gating policy first and marked, the advisory one after it
    assert "approved-models (gated): Model 'claude-opus-4-6' is not approved" in blocked.stderr
    assert "; token-budget: Session used 483 tokens, over the budget of 100" in blocked.stderr
    assert alice.remote_head() == base
    # And the session is stored anyway, with both results
    (stored,) = tenant.sessions()
    assert stored["id"] == s1.id
    results = {r["policy"]: r for r in tenant.session(s1.id)["policy_results"]}
    assert (results["approved-models"]["status"], results["approved-models"]["gate"]) == ("fail", True)
    assert (results["token-budget"]["status"], results["token-budget"]["gate"]) == ("fail", False)

    # When she pushes again without changing anything
    again = alice.push()
    # Then it is blocked again, and the server still has one session
    assert again.returncode != 0
    assert "gated policy" in again.stderr
    assert alice.remote_head() == base
    assert len(tenant.sessions()) == 1
    assert tenant.dashboard("24h")["total_sessions"]["value"] == 1

    # When she bypasses the hook (git push --no-verify) and opens a pull request
    assert alice.git("switch", "-q", "-c", "feature").returncode == 0
    assert alice.push("-q", "--no-verify", "origin", "feature").returncode == 0
    linked = link_github_repo(served, tenant, deliver)
    gh = served.github
    pull = gh.add_pull(linked.full_name, 9, [alice.message(c1)], shas=[c1])
    assert deliver(served, "pull_request", pr_event(linked, 9, "opened")).status_code == 202
    # Then the check run fails and lists both violations (the advisory one too)
    (run,) = eventually(
        lambda: [r for r in gh.check_runs_for(linked.full_name, pull.head_sha) if r.get("status") == "completed"],
        "the check run",
    )
    assert (run["name"], run["conclusion"]) == (CHECK_NAME, "failure")
    assert run["output"]["title"].startswith("1 AI session, 2 policy violations")
    summary = run["output"]["summary"]
    assert "approved-models" in summary and "claude-opus-4-6" in summary
    assert "token-budget" in summary


def test_the_org_gate_default_gates_attachments_that_do_not_say(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    tenant = new_tenant(served, "gatedef")
    # Given the organisation gates by default; the token budget does not say, the model rule opts out
    api(served, "PUT", "/v1/org/settings", tenant.admin, 200, json={"gate_default": True})
    contract = CONTRACT.replace("claude-sonnet-*\n        gate: true", "claude-sonnet-*\n        gate: false")
    contract = contract.replace("max_tokens: 100\n        gate: false\n", "max_tokens: 100\n")
    assert contract.count("gate:") == 1
    api(served, "PUT", "/v1/projects/web/contract", tenant.admin, 200, json={"contract": contract})
    remote = make_remote(tmp_path, {"README.md": "# app\n"})
    alice = Dev(tmp_path, "alice", remote)
    alice.login(served, tenant.user_token("alice@example.com"))
    assert alice.tracemark("init", "--project", "web", "--org", tenant.org).returncode == 0
    base = alice.commit("chore: trace AI sessions")
    assert alice.push().returncode == 0
    s1 = ClaudeSession(alice, "claude_transcript_write_create_and_bash.jsonl", model="claude-opus-4-6")
    s1.start()
    s1.write("src/a.py", "a = 1\n")
    s1.end()
    alice.commit("feat: a")
    # When she pushes a session over the budget on an unapproved model
    blocked = alice.push()
    # Then the push is blocked by the budget (gated by default), not by the opted-out model rule
    assert blocked.returncode != 0
    assert alice.remote_head() == base
    results = {r["policy"]: r for r in tenant.session(s1.id)["policy_results"]}
    assert (results["token-budget"]["status"], results["token-budget"]["gate"]) == ("fail", True)
    assert (results["approved-models"]["status"], results["approved-models"]["gate"]) == ("fail", False)
    assert "token-budget (gated): Session used 483 tokens, over the budget of 100" in blocked.stderr
    assert "approved-models: Model 'claude-opus-4-6' is not approved" in blocked.stderr
