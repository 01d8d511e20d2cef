"""Evaluate one policy the way the server does, for the tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tracemark_common.policy import Attachment, Contract, evaluate_contract, parse_policy_text

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SEED = FIXTURES / "policies" / "seed"


def load_evidence(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / "chainloop" / name).read_text(encoding="utf-8"))
    return document


def with_changes(envelope: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `envelope` with dotted paths set (`data.usage.total_tokens`); None deletes."""
    result = copy.deepcopy(envelope)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return result


def run_builtin(name: str, envelope: Any, gate: bool | None = None, **args: str) -> dict[str, Any]:
    attachment = Attachment(ref=f"builtin:{name}", name=name, with_args=args, gate=gate)
    report = evaluate_contract(Contract(name="t", attachments=(attachment,)), {}, False, envelope)
    result: dict[str, Any] = report.results[0]
    return result


def run_rego(text: str, envelope: Any, timeout: float = 2.0, **args: str) -> dict[str, Any]:
    source = parse_policy_text(text, default_name="under-test")
    attachment = Attachment(ref="embedded", name=source.name, with_args=args, source=source)
    report = evaluate_contract(Contract(name="t", attachments=(attachment,)), {}, False, envelope, timeout=timeout)
    result: dict[str, Any] = report.results[0]
    return result
