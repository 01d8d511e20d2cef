"""Secret redaction before anything leaves the machine (SPEC §2.5).

Every match is replaced by `[REDACTED:<rule>]` and counted per rule. Rules: cloud and forge
tokens with recognisable shapes (AWS, GitHub, GitLab, Slack, Anthropic/OpenAI, Google, Stripe),
private key blocks, JWTs, `password=` / `api_key=`-style assignments of literal values, and
high-entropy values assigned to secret-looking names.

Protected from false positives: git object ids and other hex digests, UUIDs, file paths, values
that are references rather than literals (`$VAR`, `${VAR}`, `<placeholder>`, `os.environ[...]`),
and anything already redacted. A line containing `tracemark:allow` (or gitleaks' `gitleaks:allow`)
is left exactly as it is.

Replacements never contain `"` or `\\`, so redacting the text of a JSON document keeps it valid;
`redact_json` walks string leaves instead, which also protects id-like keys.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALLOW_MARKERS = ("tracemark:allow", "gitleaks:allow", "betterleaks:allow")
PLACEHOLDER = "[REDACTED:{rule}]"

_SENSITIVE_KEY_NAME = (
    r"(?:[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|secret|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|client[_-]?secret|token|credentials?))"
)
# A name, an assignment operator, then a value (quoted or bare). Group "v" is what gets redacted.
_ASSIGNMENT = re.compile(
    r"(?i)(?P<k>\b" + _SENSITIVE_KEY_NAME + r")\b[\"']?\s*(?::=|=>|=|:)\s*"
    r"(?:(?P<q>[\"'`])(?P<v>[^\"'`\s\\]{4,256})(?P=q)|(?P<bare>[^\s\"'`,;&|)}\]\\]{4,256}))"
)
_ENTROPY_ASSIGNMENT = re.compile(
    r"(?P<k>\b[A-Za-z_][A-Za-z0-9_.-]{0,63})[\"']?\s*(?::=|=|:)\s*[\"'`]?(?P<v>[A-Za-z0-9+/_=.~-]{20,256})"
)

_HEX_DIGEST = re.compile(r"^(?:[0-9a-fA-F]{7,128}|sha\d*[:-][0-9a-fA-F]{32,128})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REFERENCE = re.compile(r"^(?:\$|%|<|\{|\[REDACTED|\*{3,}|x{4,}$|X{4,}$|\.{3})")
_ATTRIBUTE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_CALL_OR_INDEX = re.compile(r"[A-Za-z_][\w.]*[(\[]")
_WORD = re.compile(r"[A-Za-z_]+")
_NOT_SECRET_KEYS = re.compile(r"(?i)(?:sha|hash|digest|commit|uuid|checksum|integrity|etag|nonce|^id$|_id$|-id$)")
_PLAIN_WORDS = frozenset(
    {"none", "null", "true", "false", "undefined", "required", "optional", "string", "password", "secret", "changeme"}
)


@dataclass(frozen=True)
class Rule:
    id: str
    pattern: re.Pattern[str]
    group: str | int = 0
    check: Callable[[str, re.Match[str]], bool] | None = None


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    length = len(value)
    return -sum(n / length * math.log2(n / length) for n in counts.values())


def _looks_protected(value: str) -> bool:
    return bool(
        _HEX_DIGEST.match(value)
        or _UUID.match(value)
        or _REFERENCE.match(value)
        or value.startswith(("/", "./", "../", "~/", "http://", "https://"))
    )


def _assignment_check(value: str, match: re.Match[str]) -> bool:
    if _looks_protected(value) or value.lower() in _PLAIN_WORDS:
        return False
    if _NOT_SECRET_KEYS.search(match.group("k")):
        return False
    # bare `password=getpass()`, `token: config.token`, `pwd=value`: code, not a secret
    return match.group("bare") is None or not (
        _ATTRIBUTE.fullmatch(value) or _CALL_OR_INDEX.match(value) or _WORD.fullmatch(value)
    )


def _entropy_check(value: str, match: re.Match[str]) -> bool:
    if _looks_protected(value) or _NOT_SECRET_KEYS.search(match.group("k")):
        return False
    if "/" in value and value.count("/") >= 2 and not value.endswith("="):
        return False  # a path or URL fragment, not base64
    has_lower = any(c.islower() for c in value)
    has_upper = any(c.isupper() for c in value)
    has_digit = any(c.isdigit() for c in value)
    if sum((has_lower, has_upper, has_digit)) < 2 or not has_digit:
        return False
    return shannon_entropy(value) >= 4.0


RULES: tuple[Rule, ...] = (
    Rule(
        "private-key",
        re.compile(
            r"-----BEGIN[A-Z ]{0,40} PRIVATE KEY( BLOCK)?-----(?:.|\n){0,16384}?"
            r"-----END[A-Z ]{0,40} PRIVATE KEY( BLOCK)?-----"
            r"|-----BEGIN[A-Z ]{0,40} PRIVATE KEY( BLOCK)?-----(?:[A-Za-z0-9+/=\s:-]|\\[nr]){16,16384}"
        ),
    ),
    Rule("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b")),
    Rule(
        "aws-secret-access-key",
        re.compile(r"(?i)aws.{0,20}?secret.{0,20}?[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
        "v",
    ),
    Rule("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    Rule("gitlab-token", re.compile(r"\bgl(?:pat|ptt|dt|rt|cbt|imt|oas|soat|ffct|agent)-[A-Za-z0-9_-]{20,}")),
    Rule(
        "slack-token",
        re.compile(
            r"\bxox[abposre]-(?:\d+-)?[A-Za-z0-9-]{10,}"
            r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/_-]{20,}"
        ),
    ),
    Rule("anthropic-api-key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}")),
    Rule("openai-api-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}")),
    Rule("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    Rule("stripe-key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}\b")),
    Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    Rule("url-credentials", re.compile(r"(?<=://)(?P<v>[^/\s:@\"'\\]{1,256}:[^/\s@\"'\\]{1,256})(?=@)"), "v"),
    Rule("generic-secret-assignment", _ASSIGNMENT, "v", _assignment_check),
    Rule("high-entropy-assignment", _ENTROPY_ASSIGNMENT, "v", _entropy_check),
)
_BARE_GROUP = "bare"


@dataclass
class Redaction:
    """Counts per rule; merge several with `+=`."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __iadd__(self, other: Redaction) -> Redaction:
        self.counts.update(other.counts)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "rules": dict(sorted(self.counts.items()))}


_PREFILTER = re.compile(
    r"(?i)PRIVATE KEY|AKIA|ASIA|ABIA|ACCA|A3T|gh[pousr]_|github_pat_|gl[a-z]{1,6}-|xox|hooks\.slack|sk-|AIza"
    r"|_live_|_test_|eyJ|://[^/\s]*@|pass|pwd|secret|key|token|credential|[=:]\s*[\"'`]?[A-Za-z0-9+/_=.~-]{20}"
)


def _span_value(match: re.Match[str], group: str | int) -> tuple[int, int, str]:
    if group == "v" and match.re is _ASSIGNMENT and match.group("v") is None:
        group = _BARE_GROUP
    start, end = match.span(group)
    return start, end, match.group(group) or ""


def _redact_line(line: str, counts: Counter[str]) -> str:
    if not _PREFILTER.search(line) or any(marker in line for marker in ALLOW_MARKERS):
        return line
    for rule in RULES:
        if rule.id == "private-key":
            continue
        pieces: list[str] = []
        position = 0
        for match in rule.pattern.finditer(line):
            start, end, value = _span_value(match, rule.group)
            if start < position or not value or value.startswith("[REDACTED"):
                continue
            if rule.check is not None and not rule.check(value, match):
                continue
            pieces.append(line[position:start])
            pieces.append(PLACEHOLDER.format(rule=rule.id))
            position = end
            counts[rule.id] += 1
        if pieces:
            pieces.append(line[position:])
            line = "".join(pieces)
    return line


def redact_text(text: str) -> tuple[str, Redaction]:
    """Redact one string; returns the new string and the counts."""
    result = Redaction()
    if not text or not _PREFILTER.search(text):
        return text, result
    key_rule = RULES[0]
    if "PRIVATE KEY" in text:

        def _key(match: re.Match[str]) -> str:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.start())
            first_line = text[start : end if end >= 0 else len(text)]
            if any(marker in first_line for marker in ALLOW_MARKERS):
                return match.group(0)
            result.counts[key_rule.id] += 1
            return PLACEHOLDER.format(rule=key_rule.id)

        text = key_rule.pattern.sub(_key, text)
    lines = text.split("\n")
    redacted = [_redact_line(line, result.counts) for line in lines]
    return "\n".join(redacted), result


PROTECTED_KEYS = frozenset(
    {
        "id",
        "uuid",
        "parentUuid",
        "logicalParentUuid",
        "leafUuid",
        "sessionId",
        "session_id",
        "requestId",
        "tool_use_id",
        "toolUseID",
        "parentToolUseID",
        "sourceToolAssistantUUID",
        "messageId",
        "agentId",
        "timestamp",
        "type",
        "model",
        "version",
        "sha",
        "sha256",
        "digest",
        "keyid",
        "path",
        "file_path",
        "filePath",
        "cwd",
        "gitBranch",
        "slug",
        "status",
        "attribution",
    }
)


def redact_json(value: Any, redaction: Redaction | None = None, *, key: str = "") -> Any:
    """A copy of `value` with every string leaf redacted, except under protected keys."""
    redaction = redaction if redaction is not None else Redaction()
    if isinstance(value, str):
        if key in PROTECTED_KEYS:
            return value
        text, found = redact_text(value)
        redaction += found
        return text
    if isinstance(value, dict):
        return {k: redact_json(v, redaction, key=k if isinstance(k, str) else "") for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, redaction, key=key) for v in value]
    return value


def redact_jsonl_line(line: bytes, redaction: Redaction) -> bytes:
    """Redact one transcript line. Lines with nothing that could match are returned unchanged,
    byte for byte; a line that is not JSON is redacted as text."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", errors="replace")
    if not _PREFILTER.search(text):
        return line
    try:
        record = json.loads(text)
    except ValueError:
        redacted, found = redact_text(text)
        redaction += found
        return redacted.encode("utf-8")
    before = redaction.total
    cleaned = redact_json(record, redaction)
    if redaction.total == before:
        return line
    newline = b"\n" if line.endswith(b"\n") else b""
    return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + newline


def strip_url_credentials(url: str) -> str:
    """`https://user:token@host/x` -> `https://host/x` (remote URLs in git_context)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "", url)
