"""The Rego engine: Chainloop's defaults, the `result` object, and errors that never pass."""

from __future__ import annotations

from typing import Any

import pytest

from tracemark_common.errors import Unprocessable
from tracemark_common.policy.engine import CompiledPolicy, boilerplate, interpret, rego_safe

HEADER = "package main\n\nimport rego.v1\n\n"


def evaluate(body: str, document: dict[str, Any], package: str = "main") -> Any:
    return CompiledPolicy(HEADER.replace("main", package) + body, package).evaluate(document)


def test_defaults_only_violations_written() -> None:
    # Given a policy with neither valid_input nor result
    outcome = evaluate('violations contains "big" if input.n > 3\n', {"n": 5})
    assert (outcome.status, outcome.violations) == ("fail", ["big"])
    assert evaluate('violations contains "big" if input.n > 3\n', {"n": 1}).status == "pass"


def test_author_valid_input_without_default_skips_unrecognised_input() -> None:
    body = 'valid_input if input.data.usage\n\nviolations contains "x" if input.data.usage.total_tokens > 1\n'
    outcome = evaluate(body, {"data": {}})
    assert outcome.status == "skipped"
    assert outcome.reason == "the file content is not recognized"
    assert evaluate(body, {"data": {"usage": {"total_tokens": 2}}}).violations == ["x"]


def test_author_result_object_is_used_as_written() -> None:
    custom = 'result := {"skipped": true, "skip_reason": "not today", "violations": []}\n'
    assert (evaluate(custom, {}).status, evaluate(custom, {}).reason) == ("skipped", "not today")
    ignored = 'result := {"ignore": true, "violations": ["v"]}\n'
    assert evaluate(ignored, {}).status == "skipped"
    objects = 'result := {"violations": [{"message": "m1"}, {"violation": "m2"}, {"other": 1}], "skipped": false}\n'
    assert evaluate(objects, {}).violations == ["m1", "m2", '{"other": 1}']
    findings = 'result := {"violations": ["plain"], "findings": [{"message": "structured"}], "skipped": false}\n'
    assert evaluate(findings, {}).violations == ["structured"]


def test_other_packages_and_v0_syntax() -> None:
    policy = CompiledPolicy('package org.rules\n\nviolations[msg] {\n  input.x\n  msg := "v0"\n}\n', "org.rules")
    assert policy.evaluate({"x": True}).violations == ["v0"]


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ('result := "a string"\n', "invalid_result", "must be an object"),
        ('result := {"violations": "nope"}\n', "invalid_result", "must be a list"),
        ("result := x if { x := input.never }\n", "undefined_result", "is undefined"),
        ("result := 1\nresult := 2\n", "rego_error", "failed to evaluate"),
        ('violations contains msg if { msg := sprintf("%d", [input.n / 3]) }\n', "rego_error", "failed"),
        ('violations contains msg if { msg := concat("", [to_number("x")]) }\n', "rego_error", "failed"),
        ("result := nofunc(1)\n", "rego_error", "Function not found: nofunc"),
    ],
)
def test_errors_are_neutral_never_pass(body: str, reason: str, detail: str) -> None:
    outcome = evaluate(body, {"n": 10})
    assert outcome.status == "neutral"
    assert outcome.reason == reason
    assert detail in (outcome.detail or "")


def test_syntax_error_is_unprocessable() -> None:
    with pytest.raises(Unprocessable, match="does not compile: this is unclosed"):
        CompiledPolicy(HEADER + "violations contains x if {\n", "main")


def test_strings_with_quotes_backslashes_and_control_characters_survive() -> None:
    # Given evidence strings that regopy's Input would otherwise mangle
    command = "grep -E \"a\\|b\" C:\\temp\\x.txt\t&& echo 'done'\n"
    body = 'violations contains msg if { some c in input.cmds; startswith(c, "grep"); msg := sprintf("<%s>", [c]) }\n'
    outcome = evaluate(body, {"cmds": [command, "ls"]})
    assert outcome.violations == [f"<{command}>"]
    assert evaluate('violations contains "eq" if input.s == "a\\"b\\\\c"\n', {"s": 'a"b\\c'}).violations == ["eq"]


def test_violations_are_capped() -> None:
    outcome = evaluate('violations contains sprintf("v%v", [i]) if some i in numbers.range(1, 250)\n', {})
    assert len(outcome.violations) == 101
    assert outcome.violations[-1] == "… and 150 more violations"


def test_warm_interpreter_is_reused_across_inputs() -> None:
    policy = CompiledPolicy(HEADER + 'violations contains "big" if input.n > 3\n', "main")
    results = [policy.evaluate({"n": n}).status for n in (1, 5, 2, 9)]
    assert results == ["pass", "fail", "pass", "fail"]


def test_boilerplate_adds_only_missing_rules() -> None:
    extra = boilerplate(HEADER + "default valid_input := false\nviolations contains 1 if true\n", "main")
    assert extra is not None
    assert "default valid_input" not in extra
    assert "default violations" not in extra
    assert "result :=" in extra
    full = "result := {}\nskip_reason := 1\nvalid_input := 1\nskipped := 1\nignore := 1\nviolations := 1\n"
    assert boilerplate(full, "main") is None


def test_rego_safe_escapes_only_what_needs_it() -> None:
    assert rego_safe({"k": ["plain", 'q"', 1, None, {"a\\": True}]}) == {
        "k": ["plain", 'q\\"', 1, None, {"a\\\\": True}]
    }


def test_interpret_rejects_non_objects() -> None:
    assert interpret([1]).status == "neutral"
