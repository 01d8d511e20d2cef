"""The built-ins read the paths the Tracemark CLI writes: evidence from a real Claude transcript
(`tracemark sessions inspect --json`) through the built-in contract."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from policy_helpers import FIXTURES, run_builtin

from tracemark.main import main
from tracemark_common.policy import evaluate_session

TRANSCRIPT = FIXTURES / "claude" / "claude_transcript_write_create_and_bash.jsonl"


@pytest.fixture(scope="module")
def tracemark_evidence() -> dict[str, Any]:
    capture: dict[str, Any] = {}
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sessions", "inspect", str(TRANSCRIPT), "--json"]) == 0
    capture.update(json.loads(out.getvalue()))
    return capture


def test_builtin_contract_on_real_evidence(tracemark_evidence: dict[str, Any]) -> None:
    report = evaluate_session(None, {}, False, tracemark_evidence)
    statuses = {r["policy"]: r["status"] for r in report.results}
    assert statuses["no-dangerous-commands"] == "pass"  # it ran `rm <one file>`: read, not flagged
    assert statuses["no-secrets"] == "pass"  # redaction counts present and zero
    assert statuses["approved-models"] == "pass"
    assert statuses["agents-allowed"] == "pass"
    assert statuses["token-budget"] == "pass"
    assert statuses["cost-budget"] == "pass"
    assert report.gated is False


def test_redaction_counts_written_by_the_cli_are_read(tracemark_evidence: dict[str, Any]) -> None:
    envelope = copy.deepcopy(tracemark_evidence)
    envelope["tracemark"]["redaction"] = {"total": 1, "rules": {"github-pat": 1}}
    result = run_builtin("no-secrets", envelope)
    assert result["violations"] == [
        "1 secret(s) matching rule 'github-pat' were found in the session (redacted before upload)"
    ]


def test_shell_commands_written_by_the_cli_are_read(tracemark_evidence: dict[str, Any]) -> None:
    commands = tracemark_evidence["data"]["tools_used"]["tracemark_shell_commands"]
    assert commands  # the transcript ran Bash
    result = run_builtin("no-dangerous-commands", tracemark_evidence, forbidden_patterns=r"^rm\s")
    assert result["status"] == "fail"


@pytest.mark.parametrize("model", ["composer-2", "default"])
def test_builtin_contract_approves_the_models_cursor_hooks_report(
    tracemark_evidence: dict[str, Any], model: str
) -> None:
    # Real Cursor hook payloads (tests/fixtures/capture/cursor_hook_payloads.*) name the model
    # `composer-2`, or `default` in Auto mode: the advisory defaults must pass a typical Cursor session.
    evidence = copy.deepcopy(tracemark_evidence)
    evidence["data"]["agent"]["name"] = "cursor"
    evidence["data"]["model"] = {"models_used": [model], "primary": model}
    report = evaluate_session(None, {}, False, evidence)
    statuses = {r["policy"]: r["status"] for r in report.results}
    assert statuses["approved-models"] == "pass"
    assert statuses["agents-allowed"] == "pass"
