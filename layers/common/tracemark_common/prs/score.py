"""The AI Session Score (SPEC §3.6): deterministic, explainable, no model call.

Five criteria, 20 points each: provenance, oversight, verification, risk, policy. Each starts
at 20; every finding deducts points and names a severity (`info`, `yellow`, `red`). A
criterion's sub-flag is red when it has a red finding or fewer than 10 points, yellow when it
has a yellow finding or fewer than 17 points, green otherwise. The session's flag comes from the
distribution of sub-flags (not from the number): red when the policy or risk sub-flag is red or
two sub-flags are red; yellow when any sub-flag is red or two are yellow; green otherwise.
docs/score.md has the rules and worked examples. Pure: reads the evidence envelope only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CRITERIA = ("provenance", "oversight", "verification", "risk", "policy")
POINTS = 20
FLAG_ORDER = {"green": 0, "yellow": 1, "red": 2}

VERIFY_COMMAND = re.compile(
    r"\b(pytest|tox|nox|unittest|go (test|build|vet)|cargo (test|build|check|clippy)|npm (run )?(test|build|lint)"
    r"|yarn (test|build|lint)|pnpm (test|build|lint)|make( \S+)* (test|check|build|lint)|mvn (test|verify|package)"
    r"|gradle\w* (test|build|check)|ruff|mypy|eslint|tsc|jest|vitest|rspec|phpunit|dotnet (test|build)"
    r"|(mise|just|task|bun|deno)( run)? \S*(test|build|check|lint)|golangci-lint|pre-commit run)\b"
)
DANGEROUS_COMMANDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("recursive delete of a root or home path", re.compile(r"\brm\s+-[a-zA-Z]*[rf][a-zA-Z]*\s+(/|~|\$HOME)(\s|$|\*)")),
    ("pipes a download into a shell", re.compile(r"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z)?sh\b")),
    ("force push", re.compile(r"\bgit\s+push\b.*(--force\b|\s-f\b)")),
    ("world-writable permissions", re.compile(r"\bchmod\s+(-R\s+)?0?777\b")),
    ("runs as root", re.compile(r"(^|[;&|]\s*)sudo\s")),
    ("writes a raw disk", re.compile(r"\b(dd\s+if=|mkfs(\.\w+)?\s)")),
    ("rewrites history on a shared branch", re.compile(r"\bgit\s+reset\s+--hard\s+origin/")),
)
SENSITIVE_PATHS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("CI configuration", re.compile(r"(^|/)(\.github/workflows/|\.gitlab-ci\.yml$|\.circleci/|Jenkinsfile$)")),
    ("infrastructure", re.compile(r"(\.tf$|\.tfvars$|(^|/)(terraform|k8s|kubernetes|helm|charts)/|template\.ya?ml$)")),
    ("container build", re.compile(r"(^|/)(Dockerfile[^/]*|docker-compose[^/]*\.ya?ml)$")),
    (
        "authentication or secrets",
        re.compile(
            r"(^|[/_.-])(auth\w*|login|passw(or)?d|secrets?|tokens?|credentials?|sessions?|permissions?|iam|oauth"
            r"|jwt|acl|rbac)([/_.-]|$)",
            re.IGNORECASE,
        ),
    ),
    (
        "cryptography",
        re.compile(
            r"(crypt|cipher|hmac|(^|[/_.-])(sign(ing|ature)?|tls|ssl|certs?|keys?|pki|x509)([/_.-]|$))", re.IGNORECASE
        ),
    ),
    ("environment files", re.compile(r"(^|/)\.env(\.|$)")),
)
LARGE_CHANGE = 1000
VERY_LARGE_CHANGE = 3000
BAD_SIGNATURES = frozenset({"B", "R"})
NO_SIGNATURE = frozenset({"N", "E", "X", "Y", ""})


@dataclass(frozen=True)
class Finding:
    criterion: str
    points: int  # deducted
    severity: str  # info | yellow | red
    message: str


@dataclass(frozen=True)
class ReviewItem:
    kind: str  # file | command | policy
    message: str
    path: str | None = None
    line_ranges: tuple[tuple[int, int], ...] = ()
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.path is not None:
            item["path"] = self.path
        if self.line_ranges:
            item["line_ranges"] = [{"start": a, "end": b} for a, b in self.line_ranges]
        if self.command is not None:
            item["command"] = self.command
        return item


@dataclass
class Score:
    score: int
    flag: str
    summary: str
    sub_flags: dict[str, str]
    points: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    items: list[ReviewItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "flag": self.flag,
            "summary": self.summary,
            "criteria": {
                name: {
                    "flag": self.sub_flags[name],
                    "points": self.points[name],
                    "findings": [
                        {"points": -f.points, "severity": f.severity, "message": f.message}
                        for f in self.findings
                        if f.criterion == name
                    ],
                }
                for name in CRITERIA
            },
            "items": [item.to_dict() for item in self.items],
        }


# -- reading the evidence ----------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def shell_commands(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`tools_used.tracemark_shell_commands[]` as dicts with at least `command`."""
    commands = []
    for item in _list(_dict(data.get("tools_used")).get("tracemark_shell_commands"))[:1000]:
        if isinstance(item, str):
            commands.append({"command": item})
        elif isinstance(item, dict) and isinstance(item.get("command"), str):
            commands.append(item)
    return commands


def permission_modes(envelope: Mapping[str, Any]) -> list[str]:
    data = _dict(envelope.get("data"))
    modes: list[str] = []
    for source in (_dict(envelope.get("tracemark")), _dict(data.get("tools_used")), _dict(data.get("conversation"))):
        for key in ("permission_mode", "tracemark_permission_mode"):
            value = source.get(key)
            if isinstance(value, str):
                modes.append(value)
            modes.extend(v for v in _list(source.get(f"{key}s")) if isinstance(v, str))
    for record in _list(_dict(data.get("raw_session")).get("main"))[:10_000]:
        if isinstance(record, dict) and record.get("type") == "permission-mode":
            mode = record.get("permissionMode")
            modes.extend([mode] if isinstance(mode, str) else [])
    return list(dict.fromkeys(modes))


def redaction_counts(envelope: Mapping[str, Any]) -> dict[str, int]:
    data = _dict(envelope.get("data"))
    candidates = (
        _dict(envelope.get("tracemark")).get("redactions"),
        _dict(data.get("conversation")).get("tracemark_redactions"),
        _dict(data.get("tools_used")).get("tracemark_redactions"),
    )
    counts: dict[str, int] = {}
    for value in candidates:
        for rule, count in _dict(value).items():
            if _int(count) > 0:
                counts[str(rule)] = counts.get(str(rule), 0) + _int(count)
    return counts


def failed_tool_calls(data: Mapping[str, Any]) -> int:
    tools = _dict(data.get("tools_used"))
    total = _int(tools.get("tracemark_failed_invocations"))
    if not total:
        for raw in _list(tools.get("summary")):
            entry = _dict(raw)
            total += _int(entry.get("failed_count")) or _int(entry.get("error_count")) or _int(entry.get("failures"))
    return total


def policy_outcomes(policy_results: Iterable[Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(violations, unevaluated): each as (policy name, message)."""
    violations: list[tuple[str, str]] = []
    unevaluated: list[tuple[str, str]] = []
    for raw in policy_results:
        result = _dict(raw)
        name = str(result.get("policy") or result.get("name") or result.get("ref") or "policy")[:100]
        messages = [str(v)[:500] for v in _list(result.get("violations"))]
        status = result.get("status")
        if messages or status == "fail":
            violations.extend((name, m) for m in (messages or ["violation"]))
        elif status in ("neutral", "error"):
            unevaluated.append((name, str(result.get("reason") or result.get("detail") or "not evaluated")[:200]))
    return violations, unevaluated


# -- the score ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredFile:
    path: str
    ai_lines: int
    line_ranges: tuple[tuple[int, int], ...] = ()


@dataclass
class ScoreInput:
    envelope: dict[str, Any]
    policy_results: list[Any] = field(default_factory=list)
    transcript_present: bool = False
    commit_signatures: dict[str, str] = field(default_factory=dict)  # sha -> git %G?
    files: list[ScoredFile] = field(default_factory=list)  # AI files of the session in scope
    ai_lines: int = 0  # added + removed in scope
    human_lines: int = 0


def score_session(given: ScoreInput) -> Score:
    findings: list[Finding] = []
    items: list[ReviewItem] = []
    data = _dict(given.envelope.get("data"))
    _provenance(given, data, findings)
    _oversight(given, data, findings)
    _verification(given, data, findings, items)
    _risk(given, data, findings, items)
    _policy(given, findings, items)
    return _assemble(findings, items, given)


def _provenance(given: ScoreInput, data: dict[str, Any], findings: list[Finding]) -> None:
    signatures = given.commit_signatures
    bad = sorted(sha for sha, code in signatures.items() if code in BAD_SIGNATURES)
    unsigned = sorted(sha for sha, code in signatures.items() if code in NO_SIGNATURE)
    if bad:
        findings.append(Finding("provenance", 10, "red", f"{len(bad)} commit(s) with a bad or revoked signature"))
    if unsigned:
        findings.append(Finding("provenance", 4, "info", f"{len(unsigned)} of {len(signatures)} commit(s) unsigned"))
    if not given.transcript_present:
        findings.append(Finding("provenance", 6, "yellow", "no transcript was uploaded with the attestation"))
    if not _dict(data.get("session")).get("ended_at"):
        findings.append(Finding("provenance", 3, "yellow", "the session has no end time (captured incomplete)"))
    warnings = [w for w in _list(data.get("warnings")) if isinstance(w, str)]
    if warnings:
        findings.append(Finding("provenance", min(6, 2 * len(warnings)), "info", f"{len(warnings)} capture warning(s)"))


def _oversight(given: ScoreInput, data: dict[str, Any], findings: list[Finding]) -> None:
    modes = permission_modes(given.envelope)
    if "bypassPermissions" in modes:
        findings.append(Finding("oversight", 10, "red", "the agent ran with permission checks bypassed"))
    elif "acceptEdits" in modes:
        findings.append(Finding("oversight", 3, "info", "edits were accepted without per-edit approval"))
    conversation = _dict(data.get("conversation"))
    # Prompts the person typed (the CLI's count), else Chainloop's user messages.
    typed = conversation.get("tracemark_prompts")
    prompts = _int(typed) if isinstance(typed, int) else _int(conversation.get("user_messages"))
    calls = _int(_dict(data.get("tools_used")).get("total_invocations"))
    ratio = calls / max(1, prompts)
    if calls and ratio > 100:
        findings.append(
            Finding("oversight", 8, "red", f"{calls} tool calls for {prompts} prompt(s): mostly autonomous")
        )
    elif calls and ratio > 40:
        findings.append(Finding("oversight", 4, "yellow", f"{calls} tool calls for {prompts} prompt(s)"))
    if given.ai_lines > 200 and given.human_lines == 0:
        findings.append(
            Finding("oversight", 3, "yellow", f"{given.ai_lines} AI lines committed without any human edit")
        )


def _verification(given: ScoreInput, data: dict[str, Any], findings: list[Finding], items: list[ReviewItem]) -> None:
    if given.ai_lines == 0:
        return
    checks = [c for c in shell_commands(data) if VERIFY_COMMAND.search(str(c["command"]))]
    if not checks:
        findings.append(Finding("verification", 8, "yellow", "no tests, build or lint were run in the session"))
        return
    last = checks[-1]
    exit_code = last.get("exit_code")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
        findings.append(Finding("verification", 12, "red", f"the last check failed (exit {exit_code})"))
        items.append(ReviewItem("command", "the last test/build/lint run failed", command=str(last["command"])[:200]))
    elif last.get("after_last_edit") is False:
        findings.append(Finding("verification", 6, "yellow", "no test, build or lint run after the last AI edit"))


def _risk(given: ScoreInput, data: dict[str, Any], findings: list[Finding], items: list[ReviewItem]) -> None:
    for command in shell_commands(data):
        text = str(command["command"])
        for reason, pattern in DANGEROUS_COMMANDS:
            if pattern.search(text):
                findings.append(Finding("risk", 8, "red", f"dangerous command: {reason}"))
                items.append(ReviewItem("command", reason, command=text[:200]))
                break
    redactions = redaction_counts(given.envelope)
    if redactions:
        total = sum(redactions.values())
        rules = ", ".join(sorted(redactions))
        findings.append(Finding("risk", 6, "yellow", f"{total} secret(s) redacted from the session ({rules})"))
    sensitive = 0
    for scored in given.files:
        for reason, pattern in SENSITIVE_PATHS:
            if pattern.search(scored.path):
                sensitive += 1
                items.append(
                    ReviewItem("file", f"AI lines in {reason}", path=scored.path, line_ranges=scored.line_ranges)
                )
                break
    if sensitive:
        findings.append(
            Finding("risk", min(9, 3 * sensitive), "yellow", f"{sensitive} sensitive file(s) changed by AI")
        )
    if given.ai_lines > VERY_LARGE_CHANGE:
        findings.append(Finding("risk", 10, "red", f"very large AI change ({given.ai_lines} lines)"))
    elif given.ai_lines > LARGE_CHANGE:
        findings.append(Finding("risk", 6, "yellow", f"large AI change ({given.ai_lines} lines)"))
    failed = failed_tool_calls(data)
    if failed > 5:
        findings.append(Finding("risk", 3, "info", f"{failed} failed tool calls"))


def _policy(given: ScoreInput, findings: list[Finding], items: list[ReviewItem]) -> None:
    violations, unevaluated = policy_outcomes(given.policy_results)
    for name, message in violations:
        findings.append(Finding("policy", 10, "red", f"{name}: {message}"))
        items.append(ReviewItem("policy", f"{name}: {message}"))
    for name, reason in unevaluated:
        findings.append(Finding("policy", 4, "yellow", f"{name} could not be evaluated ({reason})"))


def _assemble(findings: list[Finding], items: list[ReviewItem], given: ScoreInput) -> Score:
    points: dict[str, int] = {}
    sub_flags: dict[str, str] = {}
    for name in CRITERIA:
        mine = [f for f in findings if f.criterion == name]
        value = max(0, POINTS - sum(f.points for f in mine))
        points[name] = value
        if any(f.severity == "red" for f in mine) or value < 10:
            sub_flags[name] = "red"
        elif any(f.severity == "yellow" for f in mine) or value < 17:
            sub_flags[name] = "yellow"
        else:
            sub_flags[name] = "green"
    flag = combine_flags(sub_flags)
    total = sum(points.values())
    return Score(total, flag, _summary(flag, findings, given), sub_flags, points, findings, items[:50])


def combine_flags(sub_flags: Mapping[str, str]) -> str:
    reds = sum(1 for f in sub_flags.values() if f == "red")
    yellows = sum(1 for f in sub_flags.values() if f == "yellow")
    if sub_flags.get("policy") == "red" or sub_flags.get("risk") == "red" or reds >= 2:
        return "red"
    if reds or yellows >= 2:
        return "yellow"
    return "green"


def _summary(flag: str, findings: list[Finding], given: ScoreInput) -> str:
    scope = f"{given.ai_lines} AI line{'s' if given.ai_lines != 1 else ''} in {len(given.files)} file" + (
        "s" if len(given.files) != 1 else ""
    )
    priority = {name: index for index, name in enumerate(reversed(CRITERIA))}  # policy first
    ranked = sorted(
        (f for f in findings if f.severity != "info"),
        key=lambda f: (-FLAG_ORDER[f.severity], priority[f.criterion], -f.points),
    )
    if not ranked:
        return f"{flag.capitalize()}: {scope}; provenance, oversight, verification, risk and policy all look fine."
    return f"{flag.capitalize()}: {scope}; {ranked[0].message}."


def combine_scores(scores: list[tuple[Score, int]]) -> tuple[int, str]:
    """The PR row: the AI-line-weighted mean of session scores (weight = AI lines + 1), and the
    worst session flag."""
    if not scores:
        return 100, "green"
    weight = sum(lines + 1 for _, lines in scores)
    value = round(sum(score.score * (lines + 1) for score, lines in scores) / weight)
    flag = max((score.flag for score, _ in scores), key=lambda f: FLAG_ORDER[f])
    return value, flag
