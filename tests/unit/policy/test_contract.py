"""Contracts: refs, embedded policies, arguments, gates, and what is refused (with the reason)."""

from __future__ import annotations

import pytest

from tracemark_common.errors import Unprocessable
from tracemark_common.policy import builtin_contract, parse_contract

HEAD = "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata:\n  name: c\nspec:\n  policies:\n    materials:\n"


def contract(*attachments: str) -> str:
    return HEAD + "".join(attachments)


def test_refs_embedded_arguments_and_gates() -> None:
    text = contract(
        "      - ref: builtin:token-budget\n        with:\n          max_tokens: 1000\n        gate: true\n",
        "      - ref: policy:house-rules\n        gate: false\n",
        "      - embedded: |\n          package main\n          import rego.v1\n",
        '          violations contains "x" if false\n',
        "      - ref: builtin:signed-commits\n        disabled: true\n",
    )
    parsed = parse_contract(text, ["house-rules"])
    assert parsed.name == "c"
    assert [(a.ref, a.name, a.gate) for a in parsed.attachments] == [
        ("builtin:token-budget", "token-budget", True),
        ("policy:house-rules", "house-rules", False),
        ("embedded", "embedded-2", None),
    ]
    assert parsed.attachments[0].with_args == {"max_tokens": "1000"}
    assert parsed.attachments[0].gated(False) is True
    assert parsed.attachments[1].gated(True) is False  # gate: false opts out of the org default
    assert parsed.attachments[2].gated(True) is True


def test_tracemark_api_version_and_old_schema_version_are_accepted() -> None:
    ours = HEAD.replace("chainloop.dev/v1", "tracemark.dev/v1") + "      - ref: builtin:no-secrets\n"
    assert len(parse_contract(ours, []).attachments) == 1
    old = "schemaVersion: v1\npolicies:\n  materials:\n    - ref: builtin:no-secrets\n"
    assert [a.ref for a in parse_contract(old, []).attachments] == ["builtin:no-secrets"]


def test_embedded_policy_document() -> None:
    text = contract(
        "      - embedded:\n          apiVersion: chainloop.dev/v1\n          kind: Policy\n",
        "          metadata: {name: inline}\n          spec:\n            inputs: [{name: n}]\n",
        "            policies:\n              - kind: CHAINLOOP_AI_CODING_SESSION\n",
        "                embedded: 'package main'\n",
        "        with: {n: '2'}\n",
    )
    (attachment,) = parse_contract(text, []).attachments
    assert attachment.name == "inline"
    assert attachment.with_args == {"n": "2"}


def test_selector_for_another_material_leaves_the_attachment_out() -> None:
    text = (
        "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata: {name: c}\nspec:\n  materials:\n"
        "    - {type: CHAINLOOP_AI_CODING_SESSION, name: ai-session}\n    - {type: SBOM_SPDX_JSON, name: sbom}\n"
        "  policies:\n    materials:\n"
        "      - {ref: 'builtin:no-secrets', selector: {name: sbom}}\n"
        "      - {ref: 'builtin:token-budget', selector: {name: ai-session}}\n"
        "      - {ref: 'builtin:cost-budget', selector: {name: ai-, match_mode: PREFIX}}\n"
    )
    assert [a.name for a in parse_contract(text, []).attachments] == ["token-budget", "cost-budget"]


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        ("      - ref: https://example.com/p.yaml\n", "Tracemark fetches nothing"),
        ("      - ref: file:///etc/passwd\n", "Tracemark fetches nothing"),
        ("      - ref: ./policies/mine.rego\n", "Tracemark fetches nothing"),
        ("      - ref: token-budget\n", "Did you mean 'builtin:token-budget'?"),
        ("      - ref: house-rules\n", "Did you mean 'policy:house-rules'?"),
        ("      - ref: builtin:nope\n", "there is no built-in policy 'nope'"),
        ("      - ref: policy:nope\n", "the organisation has no policy 'nope'"),
        ("      - ref: builtin:token-budget\n        with: {budget: 1}\n", "has no input 'budget'"),
        ("      - ref: builtin:agents-allowed\n", "requires the input 'allowed_agents'"),
        ("      - ref: builtin:token-budget\n        gate: yes please\n", "gate must be true or false"),
        ("      - ref: builtin:token-budget\n        embedded: 'package main'\n", "exactly one of 'ref' or 'embedded'"),
        ("      - {}\n", "exactly one of 'ref' or 'embedded'"),
        ("      - ref: builtin:token-budget\n        colour: red\n", "unknown key(s) colour"),
        ("      - ref: 42\n", "ref must be 'builtin:<name>' or 'policy:<name>'"),
        ("      - just a string\n", "must be a mapping"),
    ],
)
def test_bad_attachments_are_refused_with_the_reason(attachment: str, message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_contract(contract(attachment), ["house-rules"])
    assert message in caught.value.message
    assert "spec.policies.materials[0]" in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the contract is empty"),
        ("apiVersion: v9\nkind: Contract\n", "apiVersion must be one of"),
        ("apiVersion: chainloop.dev/v1\nkind: Policy\n", "kind must be 'Contract'"),
        ("schemaVersion: v2\n", "schemaVersion must be 'v1'"),
        (HEAD.replace("    materials:\n", "    attestation:\n      - ref: builtin:no-secrets\n"), "attestation is not"),
        (HEAD + "      - ref: builtin:no-secrets\n" + "  policy_groups:\n    - ref: g\n", "policy_groups"),
        (HEAD.replace("materials:\n", "materials: nope\n"), "must be a list"),
        (HEAD + "".join("      - ref: builtin:no-secrets\n" for _ in range(51)), "the limit is 50"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_contracts_are_refused(text: str, message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_contract(text, [])
    assert message in caught.value.message


def test_embedded_rego_that_does_not_compile_is_refused() -> None:
    text = contract("      - embedded: |\n          package main\n          violations contains x if {\n")
    with pytest.raises(Unprocessable, match="does not compile") as caught:
        parse_contract(text, [])
    assert caught.value.code == "invalid_policy"


def test_embedded_rego_calling_an_unknown_function_is_refused() -> None:
    text = contract(
        "      - embedded: |\n          package main\n          import rego.v1\n          result := nofunc(1)\n"
    )
    with pytest.raises(Unprocessable, match="Function not found: nofunc"):
        parse_contract(text, [])


def test_builtin_contract_attaches_the_builtins_without_gates() -> None:
    parsed = builtin_contract()
    assert parsed.name == "ai-coding-session"
    assert {a.ref for a in parsed.attachments} >= {
        "builtin:agents-allowed",
        "builtin:approved-models",
        "builtin:no-dangerous-commands",
        "builtin:no-secrets",
        "builtin:signed-commits",
        "builtin:token-budget",
        "builtin:cost-budget",
    }
    assert all(a.gate is False and not a.gated(True) for a in parsed.attachments)


def test_deeply_nested_yaml_is_refused_cleanly() -> None:
    with pytest.raises(Unprocessable, match="not valid YAML"):
        parse_contract("a: " + "[" * 20000 + "]" * 20000 + "\n", [])


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(Unprocessable, match="keys must be strings"):
        parse_contract(HEAD + "      - {1: 2}\n", [])
