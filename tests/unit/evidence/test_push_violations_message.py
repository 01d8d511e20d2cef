"""The message of a push blocked by a gated policy names the gating policies first."""

from __future__ import annotations

from tracemark.push import _violations


def test_gated_violations_come_first_and_are_marked() -> None:
    body = {
        "gated": True,
        "policy_results": [
            {"policy": "approved-models", "status": "fail", "gate": False, "violations": ["Model 'x' is not approved"]},
            {"policy": "token-budget", "status": "fail", "gate": True, "violations": ["Session used 483 tokens"]},
            {"policy": "no-secrets", "status": "pass", "gate": True, "violations": []},
        ],
    }
    assert _violations(body) == (
        "token-budget (gated): Session used 483 tokens; approved-models: Model 'x' is not approved"
    )


def test_results_without_gate_or_violations_keep_the_old_shape() -> None:
    body = {"policy_results": [{"name": "token-budget", "violations": [{"message": "too many tokens"}]}]}
    assert _violations(body) == "token-budget: too many tokens"
    assert _violations({}) == "policy violation (see the session page)"
