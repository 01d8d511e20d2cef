"""evaluate_session: the contract, gates, input shaping, size limit, and the sandbox for org policies."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tracemark_common.policy import MAX_INPUT_BYTES, evaluate_session, rego_input
from tracemark_common.policy.sandbox import Sandbox

Variant = Callable[..., dict[str, Any]]

HEAD = "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata:\n  name: c\nspec:\n  policies:\n    materials:\n"
ALWAYS = 'package main\nimport rego.v1\nviolations contains "always" if true\n'
LOOP = "package main\nimport rego.v1\nviolations contains x if { some x in numbers.range(1, 1000000000); x < 0 }\n"


def by_name(report: Any) -> dict[str, dict[str, Any]]:
    return {result["policy"]: result for result in report.results}


def test_no_contract_applies_the_builtin_contract(evidence: dict[str, Any]) -> None:
    report = evaluate_session(None, {}, True, evidence)
    results = by_name(report)
    assert results["token-budget"]["status"] == "pass"
    assert results["approved-models"]["status"] == "pass"
    assert results["signed-commits"]["status"] == "skipped"
    assert all(result["gate"] is False for result in report.results)  # never gated, whatever the org default
    assert report.gated is False


def test_gates_per_attachment_and_org_default(evidence: dict[str, Any]) -> None:
    contract = HEAD + (
        "      - ref: policy:always\n"
        "      - ref: policy:always\n        gate: false\n"
        "      - ref: builtin:token-budget\n        with: {max_tokens: 10}\n        gate: true\n"
    )
    # Given an org without gate_default: only the explicit gate counts
    report = evaluate_session(contract, {"always": ALWAYS}, False, evidence)
    assert [r["gate"] for r in report.results] == [False, False, True]
    assert [r["status"] for r in report.results] == ["fail", "fail", "fail"]
    assert report.gated is True
    # With gate_default: the first attachment is gated too, the opted-out one is not
    report = evaluate_session(contract, {"always": ALWAYS}, True, evidence)
    assert [r["gate"] for r in report.results] == [True, False, True]


def test_passing_gated_policy_does_not_gate(evidence: dict[str, Any]) -> None:
    contract = HEAD + "      - ref: builtin:token-budget\n        gate: true\n"
    report = evaluate_session(contract, {}, True, evidence)
    assert report.results[0]["status"] == "pass"
    assert report.gated is False


def test_input_is_the_envelope_without_raw_session_plus_args(evidence: dict[str, Any]) -> None:
    probe = (
        "package main\nimport rego.v1\n"
        'violations contains "raw transcript visible" if input.data.raw_session\n'
        'violations contains "no evidence id" if not input["chainloop.material.evidence.id"]\n'
        'violations contains sprintf("args %v", [input.args.level]) if input.args.level\n'
    )
    contract = HEAD + "      - ref: policy:probe\n        with: {level: 7}\n"
    assert evidence["data"]["raw_session"]
    result = evaluate_session(contract, {"probe": probe}, False, evidence).results[0]
    assert result["violations"] == ["args 7"]
    assert "raw_session" in evidence["data"]  # the caller's envelope is untouched
    assert "raw_session" not in rego_input(evidence)["data"]


def test_input_above_one_megabyte_is_neutral(variant: Variant) -> None:
    big = variant(data__warnings=["w" * 1000] * (MAX_INPUT_BYTES // 1000 + 1))
    report = evaluate_session(HEAD + "      - ref: builtin:token-budget\n        gate: true\n", {}, True, big)
    assert report.results[0]["status"] == "neutral"
    assert report.results[0]["reason"] == "input_too_large"
    assert report.gated is False


def test_large_raw_transcript_does_not_count_against_the_limit(variant: Variant) -> None:
    envelope = variant(data__raw_session={"main": [{"text": "x" * 1000}] * 2000})
    report = evaluate_session(HEAD + "      - ref: builtin:token-budget\n", {}, False, envelope)
    assert report.results[0]["status"] == "pass"


def test_looping_org_policy_times_out_as_neutral(evidence: dict[str, Any]) -> None:
    # Given an org policy that never finishes, followed by one that works
    contract = HEAD + "      - ref: policy:loop\n        gate: true\n      - ref: policy:always\n"
    report = evaluate_session(contract, {"loop": LOOP, "always": ALWAYS}, False, evidence)
    loop, always = report.results
    assert (loop["status"], loop["reason"]) == ("neutral", "timeout")
    assert "2 s" in loop["detail"]
    assert always["status"] == "fail"  # a fresh worker ran the next policy
    assert report.gated is False


def test_org_policy_errors_are_neutral(evidence: dict[str, Any]) -> None:
    contract = HEAD + "".join(f"      - ref: policy:{name}\n" for name in ("broken", "undefined", "gone"))
    policies = {
        "broken": "package main\nimport rego.v1\nresult := 1\nresult := 2\n",
        "undefined": "package main\nimport rego.v1\nresult := x if { x := input.nothing }\n",
        "gone": ALWAYS,
    }
    # `gone` was valid when the contract was stored, then deleted
    policies["gone"] = "not rego"
    report = evaluate_session(contract, policies, False, evidence)
    reasons = [(r["status"], r.get("reason")) for r in report.results]
    assert reasons == [("neutral", "rego_error"), ("neutral", "undefined_result"), ("neutral", "invalid_policy")]


def test_deleted_org_policy_is_neutral(evidence: dict[str, Any]) -> None:
    from tracemark_common.policy import Attachment, Contract, evaluate_contract

    contract = Contract(name="c", attachments=(Attachment(ref="policy:gone", name="gone"),))
    result = evaluate_contract(contract, {}, False, evidence).results[0]
    assert (result["status"], result["reason"]) == ("neutral", "policy_not_found")


def test_stored_contract_that_no_longer_parses_is_one_neutral_result(evidence: dict[str, Any]) -> None:
    # The contract names an org policy that has since been deleted
    report = evaluate_session(HEAD + "      - ref: policy:gone\n", {}, True, evidence)
    assert len(report.results) == 1
    assert report.results[0]["reason"] == "invalid_contract"
    assert "no policy 'gone'" in report.results[0]["detail"]
    assert report.gated is False


def test_org_policy_missing_required_argument_is_neutral(evidence: dict[str, Any]) -> None:
    policy = (
        "apiVersion: chainloop.dev/v1\nkind: Policy\nmetadata: {name: needs}\n"
        "spec:\n  inputs: [{name: n, required: true}]\n"
        "  policies:\n    - kind: CHAINLOOP_AI_CODING_SESSION\n      embedded: 'package main'\n"
    )
    result = evaluate_session(HEAD + "      - ref: policy:needs\n", {"needs": policy}, False, evidence).results[0]
    assert (result["status"], result["reason"]) == ("neutral", "invalid_arguments")


def test_org_policies_cannot_read_the_servers_environment(
    evidence: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given credentials in the server's environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    spy = 'package main\nimport rego.v1\nviolations contains sprintf("%v", [k]) if { some k, _ in opa.runtime().env }\n'
    result = evaluate_session(HEAD + "      - ref: policy:spy\n", {"spy": spy}, False, evidence).results[0]
    assert "AWS_SECRET_ACCESS_KEY" in os.environ
    assert not any("AWS" in violation for violation in result["violations"])
    assert "do-not-leak" not in str(result)


def deeply_nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    root = {"data": {"tools_used": node}}
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return root


@pytest.mark.parametrize(
    ("envelope", "status", "reason"),
    [
        ([1, 2], "neutral", "invalid_input"),
        ("text", "neutral", "invalid_input"),
        ({"chainloop.material.evidence.id": "SBOM_CYCLONEDX_JSON", "data": {}}, "skipped", "not a CHAINLOOP"),
        (deeply_nested(5000), "neutral", "invalid_input"),
    ],
    ids=["list", "string", "other-material", "deep"],
)
def test_input_that_is_not_session_evidence(envelope: Any, status: str, reason: str) -> None:
    result = evaluate_session(HEAD + "      - ref: builtin:token-budget\n", {}, False, envelope).results[0]
    assert result["status"] == status
    assert reason in result["reason"]


def test_sandbox_survives_a_crashing_worker() -> None:
    # A regex over a very long subject overflows the engine's stack: the worker dies, not us
    crash = 'package main\nimport rego.v1\nviolations contains "m" if regex.match(`a[^|]*b`, input.s)\n'
    with Sandbox() as sandbox:
        first = sandbox.evaluate(crash.replace("main", "main", 1), "main", {"s": "a" + "x" * 300_000})
        second = sandbox.evaluate(ALWAYS, "main", {})
    assert first.status == "neutral"
    assert first.reason in {"engine_error", "timeout"}
    assert second.violations == ["always"]


@pytest.mark.parametrize("executable", ["/nonexistent/python", "/bin/false"])
def test_sandbox_that_cannot_start_is_engine_unavailable(
    evidence: dict[str, Any], monkeypatch: pytest.MonkeyPatch, executable: str
) -> None:
    import sys

    monkeypatch.setattr(sys, "executable", executable)
    contract = HEAD + "      - ref: policy:always\n      - ref: builtin:token-budget\n      - ref: policy:always\n"
    report = evaluate_session(contract, {"always": ALWAYS}, True, evidence)
    assert [(r["status"], r.get("reason")) for r in report.results] == [
        ("neutral", "engine_unavailable"),
        ("pass", None),  # built-ins do not need the worker
        ("neutral", "engine_unavailable"),
    ]
    assert report.gated is False


def test_report_size_is_bounded(evidence: dict[str, Any]) -> None:
    # Given 30 org policies each producing 100 violations of 1,000 characters
    noisy = (
        "package main\nimport rego.v1\n"
        'violations contains sprintf("%v:%v", [i, input.data.warnings[0]]) if some i in numbers.range(1, 100)\n'
    )
    evidence = {**evidence, "data": {**evidence["data"], "warnings": ["x" * 1200]}}
    contract = HEAD + "".join("      - ref: policy:noisy\n" for _ in range(30))
    report = evaluate_session(contract, {"noisy": noisy}, False, evidence)
    total = sum(len(v) for r in report.results for v in r["violations"])
    assert total < 70 * 1024
    assert all(r["status"] == "fail" for r in report.results)  # still failing, just summarised
    assert report.results[-1]["violations"][-1].endswith("more violations (report size limit)")


def test_sandboxed_policies_share_a_time_budget_per_session(evidence: dict[str, Any]) -> None:
    from tracemark_common.policy import evaluate_contract
    from tracemark_common.policy.contract import parse_contract_structure

    # Given three looping org policies and a budget that fits about one of them
    contract = parse_contract_structure(
        HEAD + "      - ref: policy:loop\n" * 3 + "      - ref: builtin:token-budget\n", ["loop"]
    )
    report = evaluate_contract(contract, {"loop": LOOP}, False, evidence, timeout=0.5, budget=0.8)
    assert [r["reason"] for r in report.results[:3]] == ["timeout", "timeout", "timeout"]
    assert "time budget" in report.results[2]["detail"]
    assert report.results[3]["status"] == "pass"  # built-ins are not part of the budget
