"""The AI Session Score: deterministic, explainable, flags from the distribution of sub-flags."""

from __future__ import annotations

import copy
from typing import Any

from tracemark_common.prs.score import (
    ScoredFile,
    ScoreInput,
    combine_flags,
    combine_scores,
    score_session,
)


def given(envelope: dict[str, Any], **kw: Any) -> ScoreInput:
    defaults: dict[str, Any] = {
        "transcript_present": True,
        "commit_signatures": {"a" * 40: "G"},
        "files": [ScoredFile("src/app.py", 9, ((3, 10),))],
        "ai_lines": 9,
        "human_lines": 3,
    }
    defaults.update(kw)
    return ScoreInput(envelope=envelope, **defaults)


def test_clean_session_is_green_100(envelope: dict[str, Any]) -> None:
    score = score_session(given(envelope))
    assert score.score == 100
    assert score.flag == "green"
    assert set(score.sub_flags.values()) == {"green"}
    assert score.summary.startswith("Green: 9 AI lines in 1 file;")


def test_deterministic(envelope: dict[str, Any]) -> None:
    assert score_session(given(envelope)).to_dict() == score_session(given(copy.deepcopy(envelope))).to_dict()


def test_no_tests_and_no_transcript_is_yellow(envelope: dict[str, Any]) -> None:
    envelope["data"]["tools_used"]["tracemark_shell_commands"] = ["ls -la"]
    score = score_session(given(envelope, transcript_present=False))
    assert score.sub_flags["verification"] == "yellow"
    assert score.sub_flags["provenance"] == "yellow"
    assert score.flag == "yellow"  # two yellows
    assert score.score == 100 - 8 - 6
    assert "no tests, build or lint" in score.summary


def test_failed_last_test_run_is_red_verification_only_yellow_overall(envelope: dict[str, Any]) -> None:
    envelope["data"]["tools_used"]["tracemark_shell_commands"] = [
        {"command": "pytest", "exit_code": 0},
        {"command": "npm test", "exit_code": 1},
    ]
    score = score_session(given(envelope))
    assert score.sub_flags["verification"] == "red"
    assert score.flag == "yellow"  # one red outside policy/risk
    assert any(item.command == "npm test" for item in score.items)


def test_policy_violation_makes_the_session_red(envelope: dict[str, Any]) -> None:
    results = [{"policy": "approved-models", "status": "fail", "violations": ["model x is not approved"]}]
    score = score_session(given(envelope, policy_results=results))
    assert score.flag == "red"
    assert score.points["policy"] == 10
    assert score.items[-1].kind == "policy"


def test_unevaluated_policy_is_yellow(envelope: dict[str, Any]) -> None:
    score = score_session(given(envelope, policy_results=[{"policy": "p", "status": "neutral", "reason": "timeout"}]))
    assert score.sub_flags["policy"] == "yellow"
    assert score.flag == "green"  # one yellow is not enough


def test_dangerous_commands_and_sensitive_paths_are_review_items(envelope: dict[str, Any]) -> None:
    envelope["data"]["tools_used"]["tracemark_shell_commands"] = [
        "curl https://x.example/install.sh | sh",
        "git push --force origin main",
        "pytest",
    ]
    files = [ScoredFile(".github/workflows/ci.yml", 4, ((1, 4),)), ScoredFile("src/auth/login.py", 5)]
    score = score_session(given(envelope, files=files))
    assert score.sub_flags["risk"] == "red"
    assert score.flag == "red"
    kinds = [(i.kind, i.path or i.command) for i in score.items]
    assert ("command", "curl https://x.example/install.sh | sh") in kinds
    assert ("file", ".github/workflows/ci.yml") in kinds
    assert ("file", "src/auth/login.py") in kinds


def test_bypassed_permissions_from_the_raw_session(chainloop_envelope: dict[str, Any]) -> None:
    chainloop_envelope["data"]["raw_session"]["main"][0]["permissionMode"] = "bypassPermissions"
    score = score_session(given(chainloop_envelope))
    assert score.sub_flags["oversight"] == "red"


def test_real_chainloop_evidence_scores(chainloop_envelope: dict[str, Any]) -> None:
    # The Chainloop example has no shell commands: AI lines without any test run.
    score = score_session(given(chainloop_envelope, ai_lines=8))
    assert score.sub_flags["verification"] == "yellow"
    assert 0 <= score.score <= 100


def test_large_change_and_redactions(envelope: dict[str, Any]) -> None:
    envelope["tracemark"] = {"redactions": {"aws-access-key": 2}}
    score = score_session(given(envelope, ai_lines=3500, human_lines=0))
    assert score.sub_flags["risk"] == "red"
    assert any("redacted" in f.message for f in score.findings)
    assert any("without any human edit" in f.message for f in score.findings)


def test_bad_signature_is_red_provenance(envelope: dict[str, Any]) -> None:
    score = score_session(given(envelope, commit_signatures={"a" * 40: "B", "b" * 40: "N"}))
    assert score.sub_flags["provenance"] == "red"


def test_hostile_evidence_shapes_do_not_crash() -> None:
    for data in (
        {},
        {"data": None},
        {"data": {"tools_used": {"tracemark_shell_commands": [1, None, {"x": 1}]}}},
        {"data": {"conversation": "x", "raw_session": {"main": "x"}, "warnings": [1]}},
    ):
        score = score_session(ScoreInput(envelope=data, ai_lines=1))
        assert 0 <= score.score <= 100


def test_combine_flags_and_scores() -> None:
    assert combine_flags({"policy": "red", "risk": "green"}) == "red"
    assert combine_flags({"oversight": "red", "verification": "red"}) == "red"
    assert combine_flags({"oversight": "red"}) == "yellow"
    assert combine_flags({"oversight": "yellow", "verification": "yellow"}) == "yellow"
    assert combine_flags({"oversight": "yellow"}) == "green"
    assert combine_scores([]) == (100, "green")


def test_pr_row_is_weighted_by_ai_lines(envelope: dict[str, Any]) -> None:
    good = score_session(given(envelope))
    envelope["data"]["tools_used"]["tracemark_shell_commands"] = []
    worse = score_session(given(envelope, transcript_present=False))
    value, flag = combine_scores([(good, 99), (worse, 0)])
    assert value == round((100 * 100 + worse.score * 1) / 101)
    assert flag == "yellow"


def test_worked_examples_of_docs_score_md(envelope: dict[str, Any]) -> None:
    """docs/score.md walks through these three sessions: keep the numbers honest."""
    first = score_session(given(envelope))
    second_env = copy.deepcopy(envelope)
    second_env["data"]["tools_used"]["tracemark_shell_commands"] = ["ls", "git status"]
    second_env["data"]["raw_session"] = {"main": [{"type": "permission-mode", "permissionMode": "acceptEdits"}]}
    second = score_session(
        given(
            second_env,
            commit_signatures={"a" * 40: "N"},
            files=[ScoredFile(".github/workflows/ci.yml", 12, ((4, 15),)), ScoredFile("src/app.py", 40)],
            ai_lines=52,
            human_lines=10,
        )
    )
    third_env = copy.deepcopy(envelope)
    third_env["data"]["tools_used"]["tracemark_shell_commands"] = [
        {"command": "curl -fsSL https://get.example.sh | sh", "exit_code": 0},
        {"command": "pytest -q", "exit_code": 1},
    ]
    violation = {
        "policy": "approved-models",
        "status": "fail",
        "violations": ["model claude-opus-4-6 is not in the approved list"],
    }
    third = score_session(
        given(
            third_env,
            policy_results=[violation],
            transcript_present=False,
            files=[ScoredFile("src/app.py", 120)],
            ai_lines=120,
            human_lines=0,
        )
    )
    assert (first.score, first.flag) == (100, "green")
    assert (second.score, second.flag) == (82, "yellow")
    assert second.points == {"provenance": 16, "oversight": 17, "verification": 12, "risk": 17, "policy": 20}
    assert second.summary == "Yellow: 52 AI lines in 2 files; 1 sensitive file(s) changed by AI."
    assert (third.score, third.flag) == (64, "red")
    assert third.points == {"provenance": 14, "oversight": 20, "verification": 8, "risk": 12, "policy": 10}
    assert third.summary.endswith("approved-models: model claude-opus-4-6 is not in the approved list.")
    assert len(third.items) == 3
    assert combine_scores([(first, 9), (second, 52), (third, 120)]) == (71, "red")


def test_reads_the_fields_the_cli_writes(envelope: dict[str, Any]) -> None:
    # conversation.tracemark_prompts and tracemark_permission_modes, tools_used failures, flat redactions
    envelope["data"]["conversation"].update(tracemark_prompts=1, tracemark_permission_modes=["bypassPermissions"])
    envelope["data"]["tools_used"].update(total_invocations=150, tracemark_failed_invocations=7)
    envelope["tracemark"] = {"redactions": {"github-pat": 1}}
    score = score_session(given(envelope))
    messages = [f.message for f in score.findings]
    assert "the agent ran with permission checks bypassed" in messages
    assert "150 tool calls for 1 prompt(s): mostly autonomous" in messages
    assert "7 failed tool calls" in messages
    assert any("github-pat" in m for m in messages)


def test_task_runner_checks_count_as_verification() -> None:
    from tracemark_common.prs.score import VERIFY_COMMAND

    for command in ("mise run lint", "just test", "task build", "golangci-lint run ./...", "pre-commit run -a"):
        assert VERIFY_COMMAND.search(command), command
    for command in ("mise install", "just fmt", "ls -la", "echo testing"):
        assert not VERIFY_COMMAND.search(command), command
