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

# Names that hold secrets end in one of these words (`DB_PASSWORD`, `api_key`, `GITHUB_TOKEN`,
# `client_secret`...). Factored by first letters: Python's regex engine tries alternatives one by
# one at every position, so a factored pattern scans several times faster.
_SENSITIVE_WORDS = r"p(?:ass(?:word|wd|phrase)|wd)|secret|key|token|credentials?"
# A secret-looking name ends here, then an assignment operator, then a value (quoted or bare).
# Group "v" (or "bare") is what gets redacted; the full name is read back from the text.
_ASSIGNMENT = re.compile(  # run on lowercased text (see Rule.lower)
    r"(?:" + _SENSITIVE_WORDS + r")\b[\"']?[ \t]*(?::=|=>|=|:)[ \t]*"
    r"(?:(?P<q>[\"'`])(?P<v>[^\"'`\s\\]{4,256})(?P=q)|(?P<bare>[^\s\"'`,;&|)}\]\\]{4,256}))"
)
# An assignment operator then a long token-like value; the name before it is read back.
_ENTROPY_ASSIGNMENT = re.compile(r"(?::=|=|:)[ \t]*[\"'`]?(?P<v>[A-Za-z0-9+/_=.~-]{20,256})")
_NAME_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]{0,63})[\"']?[ \t]*$")

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
    # cheap substring tests: the regex runs only when one of them is in the text; empty = always
    hints: tuple[str, ...] = ()
    # case-insensitive rule: `pattern` (lowercase) runs on the lowercased text, values are
    # taken from the original at the same offsets; hints are lowercase too
    lower: bool = False


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


def _name_before(match: re.Match[str], end: int) -> str:
    """The identifier that ends at `end` (the assignment's left-hand side)."""
    text = match.string
    found = _NAME_BEFORE.search(text, max(0, end - 80), end)
    return found.group(1) if found else ""


def _assignment_check(value: str, match: re.Match[str]) -> bool:
    if _looks_protected(value) or value.lower() in _PLAIN_WORDS:
        return False
    name = _name_before(match, match.start(0) + _word_end(match))
    if _NOT_SECRET_KEYS.search(name):
        return False
    # bare `password=getpass()`, `token: config.token`, `pwd=value`: code, not a secret
    return match.group("bare") is None or not (
        _ATTRIBUTE.fullmatch(value) or _CALL_OR_INDEX.match(value) or _WORD.fullmatch(value)
    )


def _word_end(match: re.Match[str]) -> int:
    """Offset, inside the match, of the end of the sensitive word."""
    text = match.group(0)
    index = 0
    while index < len(text) and (text[index].isalnum() or text[index] in "_-"):
        index += 1
    return index


def _entropy_check(value: str, match: re.Match[str]) -> bool:
    name = _name_before(match, match.start(0))
    if not name or _looks_protected(value) or _NOT_SECRET_KEYS.search(name):
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
        hints=("PRIVATE KEY",),
    ),
    Rule(
        "aws-access-key-id",
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
        hints=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    Rule(
        "aws-secret-access-key",
        re.compile(r"aws.{0,20}?secret.{0,20}?[\"']?[ \t]*[:=][ \t]*[\"']?(?P<v>[a-z0-9/+]{40})(?![a-z0-9/+])"),
        "v",
        hints=("aws",),
        lower=True,
    ),
    Rule(
        "github-token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
        hints=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Rule(
        "gitlab-token",
        re.compile(r"\bgl(?:pat|ptt|dt|rt|cbt|imt|oas|soat|ffct|agent)-[A-Za-z0-9_-]{20,}"),
        hints=("glpat-", "glptt-", "gldt-", "glrt-", "glcbt-", "glimt-", "gloas-", "glsoat-", "glffct-", "glagent-"),
    ),
    Rule(
        "slack-token",
        re.compile(
            r"\bxox[abposre]-(?:\d+-)?[A-Za-z0-9-]{10,}"
            r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/_-]{20,}"
        ),
        hints=("xox", "hooks.slack.com"),
    ),
    Rule(
        "anthropic-api-key",
        re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}"),
        hints=("sk-ant-",),
    ),
    Rule(
        "openai-api-key",
        re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}"),
        hints=("T3BlbkFJ",),
    ),
    Rule("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), hints=("AIza",)),
    Rule("stripe-key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}\b"), hints=("_live_", "_test_")),
    Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), hints=("eyJ",)),
    Rule(
        "url-credentials",
        re.compile(r"(?<=://)(?P<v>[^/\s:@\"'\\]{1,256}:[^/\s@\"'\\]{1,256})(?=@)"),
        "v",
        hints=("://",),
    ),
    Rule(
        "generic-secret-assignment",
        _ASSIGNMENT,
        "v",
        _assignment_check,
        hints=("pass", "pwd", "secret", "key", "token", "credential"),
        lower=True,
    ),
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


def _allowed(text: str, position: int) -> bool:
    """Whether the line holding `position` carries an allow marker."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end >= 0 else len(text)]
    return any(marker in line for marker in ALLOW_MARKERS)


def _apply(rule: Rule, text: str, counts: Counter[str], markers: bool) -> str:
    scan = text
    pattern = rule.pattern
    if rule.lower:
        scan = text.lower()
        if len(scan) != len(text):  # a few non-ASCII letters change length when lowercased
            scan, pattern = text, re.compile(rule.pattern.pattern, re.IGNORECASE)
    pieces: list[str] = []
    position = 0
    for match in pattern.finditer(scan):
        group = rule.group
        if group == "v" and match.group("v") is None and "bare" in pattern.groupindex:
            group = _BARE_GROUP
        start, end = match.span(group)
        value = text[start:end]
        if start < position or not value or value.startswith("[REDACTED"):
            continue
        if rule.check is not None and not rule.check(value, match):
            continue
        if markers and _allowed(text, match.start(0)):
            continue
        pieces.append(text[position:start])
        pieces.append(PLACEHOLDER.format(rule=rule.id))
        position = end
        counts[rule.id] += 1
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def _trie(words: list[str]) -> str:
    """A regex matching exactly `words`, factored by common prefixes (fast in Python's engine)."""
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        optional = "" in node
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and not optional else "(?:" + "|".join(branches) + ")"
        return body + ("?" if optional and branches else "")

    return render(tree)


# One pass finds every case-sensitive hint; the few case-insensitive ones are substring tests on
# the lowercased text.
_CASED_HINTS = re.compile(_trie(sorted({h for r in RULES if not r.lower for h in r.hints})))
_RULES_BY_HINT: dict[str, list[Rule]] = {}
for _rule in RULES:
    if not _rule.lower:
        for _hint in _rule.hints:
            _RULES_BY_HINT.setdefault(_hint, []).append(_rule)


def _candidate_rules(text: str) -> list[Rule]:
    chosen = {rule.id for hit in set(_CASED_HINTS.findall(text)) for rule in _RULES_BY_HINT.get(hit, ())}
    lowered = ""
    for rule in RULES:
        if rule.lower:
            lowered = lowered or text.lower()
            if any(hint in lowered for hint in rule.hints):
                chosen.add(rule.id)
    return [rule for rule in RULES if rule.id in chosen or not rule.hints]


def redact_text(text: str) -> tuple[str, Redaction]:
    """Redact one string; returns the new string and the counts. Each rule runs once over the
    whole string, and only when its cheap substring hints are present."""
    result = Redaction()
    if len(text) < 4:
        return text, result
    markers = "allow" in text and any(marker in text.lower() for marker in ALLOW_MARKERS)
    for rule in _candidate_rules(text):
        text = _apply(rule, text, result.counts, markers)
    return text, result


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
        return _redact_string(key, value, redaction)
    if isinstance(value, dict):
        return {k: redact_json(v, redaction, key=k if isinstance(k, str) else "") for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, redaction, key=key) for v in value]
    return value


# Whole-line gates for transcript lines (raw JSON text, so quotes inside strings are escaped):
# a line none of them matches cannot yield a redaction and is kept without being parsed.
_ASSIGNMENT_GATE = re.compile(r"(?:" + _SENSITIVE_WORDS + r")\b(?:\\?[\"'])?[ \t]*(?::=|=>|=|:)")
# (a value the entropy rule can flag has 20+ token characters and at least one digit)
_ENTROPY_GATE = re.compile(r"(?::=|=|:)[ \t]*(?:\\[\"'`]|['`])?(?=[A-Za-z0-9+/_=.~-]{20})[A-Za-z+/_=.~-]*[0-9]")
_SECRET_JSON_KEY = re.compile(
    r"(?i)[a-z0-9_.-]*(?:password|passwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|token|credentials?)"
)


def _line_may_need_redaction(text: str) -> bool:
    if _CASED_HINTS.search(text) or _ENTROPY_GATE.search(text):
        return True
    lowered = text.lower()
    return "aws" in lowered or _ASSIGNMENT_GATE.search(lowered) is not None


def _secret_by_key(key: str, value: str) -> bool:
    """`{"password": "hunter22"}` in structured data (tool inputs, configs): the key names a
    secret and the value is one literal word."""
    if not _SECRET_JSON_KEY.fullmatch(key) or _NOT_SECRET_KEYS.search(key):
        return False
    if not 4 <= len(value) <= 256 or any(c.isspace() for c in value) or value.startswith("[REDACTED"):
        return False
    return not (_looks_protected(value) or value.lower() in _PLAIN_WORDS)


def _redact_string(key: str, value: str, redaction: Redaction) -> str:
    if _secret_by_key(key, value):
        redaction.counts["generic-secret-assignment"] += 1
        return PLACEHOLDER.format(rule="generic-secret-assignment")
    text, found = redact_text(value)
    if found.total:
        redaction += found
    return text


def redact_jsonl_line(line: bytes, redaction: Redaction) -> bytes:
    """Redact one transcript line. Lines with nothing that could match are returned unchanged,
    byte for byte; a line that is not JSON is redacted as text."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", errors="replace")
    if len(text) < 4 or not _line_may_need_redaction(text):
        return line
    try:
        record = json.loads(text)
    except ValueError:
        redacted, found = redact_text(text)
        redaction += found
        return redacted.encode("utf-8")
    if not _redact_in_place(record, redaction, ""):
        return line
    newline = b"\n" if line.endswith(b"\n") else b""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + newline


def _redact_in_place(value: Any, redaction: Redaction, key: str) -> bool:
    """Redact the string leaves of a freshly parsed document in place; True when any changed."""
    changed = False
    items: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for index, item in list(items):
        name = index if isinstance(index, str) else key
        if isinstance(item, str):
            if name in PROTECTED_KEYS or len(item) < 4:
                continue
            before = redaction.total
            text = _redact_string(name, item, redaction)
            if redaction.total != before:
                value[index] = text
                changed = True
        elif isinstance(item, dict | list):
            changed = _redact_in_place(item, redaction, name) or changed
    return changed


def strip_url_credentials(url: str) -> str:
    """`https://user:token@host/x` -> `https://host/x` (remote URLs in git_context)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "", url)
