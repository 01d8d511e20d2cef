"""The Rego engine (regopy), imported lazily so this package imports without it.

`CompiledPolicy` holds one warm regopy interpreter with the author's module plus Chainloop's
boilerplate for whatever rules the author left out; `evaluate(input)` returns an `Outcome`.
Errors never pass: an engine error, an undefined or malformed `result` becomes `neutral`.
Used in-process for built-ins (see `builtins.py`) and inside the sandbox worker for org policies.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from tracemark_common.errors import Unprocessable

INSTALL_HINT = "policy evaluation needs regopy: pip install 'tracemark[policy]'"
MAX_VIOLATIONS = 100
MAX_MESSAGE_CHARS = 1000

# Chainloop's boilerplate (pkg/policies/engine/rego/boilerplate.rego.tmpl), rule by rule, added only
# for the rules the author did not write.
_BOILERPLATE: dict[str, str] = {
    "result": 'result := {"skipped": skipped, "violations": violations, "skip_reason": skip_reason, "ignore": ignore}',
    "skip_reason": (
        'default skip_reason := ""\n\n'
        'skip_reason := m if {\n\tnot valid_input\n\tm := "the file content is not recognized"\n}'
    ),
    "valid_input": "default valid_input := true",
    "skipped": "default skipped := true\n\nskipped := false if valid_input",
    "ignore": "default ignore := false",
    "violations": "default violations := []",
}


class EngineUnavailable(Exception):
    """regopy is not installed."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


@dataclass(frozen=True)
class Outcome:
    """What one policy said about one input."""

    status: str  # pass | fail | neutral | skipped
    violations: list[str] = field(default_factory=list)
    reason: str | None = None  # neutral: machine code; skipped: the skip reason
    detail: str | None = None  # neutral: human explanation

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "violations": self.violations, "reason": self.reason, "detail": self.detail}

    @classmethod
    def from_json(cls, raw: Any) -> Outcome:
        if not isinstance(raw, dict) or raw.get("status") not in {"pass", "fail", "neutral", "skipped"}:
            return neutral("engine_error", "the policy worker returned an unreadable answer")
        violations = raw.get("violations") or []
        if not isinstance(violations, list):
            violations = []
        return cls(
            status=raw["status"],
            violations=[str(v)[:MAX_MESSAGE_CHARS] for v in violations[:MAX_VIOLATIONS]],
            reason=None if raw.get("reason") is None else str(raw["reason"]),
            detail=None if raw.get("detail") is None else str(raw["detail"])[:MAX_MESSAGE_CHARS],
        )


def neutral(reason: str, detail: str) -> Outcome:
    return Outcome(status="neutral", reason=reason, detail=detail)


def _defines(rego: str, rule: str) -> bool:
    pattern = rf"^[ \t]*(?:default[ \t]+)?{rule}\b[ \t]*(?:\[|:=|=|contains\b|if\b|\{{|$)"
    return re.search(pattern, rego, re.M) is not None


def boilerplate(rego: str, package: str) -> str | None:
    """A second module in the same package with the rules the author left out (None if none)."""
    missing = [body for rule, body in _BOILERPLATE.items() if not _defines(rego, rule)]
    if not missing:
        return None
    return f"package {package}\n\nimport rego.v1\n\n" + "\n\n".join(missing) + "\n"


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def rego_safe(value: Any) -> Any:
    """Strings as regopy 1.3.0 expects them from `Input(dict)`: JSON-escaped content.

    rego-cpp keeps strings in their escaped source form; `Input` hands it Python strings
    unescaped, so a backslash or a quote in the evidence (`grep "a\\|b"`) breaks evaluation
    ("Invalid escape sequence") or the engine's JSON output. Escaping them first keeps equality,
    `sprintf`, `upper`, `startswith` and the output exact; `count`, `substring` and regex subjects
    then see the escaped form (`a\\"b`), which only matters for strings holding `"`, `\\` or
    control characters."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1] if _NEEDS_ESCAPE.search(value) else value
    if isinstance(value, dict):
        return {rego_safe(key): rego_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rego_safe(item) for item in value]
    return value


def _regopy() -> Any:
    try:
        import regopy
    except ImportError:
        raise EngineUnavailable() from None
    return regopy


def _error_text(text: str) -> str:
    """The `errormsg` lines of regopy's error s-expression, or the text itself."""
    messages = [m.group(1) for m in re.finditer(r"\(errormsg \d+:([^\n]*)\)", text)]
    return _short("; ".join(dict.fromkeys(messages)) if messages else text or "unknown engine error")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:400] + "…"


def _message(item: Any) -> str:
    if isinstance(item, str):
        text = item
    elif isinstance(item, dict):
        picked = next((item[k] for k in ("message", "msg", "violation") if isinstance(item.get(k), str)), None)
        text = picked if picked is not None else json.dumps(item, sort_keys=True, default=str)
    else:
        text = json.dumps(item, default=str)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def interpret(value: Any) -> Outcome:
    """Chainloop's `result` object → `Outcome`."""
    if not isinstance(value, dict):
        return neutral("invalid_result", f"`result` must be an object, got {type(value).__name__}")
    if value.get("ignore") is True:
        return Outcome(status="skipped", reason="ignored")
    if value.get("skipped") is True:
        reason = value.get("skip_reason")
        return Outcome(status="skipped", reason=reason if isinstance(reason, str) and reason else "skipped")
    findings = value.get("findings")
    raw = findings if isinstance(findings, list) and findings else value.get("violations", [])
    if raw is None:
        raw = []
    if isinstance(raw, dict) and all(flag is True for flag in raw.values()):
        raw = list(raw)  # v0 `violations[msg] { ... }` read with Rego v1 rules: an object of `true`s
    if not isinstance(raw, list):
        return neutral("invalid_result", "`violations` must be a list or a set")
    messages = sorted({_message(item) for item in raw})
    if len(messages) > MAX_VIOLATIONS:
        extra = len(messages) - MAX_VIOLATIONS
        messages = [*messages[:MAX_VIOLATIONS], f"… and {extra} more violations"]
    return Outcome(status="fail" if messages else "pass", violations=messages)


class CompiledPolicy:
    """One policy on one warm interpreter. Not re-entrant: a lock serialises evaluations."""

    def __init__(self, rego: str, package: str, *, module_name: str = "policy.rego") -> None:
        regopy = _regopy()
        self._regopy = regopy
        self.query = f"data.{package}.result"
        self._lock = threading.Lock()
        self._interpreter = regopy.Interpreter()
        self._interpreter.log_level = regopy.LogLevel.NONE  # else parse errors go to stdout
        # A failing built-in (sprintf("%d", [2.5]), to_number("x")) is an error, not an undefined
        # value: otherwise a violation whose message fails to format silently disappears (a pass).
        self._interpreter.strict_built_in_errors = True
        extra = boilerplate(rego, package)
        try:
            self._interpreter.add_module(module_name, rego)
            if extra is not None:
                self._interpreter.add_module("tracemark_boilerplate.rego", extra)
        except regopy.RegoError as exc:
            raise Unprocessable(f"the Rego does not compile: {_error_text(str(exc))}", code="invalid_policy") from None

    def _raw_query(self) -> tuple[bool, str]:
        """(ok, text) straight from the engine. regopy's `Output` parses the text as JSON and
        raises on error texts (and on some malformed strings), losing the engine's message."""
        shared = self._regopy.rego_shared
        impl = shared.rego_query(self._interpreter._impl, self.query)
        try:
            return bool(shared.rego_output_ok(impl)), str(shared.rego_output_string(impl))
        finally:
            shared.rego_free_output(impl)

    def evaluate(self, document: dict[str, Any]) -> Outcome:
        with self._lock:
            try:
                self._interpreter.set_input(self._regopy.Input(rego_safe(document)))
                ok, text = self._raw_query()
            except Exception as exc:  # regopy raises RegoError, ValueError, ... on engine errors
                return neutral("rego_error", f"the policy failed to evaluate: {_short(str(exc)) or type(exc).__name__}")
        if not ok or not text.startswith(("{", "undefined")):
            return neutral("rego_error", f"the policy failed to evaluate: {_error_text(text)}")
        if text.strip() == "undefined":
            return neutral("undefined_result", f"`{self.query}` is undefined")
        try:
            parsed = json.loads(text)
            value = parsed["expressions"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return neutral("rego_error", "the engine returned a malformed result (a regopy string-formatting bug?)")
        return interpret(value)

    def check(self) -> None:
        """Compile fully (regopy compiles lazily, at the first query): evaluate an empty input."""
        outcome = self.evaluate({})
        if outcome.status == "neutral" and outcome.reason == "rego_error":
            raise Unprocessable(f"the Rego does not compile: {outcome.detail}", code="invalid_policy")
