"""The seed's three policies (approved models, token budget, AI code ratio) run verbatim.

The files in tests/fixtures/policies/seed/ are used byte for byte, uploaded as org policies and
attached by the seed's contract, against Chainloop's example evidence and small variants of it.
docs/policies.md carries the same text (checked below)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from policy_helpers import SEED, load_evidence

from tracemark_common.policy import check_policy, evaluate_session, parse_contract

Variant = Callable[..., dict[str, Any]]
NAMES = ("approved-models", "token-budget", "ai-code-ratio")
DOCS = Path(__file__).resolve().parents[3] / "docs" / "policies.md"


@pytest.fixture(scope="module")
def seed_policies() -> dict[str, str]:
    return {name: (SEED / f"{name}.yaml").read_text(encoding="utf-8") for name in NAMES}


@pytest.fixture(scope="module")
def seed_contract() -> str:
    return (SEED / "contract.yaml").read_text(encoding="utf-8")


def outcome(report: Any) -> dict[str, tuple[str, list[str]]]:
    return {r["policy"]: (r["status"], r["violations"]) for r in report.results}


def test_seed_policies_and_contract_are_accepted_as_uploaded(seed_policies: dict[str, str], seed_contract: str) -> None:
    for text in seed_policies.values():
        check_policy(text)
    contract = parse_contract(seed_contract, seed_policies.keys())
    assert [(a.ref, a.gate) for a in contract.attachments] == [
        ("policy:approved-models", True),
        ("policy:token-budget", None),
        ("policy:ai-code-ratio", None),
    ]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "ai-coding-session.json",  # opus only, 3,052 tokens, no AI line counts
            {"approved-models": ("pass", []), "token-budget": ("pass", []), "ai-code-ratio": ("pass", [])},
        ),
        (
            "ai-coding-session-with-attribution.json",  # 8 of 11 lines by AI: 72.7 %
            {"approved-models": ("pass", []), "token-budget": ("pass", []), "ai-code-ratio": ("pass", [])},
        ),
        (
            "ai-coding-session-minimal.json",  # no model, no usage, no code changes
            {"approved-models": ("skipped", []), "token-budget": ("skipped", []), "ai-code-ratio": ("skipped", [])},
        ),
    ],
)
def test_chainloop_examples(
    seed_policies: dict[str, str], seed_contract: str, fixture: str, expected: dict[str, Any]
) -> None:
    report = evaluate_session(seed_contract, seed_policies, False, load_evidence(fixture))
    assert outcome(report) == expected
    assert report.gated is False


def test_violating_session_gives_the_expected_violations(
    seed_policies: dict[str, str], seed_contract: str, variant: Variant
) -> None:
    # Given a session with two unapproved models, 600,000 tokens and 90 % AI-added lines
    envelope = variant(
        data__model={"primary": "claude-opus-4-6", "models_used": ["claude-opus-4-6", "gpt-4o", "llama-3"]},
        data__usage__total_tokens=600000,
        data__code_changes__lines_added=10,
        data__code_changes__ai_lines_added=9,
    )
    # When the seed contract is evaluated
    report = evaluate_session(seed_contract, seed_policies, False, envelope)
    # Then each policy reports exactly its violation, and the gated one blocks the push
    assert outcome(report) == {
        "approved-models": ("fail", ["Model 'gpt-4o' is not approved.", "Model 'llama-3' is not approved."]),
        "token-budget": ("fail", ["Session used 600000 tokens, exceeding the budget of 500000"]),
        "ai-code-ratio": ("fail", ["AI-generated code ratio 90% exceeds the maximum of 80%"]),
    }
    assert report.gated is True


def test_boundaries_are_not_violations(seed_policies: dict[str, str], seed_contract: str, variant: Variant) -> None:
    envelope = variant(
        data__usage__total_tokens=500000, data__code_changes__lines_added=10, data__code_changes__ai_lines_added=8
    )
    report = evaluate_session(seed_contract, seed_policies, True, envelope)
    assert {status for status, _ in outcome(report).values()} == {"pass"}
    assert report.gated is False


def test_only_an_ungated_policy_failing_does_not_gate(
    seed_policies: dict[str, str], seed_contract: str, variant: Variant
) -> None:
    report = evaluate_session(seed_contract, seed_policies, False, variant(data__usage__total_tokens=10**7))
    assert outcome(report)["token-budget"][0] == "fail"
    assert report.gated is False
    # With the org's gate_default, the same failure blocks
    assert evaluate_session(seed_contract, seed_policies, True, variant(data__usage__total_tokens=10**7)).gated


def test_docs_carry_exact_copies(seed_policies: dict[str, str]) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for name, text in seed_policies.items():
        assert f"```yaml\n{text}```" in docs, f"docs/policies.md lacks the exact text of the seed policy {name}"
    assert (SEED / "contract.yaml").read_text(encoding="utf-8") in docs
