"""Policy documents: Policy YAML, raw Rego with METADATA inputs, `with:` arguments, hostile YAML."""

from __future__ import annotations

import pytest

from tracemark_common.errors import Unprocessable
from tracemark_common.policy.documents import (
    MAX_DOCUMENT_BYTES,
    check_arguments,
    compute_arguments,
    load_yaml,
    parse_policy_text,
)

REGO = 'package main\n\nimport rego.v1\n\nviolations contains "x" if input.data.bad\n'

POLICY_YAML = """\
apiVersion: workflowcontract.chainloop.dev/v1
kind: Policy
metadata:
  name: max-files
  description: not too many files
spec:
  inputs:
    - name: limit
      required: true
    - name: mode
      default: strict
  policies:
    - kind: CHAINLOOP_AI_CODING_SESSION
      embedded: |
        package files
        import rego.v1
        violations contains "too many" if count(input.data.code_changes.files) > to_number(input.args.limit)
"""


def test_policy_yaml_gives_name_package_and_inputs() -> None:
    source = parse_policy_text(POLICY_YAML)
    assert source.name == "max-files"
    assert source.package == "files"
    assert source.description == "not too many files"
    assert [(i.name, i.required, i.default) for i in source.inputs] == [
        ("limit", True, None),
        ("mode", False, "strict"),
    ]
    assert source.declares_inputs


@pytest.mark.parametrize("api_version", ["chainloop.dev/v1", "tracemark.dev/v1", "workflowcontract.chainloop.dev/v1"])
def test_every_api_version_is_accepted(api_version: str) -> None:
    text = POLICY_YAML.replace("workflowcontract.chainloop.dev/v1", api_version)
    assert parse_policy_text(text).name == "max-files"


def test_raw_rego_uses_metadata_inputs() -> None:
    text = (
        "# METADATA\n# title: t\n# description: checks things\n# custom:\n#   name: my-check\n#   inputs:\n"
        "#     - name: level\n#       default: '3'\npackage a.b\nimport rego.v1\n"
    )
    source = parse_policy_text(text)
    assert (source.name, source.package, source.description) == ("my-check", "a.b", "checks things")
    assert compute_arguments(source, {}) == {"level": "3"}


def test_raw_rego_without_declarations_passes_arguments_through() -> None:
    source = parse_policy_text(REGO, default_name="mine")
    assert source.name == "mine"
    assert not source.declares_inputs
    check_arguments(source, {"anything": "1"}, "here")  # no error
    assert compute_arguments(source, {"anything": "a, b,,c", "one": " x "}) == {"anything": ["a", "b", "c"], "one": "x"}


def test_arguments_follow_chainloop_multivalue_rules() -> None:
    source = parse_policy_text(POLICY_YAML)
    assert compute_arguments(source, {"limit": "3"}) == {"limit": "3", "mode": "strict"}
    assert compute_arguments(source, {"limit": "3", "mode": "a\nb"}) == {"limit": "3", "mode": ["a", "b"]}


@pytest.mark.parametrize(
    ("with_args", "message"),
    [
        ({"limit": "1", "colour": "red"}, "has no input 'colour' (declared: limit, mode)"),
        ({}, "requires the input 'limit'"),
        ({"limit": "  "}, "requires the input 'limit'"),
    ],
)
def test_arguments_are_checked_against_declared_inputs(with_args: dict[str, str], message: str) -> None:
    with pytest.raises(Unprocessable, match="max-files") as caught:
        check_arguments(parse_policy_text(POLICY_YAML), with_args, "spec.policies.materials[0]")
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("   \n", "is empty"),
        ("kind: Policy\n", "apiVersion must be one of"),
        (POLICY_YAML.replace("kind: Policy", "kind: Contract"), "kind must be 'Policy'"),
        (POLICY_YAML.replace("name: max-files", "name: Max_Files"), "metadata.name must be a lowercase name"),
        (POLICY_YAML.replace("kind: CHAINLOOP_AI_CODING_SESSION", "kind: SBOM_SPDX_JSON"), "no script for material"),
        (POLICY_YAML.replace("embedded: |", "ref: https://evil.example/p.rego\n      embedded: |"), "fetches nothing"),
        (POLICY_YAML.replace("package files", "pkg files"), "no `package` declaration"),
        (
            POLICY_YAML.replace("required: true", "required: true\n      default: '1'"),
            "both required and have a default",
        ),
        (POLICY_YAML.replace("name: mode", "name: 9mode"), "name must match"),
        (POLICY_YAML.replace("name: mode", "name: limit"), "declared twice"),
        ("apiVersion: [unclosed\n", "not valid YAML at line"),
        ("- just\n- a list\n", "neither Rego (no `package` declaration) nor a Policy"),
        ("package main\x00\n", "NUL"),
    ],
)
def test_bad_policies_get_precise_messages(text: str, message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_policy_text(text)
    assert message in caught.value.message


def test_yaml_aliases_are_refused() -> None:
    # Given a billion-laughs document
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n' + "c: [*b,*b,*b,*b]\n"
    with pytest.raises(Unprocessable, match="aliases"):
        load_yaml(bomb, "the contract")


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(Unprocessable, match="duplicate key 'kind' at line 2"):
        load_yaml("kind: Policy\nkind: Contract\n", "the policy")


def test_oversize_documents_are_refused() -> None:
    with pytest.raises(Unprocessable, match="larger than"):
        parse_policy_text("package main\n#" + "x" * MAX_DOCUMENT_BYTES)
    with pytest.raises(Unprocessable, match="larger than"):
        load_yaml("a: " + "x" * MAX_DOCUMENT_BYTES, "the contract")


def test_yaml_numbers_in_with_become_strings() -> None:
    from tracemark_common.policy.documents import normalise_with

    assert normalise_with({"max": 500000, "on": True, "list": ["a", 2]}, "with") == {
        "max": "500000",
        "on": "true",
        "list": "a,2",
    }
    with pytest.raises(Unprocessable, match=r"with\.nested must be a string"):
        normalise_with({"nested": {"a": 1}}, "with")
