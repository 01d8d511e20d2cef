"""Evaluate a session's evidence against a contract (SPEC §3.3).

Rego `input` = the evidence envelope without raw transcript data (`data.raw_session` dropped),
plus `input.args`. Built-ins run in-process on warm interpreters; org policies (`policy:` refs
and `embedded:`) run in the sandbox with a 2-second limit. Every failure of the machinery is a
`neutral` result with a `reason`; nothing here raises for a bad policy or a bad input.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracemark_common.errors import TracemarkError, Unavailable, Unprocessable
from tracemark_common.policy import builtins
from tracemark_common.policy.contract import Attachment, Contract, parse_contract_structure
from tracemark_common.policy.documents import MATERIAL_KIND, PolicySource, compute_arguments, parse_policy_text
from tracemark_common.policy.engine import INSTALL_HINT, EngineUnavailable, Outcome, neutral
from tracemark_common.policy.sandbox import POLICY_TIMEOUT_SECONDS, Sandbox

MAX_INPUT_BYTES = 1024 * 1024
MAX_INPUT_DEPTH = 64
SESSION_SANDBOX_BUDGET_SECONDS = 10.0  # all sandboxed policies of one session (API Gateway waits 30 s)
MAX_REPORT_VIOLATION_CHARS = 64 * 1024  # the report is stored with the session (DynamoDB items: 400 KB)
EVIDENCE_ID_KEY = "chainloop.material.evidence.id"


@dataclass
class PolicyReport:
    """Results in contract order, and whether a gated attachment failed."""

    results: list[dict[str, Any]] = field(default_factory=list)
    gated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"results": self.results, "gated": self.gated}

    @property
    def violated(self) -> bool:
        return any(result["status"] == "fail" for result in self.results)

    @property
    def errored(self) -> bool:
        return any(result["status"] == "neutral" for result in self.results)


def _require_engine() -> None:
    if importlib.util.find_spec("regopy") is None:
        raise Unavailable(INSTALL_HINT, code="policy_engine_unavailable")


def rego_input(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope as Rego sees it: JSON-clean, without `data.raw_session`, without `args` yet."""
    document = {key: value for key, value in envelope.items() if key != "args"}
    data = document.get("data")
    if isinstance(data, Mapping):
        document["data"] = {key: value for key, value in data.items() if key != "raw_session"}
    _check_depth(document)
    clean = json.loads(json.dumps(document, default=str))
    if not isinstance(clean, dict):  # pragma: no cover - a Mapping always dumps to an object
        raise TypeError("the envelope must be an object")
    return clean


def _check_depth(document: Any) -> None:
    """Iteratively: deeply nested input would exhaust the recursion of json, Input and the engine."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_INPUT_DEPTH:
            raise ValueError(f"the evidence is nested deeper than {MAX_INPUT_DEPTH} levels")
        if isinstance(node, Mapping):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, Mapping | list))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, Mapping | list))


def check_policy(text: str) -> None:
    """Validate an org policy (Policy YAML or raw Rego) and compile it in the sandbox.

    Raises `Unprocessable` (bad document, Rego that does not compile or loops on an empty input)
    or `Unavailable` (no Rego engine installed)."""
    source = parse_policy_text(text, where="the policy")
    _compile_check([source])


def _compile_check(sources: list[PolicySource]) -> None:
    if not sources:
        return
    _require_engine()
    with Sandbox() as sandbox:
        for source in sources:
            problem = sandbox.check(source.rego, source.package)
            if problem is not None:
                if sandbox.unavailable is not None:
                    raise Unavailable(sandbox.unavailable, code="policy_engine_unavailable")
                raise Unprocessable(f"policy {source.name!r}: {problem}", code="invalid_policy")


def parse_contract(yaml_text: str, org_policy_names: Collection[str]) -> Contract:
    """Parse and validate a contract; embedded Rego is compiled. Raises `Unprocessable`."""
    contract = parse_contract_structure(yaml_text, org_policy_names)
    _compile_check([a.source for a in contract.attachments if a.source is not None])
    return contract


def builtin_contract() -> Contract:
    return parse_contract_structure(builtins.builtin_contract_text(), ())


def _result(attachment: Attachment, gate: bool, outcome: Outcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "policy": attachment.name,
        "ref": attachment.ref,
        "status": outcome.status,
        "violations": list(outcome.violations),
        "gate": gate,
    }
    if outcome.status in {"neutral", "skipped"}:
        result["reason"] = outcome.reason or outcome.status
    if outcome.detail:
        result["detail"] = outcome.detail
    return result


def _resolve(attachment: Attachment, org_policies: Mapping[str, str]) -> PolicySource:
    if attachment.source is not None:
        return attachment.source
    if attachment.kind == "builtin":
        return builtins.get_builtin(attachment.target)
    text = org_policies.get(attachment.target)
    if text is None:
        raise LookupError(f"the organisation's policy {attachment.target!r} no longer exists")
    return parse_policy_text(text, where=f"policy:{attachment.target}", default_name=attachment.target)


def _run_one(
    attachment: Attachment,
    org_policies: Mapping[str, str],
    base: dict[str, Any],
    base_size: int,
    sandbox: Sandbox,
    *,
    deadline: float,
) -> Outcome:
    try:
        source = _resolve(attachment, org_policies)
    except LookupError as exc:
        return neutral("policy_not_found", str(exc))
    except Unprocessable as exc:
        return neutral("invalid_policy", exc.message)
    try:
        args = compute_arguments(source, attachment.with_args)
    except Unprocessable as exc:
        return neutral("invalid_arguments", exc.message)
    args_size = len(json.dumps(args))
    if base_size + args_size > MAX_INPUT_BYTES:
        return neutral("input_too_large", f"the policy input is larger than {MAX_INPUT_BYTES // 1024} KiB")
    document = {**base, "args": args}
    in_process = attachment.kind == "builtin" and not (
        builtins.sandbox_inputs(attachment.target) & set(attachment.with_args)
    )
    if in_process:
        try:
            return builtins.compiled(attachment.target).evaluate(document)
        except EngineUnavailable as exc:
            return neutral("engine_unavailable", str(exc))
    if time.monotonic() + sandbox.timeout > deadline:
        return neutral("timeout", "the session's time budget for sandboxed policies is spent")
    return sandbox.evaluate(source.rego, source.package, document)


def evaluate_contract(
    contract: Contract,
    org_policies: Mapping[str, str],
    gate_default: bool,
    envelope: Any,
    *,
    timeout: float = POLICY_TIMEOUT_SECONDS,
    budget: float = SESSION_SANDBOX_BUDGET_SECONDS,
) -> PolicyReport:
    """Evaluate every attachment of a parsed contract; see `evaluate_session`."""
    report = PolicyReport()
    if not isinstance(envelope, Mapping):
        outcome: Outcome | None = neutral("invalid_input", "the evidence is not a JSON object")
    elif envelope.get(EVIDENCE_ID_KEY, MATERIAL_KIND) != MATERIAL_KIND:
        outcome = Outcome(status="skipped", reason=f"the input is not a {MATERIAL_KIND} evidence")
    else:
        outcome = None
    if outcome is not None:
        for attachment in contract.attachments:
            report.results.append(_result(attachment, attachment.gated(gate_default), outcome))
        return report
    assert isinstance(envelope, Mapping)
    try:
        base = rego_input(envelope)
    except (ValueError, TypeError, RecursionError) as exc:
        invalid = neutral("invalid_input", str(exc) or "the evidence cannot be converted to Rego input")
        for attachment in contract.attachments:
            report.results.append(_result(attachment, attachment.gated(gate_default), invalid))
        return report
    base_size = len(json.dumps(base, separators=(",", ":")))
    deadline = time.monotonic() + max(budget, timeout)
    with Sandbox(timeout=timeout) as sandbox:
        for attachment in contract.attachments:
            gate = attachment.gated(gate_default)
            outcome = _run_one(attachment, org_policies, base, base_size, sandbox, deadline=deadline)
            result = _result(attachment, gate, outcome)
            report.results.append(result)
    report.gated = any(result["gate"] and result["status"] == "fail" for result in report.results)
    _bound_report(report)
    return report


def _bound_report(report: PolicyReport) -> None:
    """Keep the stored report small: past a total budget, violations are counted, not kept."""
    budget = MAX_REPORT_VIOLATION_CHARS
    for result in report.results:
        kept: list[str] = []
        for index, message in enumerate(result["violations"]):
            if len(message) > budget:
                kept.append(f"… and {len(result['violations']) - index} more violations (report size limit)")
                break
            kept.append(message)
            budget -= len(message)
        result["violations"] = kept


def evaluate_session(
    contract_yaml: str | None,
    org_policies: Mapping[str, str],
    gate_default: bool,
    envelope: dict[str, Any],
) -> PolicyReport:
    """Evaluate a session's evidence envelope against a project's contract.

    `contract_yaml` None → the built-in contract `ai-coding-session`. `org_policies` maps the
    organisation's policy names (referenced as `policy:<name>`) to their text. A contract that no
    longer parses yields one `neutral` result (`invalid_contract`) instead of raising."""
    try:
        if contract_yaml is None:
            contract = builtin_contract()
        else:
            contract = parse_contract_structure(contract_yaml, org_policies.keys())
    except TracemarkError as exc:
        result = {
            "policy": "contract",
            "ref": "contract",
            "status": "neutral",
            "violations": [],
            "gate": False,
            "reason": "invalid_contract",
            "detail": exc.message,
        }
        return PolicyReport(results=[result], gated=False)
    return evaluate_contract(contract, org_policies, gate_default, envelope)
