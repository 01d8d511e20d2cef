"""Attestation ingest (SPEC §3.2): domain logic, free of AWS and HTTP.

`ingest_attestation` bounds, parses and verifies a DSSE envelope against the caller's registered
keys, checks the in-toto statement and the evidence (0.1 JSON schema), evaluates the project's
policies, stores the envelope content-addressed, and merges the attestation into its session.
Every check happens before the first write, so a rejection stores nothing. The attestation
digest is claimed with a conditional write in the same transaction as the session, so the same
envelope pushed 20 times at once is stored and counted once; the losers answer 200 with the
stored result. `erase_session` removes a session and moves the rollups back.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

from tracemark_common import dsse
from tracemark_common.auth import Principal, require_org_admin, require_scope
from tracemark_common.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable, Unprocessable
from tracemark_common.observability import logger
from tracemark_common.rollups.facts import CommitLines, ModelUsage, SessionFacts
from tracemark_common.store import load_evidence
from tracemark_common.store.base import (
    AlreadyIngested,
    AppStore,
    BlobStore,
    SessionCommit,
    StaleSession,
)
from tracemark_common.store.records import AttestationRecord, SessionRecord

MAX_ENVELOPE_BYTES = 4 * 1024 * 1024  # a request body (SPEC §2.6)
MAX_UPLOADED_ENVELOPE_BYTES = 32 * 1024 * 1024  # an envelope sent through POST /v1/uploads
MAX_TRANSCRIPT_BYTES = 256 * 1024 * 1024
MAX_SUBJECTS = 1000
MAX_SIGNATURES = 8
MAX_SESSION_RECORD_BYTES = 300 * 1024  # a DynamoDB item is at most 400 KB
MAX_JSON_DEPTH = 64
MAX_NUMBER = 10**15  # counters beyond this are not plausible and would overflow rollups

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://tracemark.dev/ai-coding-session/v1"
EVIDENCE_KIND = "CHAINLOOP_AI_CODING_SESSION"
SCHEMA_RESOURCE = "ai-coding-session-0.1.schema.json"

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SESSION_WRITE_ATTEMPTS = 6


# collaborators ------------------------------------------------------------------------------------
class PolicyReportLike(Protocol):
    @property
    def results(self) -> list[dict[str, Any]]: ...
    @property
    def gated(self) -> bool: ...


class PolicyEvaluator(Protocol):
    def __call__(
        self, contract_yaml: str | None, org_policies: Mapping[str, str], gate_default: bool, envelope: dict[str, Any]
    ) -> PolicyReportLike: ...


class RollupWriterLike(Protocol):
    def record_session(self, before: SessionFacts | None, after: SessionFacts | None) -> None: ...

    def complete_pending(self, org: str) -> int: ...


@dataclass(frozen=True)
class IngestResult:
    status: int  # 201 new, 200 replay
    body: dict[str, Any]


@dataclass(frozen=True)
class ParsedAttestation:
    digest: str
    keyid: str
    canonical: bytes
    session_id: str
    project: str
    evidence: dict[str, Any]
    commits: list[str]
    rewritten_from: dict[str, list[str]]
    commit_entries: list[dict[str, Any]]
    started_at: datetime
    ended_at: datetime
    transcript: dict[str, Any] | None
    actor_unverified: str | None
    agent: str


@dataclass
class _Facts:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    commit_lines: dict[str, dict[str, int]] = field(default_factory=dict)


# strict JSON ----------------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth_ok(data: bytes) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def strict_json(data: bytes | str, what: str, error: type[BadRequest] | type[Unprocessable] = BadRequest) -> Any:
    """JSON with no duplicate keys, no NaN/Infinity and bounded nesting, or a clear 4xx."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.strip():
        raise error(f"{what} is empty; expected a JSON object", code="malformed_json")
    if not _depth_ok(raw):
        raise error(f"{what} nests deeper than {MAX_JSON_DEPTH} levels", code="malformed_json")
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8", code="malformed_json") from exc
    except (json.JSONDecodeError, ValueError) as exc:
        raise error(f"{what} is not valid JSON: {exc}", code="malformed_json") from exc


# schema -------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _schema_validator() -> Any:
    from jsonschema import Draft7Validator

    text = resources.files("tracemark_common.schemas").joinpath(SCHEMA_RESOURCE).read_text()
    schema = json.loads(text)
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def validate_evidence(evidence: object) -> dict[str, Any]:
    if not isinstance(evidence, dict):
        raise Unprocessable("predicate.evidence must be an object (the evidence envelope)", code="invalid_evidence")
    kind = evidence.get("chainloop.material.evidence.id")
    if kind != EVIDENCE_KIND:
        raise Unprocessable(
            f"evidence kind must be {EVIDENCE_KIND!r} (key 'chainloop.material.evidence.id'), got {kind!r}",
            code="invalid_evidence",
        )
    data = evidence.get("data")
    from jsonschema.exceptions import best_match

    error = best_match(_schema_validator().iter_errors(data))
    if error is not None:
        where = "data" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
        message = error.message if len(error.message) < 300 else error.message[:300] + "..."
        raise Unprocessable(f"evidence does not match the 0.1 schema at {where}: {message}", code="schema_violation")
    return evidence


# helpers ------------------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise Unprocessable(f"{what} must be an ISO-8601 timestamp", code="invalid_evidence")
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError as exc:
        raise Unprocessable(f"{what} is not an ISO-8601 timestamp: {value!r}", code="invalid_evidence") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return min(max(value, 0), MAX_NUMBER)


def _int(value: object) -> int:
    return int(_number(value))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _shas(value: object, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(s, str) and SHA.match(s) for s in items):
        raise Unprocessable(f"{what} must be a commit sha or a list of them (lowercase hex)", code="invalid_evidence")
    return list(items)


# the statement --------------------------------------------------------------------------------------
def _statement(payload: bytes) -> dict[str, Any]:
    statement = strict_json(payload, "the DSSE payload (in-toto statement)", Unprocessable)
    if not isinstance(statement, dict):
        raise Unprocessable("the in-toto statement must be a JSON object", code="invalid_statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise Unprocessable(f"statement _type must be {STATEMENT_TYPE!r}", code="invalid_statement")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise Unprocessable(f"statement predicateType must be {PREDICATE_TYPE!r}", code="invalid_statement")
    if not isinstance(statement.get("predicate"), dict):
        raise Unprocessable("statement predicate must be an object", code="invalid_statement")
    return statement


def _subjects(statement: Mapping[str, Any]) -> list[str]:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise Unprocessable("the statement has no subjects; expected one per commit", code="invalid_statement")
    if len(subjects) > MAX_SUBJECTS:
        raise Unprocessable(f"the statement has more than {MAX_SUBJECTS} subjects", code="invalid_statement")
    shas: list[str] = []
    for index, subject in enumerate(subjects):
        digest = subject.get("digest") if isinstance(subject, dict) else None
        sha = digest.get("gitCommit") if isinstance(digest, dict) else None
        if not isinstance(sha, str) or not SHA.match(sha) or subject.get("name") != sha:
            raise Unprocessable(
                f'subject[{index}] must be {{"name": <sha>, "digest": {{"gitCommit": <sha>}}}} '
                "with a lowercase hex commit sha",
                code="invalid_statement",
            )
        shas.append(sha)
    return list(dict.fromkeys(shas))


def _transcript(predicate: Mapping[str, Any]) -> dict[str, Any] | None:
    value = predicate.get("transcript")
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("sha256"), str)
        or not SHA256.match(value["sha256"])
        or isinstance(value.get("size"), bool)
        or not isinstance(value.get("size"), int)
        or not 0 <= value["size"] <= MAX_TRANSCRIPT_BYTES
    ):
        raise Unprocessable(
            'predicate.transcript must be {"sha256": <64 hex>, "size": <bytes>}', code="invalid_statement"
        )
    return {"sha256": value["sha256"], "size": value["size"]}


def parse_attestation(org: str, envelope: Mapping[str, Any], verified: dsse.Verified) -> ParsedAttestation:
    """Everything checkable without storage: statement, evidence, org, commits."""
    statement = _statement(verified.payload)
    subjects = _subjects(statement)
    predicate: dict[str, Any] = statement["predicate"]
    organization = predicate.get("organization", "")
    if not isinstance(organization, str):
        raise Unprocessable("predicate.organization must be a string", code="invalid_statement")
    # Empty or absent: the CLI did not know it; the organisation is the token's anyway.
    if organization and organization != org:
        raise Conflict(
            f"the attestation is for organisation {organization!r} but the token belongs to {org!r}",
            code="org_mismatch",
        )
    project = predicate.get("project")
    if not isinstance(project, str) or not PROJECT_NAME.match(project):
        raise Unprocessable("predicate.project must name a project", code="invalid_statement")
    evidence = validate_evidence(predicate.get("evidence"))
    data: dict[str, Any] = evidence["data"]
    session_id = data["session"]["id"]
    if not SESSION_ID.match(session_id):
        raise Unprocessable(
            "data.session.id must be 1-128 characters of letters, digits, '_' or '-'", code="invalid_evidence"
        )
    started = parse_time(data["session"]["started_at"], "data.session.started_at")
    if "ended_at" in data["session"]:
        ended = parse_time(data["session"]["ended_at"], "data.session.ended_at")
    else:
        ended = started + timedelta(seconds=min(int(data["session"]["duration_seconds"]), 10**8))
    if ended < started:
        raise Unprocessable("data.session.ended_at is before started_at", code="invalid_evidence")

    git_context = _dict(data.get("git_context"))
    raw_entries = git_context.get("tracemark_commits")
    entries: list[dict[str, Any]] = []
    rewritten: dict[str, list[str]] = {}
    if raw_entries is not None:
        if not isinstance(raw_entries, list) or not all(isinstance(e, dict) for e in raw_entries):
            raise Unprocessable("git_context.tracemark_commits must be a list of objects", code="invalid_evidence")
        for index, entry in enumerate(raw_entries):
            sha = entry.get("sha")
            if not isinstance(sha, str) or not SHA.match(sha):
                raise Unprocessable(
                    f"git_context.tracemark_commits[{index}].sha must be a lowercase hex commit sha",
                    code="invalid_evidence",
                )
            if sha not in subjects:
                raise Unprocessable(
                    f"commit {sha} is in git_context.tracemark_commits but not a subject of the statement",
                    code="invalid_statement",
                )
            olds = _shas(entry.get("rewritten_from"), f"git_context.tracemark_commits[{index}].rewritten_from")
            if olds:
                rewritten[sha] = sorted({*rewritten.get(sha, []), *olds})
            entries.append(entry)
    commits = [e["sha"] for e in entries] if entries else subjects
    commits = list(dict.fromkeys(c for c in commits if c not in {o for olds in rewritten.values() for o in olds}))
    actor = predicate.get("actor_unverified", predicate.get("actor"))
    return ParsedAttestation(
        digest=dsse.envelope_digest(envelope),
        keyid=verified.keyid,
        canonical=json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode(),
        session_id=session_id,
        project=project,
        evidence=evidence,
        commits=commits,
        rewritten_from=rewritten,
        commit_entries=entries,
        started_at=started,
        ended_at=ended,
        transcript=_transcript(predicate),
        actor_unverified=actor[:320] if isinstance(actor, str) and actor else None,
        agent=str(data["agent"]["name"])[:100],
    )


# facts: what the rollups and lists need -----------------------------------------------------------
def _commit_lines(entry: Mapping[str, Any]) -> dict[str, int]:
    if any(k in entry for k in ("lines_added", "lines_removed")):
        return {
            "lines_added": _int(entry.get("lines_added")),
            "lines_removed": _int(entry.get("lines_removed")),
            "ai_lines_added": _int(entry.get("ai_lines_added")),
            "ai_lines_removed": _int(entry.get("ai_lines_removed")),
        }
    lines = {"lines_added": 0, "lines_removed": 0, "ai_lines_added": 0, "ai_lines_removed": 0}
    files = entry.get("files")
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict):
            continue
        added, removed = _int(item.get("lines_added")), _int(item.get("lines_removed"))
        lines["lines_added"] += added
        lines["lines_removed"] += removed
        if "tracemark_ai_lines_added" in item or "ai_lines_added" in item:
            lines["ai_lines_added"] += _int(item.get("tracemark_ai_lines_added", item.get("ai_lines_added")))
            lines["ai_lines_removed"] += _int(item.get("tracemark_ai_lines_removed", item.get("ai_lines_removed")))
        elif item.get("tracemark_attribution", item.get("attribution")) == "ai":
            lines["ai_lines_added"] += added
            lines["ai_lines_removed"] += removed
    return lines


def evidence_facts(parsed: ParsedAttestation) -> _Facts:
    data = parsed.evidence["data"]
    usage = _dict(data.get("usage"))
    model = _dict(data.get("model"))
    facts = _Facts()
    by_model = _dict(usage.get("by_model"))
    for name, raw_counts in list(by_model.items())[:100]:
        counts = _dict(raw_counts)
        input_tokens, output_tokens = _int(counts.get("input_tokens")), _int(counts.get("output_tokens"))
        total = _int(counts.get("total_tokens")) or input_tokens + output_tokens
        facts.models[str(name)[:200]] = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": total,
            "cost_usd": float(_number(counts.get("estimated_cost_usd"))),
            # no price for a model that used tokens: its cost is unknown, never a silent $0
            "priced": not (counts.get("estimated_cost_usd") is None and total > 0),
        }
    input_tokens, output_tokens = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    unpriced_names = usage.get("unpriced_models")
    for name in unpriced_names if isinstance(unpriced_names, list) else []:
        if isinstance(name, str) and name[:200] in facts.models:
            facts.models[name[:200]]["priced"] = False
    cost = float(_number(usage.get("estimated_cost_usd"))) or sum(m["cost_usd"] for m in facts.models.values())
    facts.usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": _int(usage.get("total_tokens")) or input_tokens + output_tokens,
        "cost_usd": round(cost, 6),
        "unpriced": any(not m["priced"] for m in facts.models.values())
        or bool(isinstance(unpriced_names, list) and unpriced_names),
    }
    if not facts.models:
        primary = model.get("primary")
        if isinstance(primary, str) and primary:
            facts.models[primary[:200]] = dict(facts.usage)
    used = model.get("models_used")
    for name in used[:100] if isinstance(used, list) else []:
        if isinstance(name, str) and name:
            facts.models.setdefault(
                name[:200], {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0}
            )
    if parsed.commit_entries:
        for entry in parsed.commit_entries:
            if entry["sha"] in parsed.commits:
                facts.commit_lines[entry["sha"]] = _commit_lines(entry)
    else:
        changes = _dict(data.get("code_changes"))
        for index, sha in enumerate(parsed.commits):
            facts.commit_lines[sha] = (
                {
                    "lines_added": _int(changes.get("lines_added")),
                    "lines_removed": _int(changes.get("lines_removed")),
                    "ai_lines_added": _int(changes.get("ai_lines_added")),
                    "ai_lines_removed": _int(changes.get("ai_lines_removed")),
                }
                if index == 0
                else {"lines_added": 0, "lines_removed": 0, "ai_lines_added": 0, "ai_lines_removed": 0}
            )
    return facts


def session_facts(record: SessionRecord) -> SessionFacts:
    """The rollup writer's view of a stored session."""
    facts = record.facts
    usage = _dict(facts.get("usage"))
    return SessionFacts(
        org=record.org,
        project=record.project,
        session_id=record.id,
        user=record.user,
        user_kind=record.user_kind,
        at=parse_time(record.at, "at"),
        models={
            name: ModelUsage(
                input_tokens=_int(m.get("input_tokens")),
                output_tokens=_int(m.get("output_tokens")),
                total_tokens=_int(m.get("total_tokens")),
                cost_usd=float(_number(m.get("cost_usd"))),
                priced=m.get("priced") is not False,
            )
            for name, m in _dict(facts.get("models")).items()
        },
        unpriced=usage.get("unpriced") is True,
        total_tokens=_int(usage.get("total_tokens")),
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cost_usd=float(_number(usage.get("cost_usd"))),
        commits={
            sha: CommitLines(**{k: _int(v) for k, v in _dict(lines).items() if k in CommitLines.__dataclass_fields__})
            for sha, lines in _dict(facts.get("commit_lines")).items()
            if sha in record.commits
        },
    )


# merging ------------------------------------------------------------------------------------------
def merge_policy_results(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per policy: violations are the union over all attestations; fail beats neutral beats
    pass/skipped; gated if any attestation's attachment was gated."""
    rank = {"fail": 3, "neutral": 2, "pass": 1, "skipped": 0}
    merged: dict[str, dict[str, Any]] = {}
    for result in [*old, *new]:
        name = str(result.get("policy", result.get("name", "")))
        current = merged.get(name)
        if current is None:
            merged[name] = copy.deepcopy(dict(result))
            merged[name]["violations"] = list(result.get("violations") or [])
            continue
        violations = current["violations"]
        for violation in result.get("violations") or []:
            if violation not in violations:
                violations.append(violation)
        status_new, status_old = str(result.get("status")), str(current.get("status"))
        if rank.get(status_new, 0) > rank.get(status_old, 0):
            current["status"] = status_new
            if "reason" in result:
                current["reason"] = result["reason"]
        current["gate"] = bool(current.get("gate")) or bool(result.get("gate"))
    return list(merged.values())


def _gated(results: Sequence[Mapping[str, Any]]) -> bool:
    return any(r.get("status") == "fail" and r.get("gate") for r in results)


def _summary(evidence: Mapping[str, Any], facts: _Facts | Mapping[str, Any], commits: Sequence[str]) -> dict[str, Any]:
    data = _dict(evidence.get("data"))
    changes = _dict(data.get("code_changes"))
    model = _dict(data.get("model"))
    usage = facts.usage if isinstance(facts, _Facts) else _dict(facts.get("usage"))
    models = facts.models if isinstance(facts, _Facts) else _dict(facts.get("models"))
    return {
        "model": model.get("primary") if isinstance(model.get("primary"), str) else None,
        "models": sorted(models),
        "total_tokens": usage.get("total_tokens", 0),
        "cost_usd": usage.get("cost_usd", 0.0),
        "lines_added": _int(changes.get("lines_added")),
        "lines_removed": _int(changes.get("lines_removed")),
        "ai_lines_added": _int(changes.get("ai_lines_added")),
        "ai_lines_removed": _int(changes.get("ai_lines_removed")),
        "commit_count": len(commits),
        "repository": _dict(data.get("git_context")).get("repository"),
        "branch": _dict(data.get("git_context")).get("branch"),
    }


def _clamp(ended: datetime, started: datetime, received: datetime) -> datetime:
    return max(started, min(ended, received)) if started <= received else received


def merge_session(
    current: SessionRecord | None,
    current_evidence: Mapping[str, Any],
    parsed: ParsedAttestation,
    *,
    principal: Principal,
    received_at: datetime,
    policy_results: list[dict[str, Any]],
) -> tuple[SessionRecord, dict[str, Any]]:
    """The session after this attestation, and its merged evidence envelope (SPEC §3.2)."""
    new_facts = evidence_facts(parsed)
    if current is None:
        evidence = copy.deepcopy(parsed.evidence)
        record = SessionRecord(
            id=parsed.session_id,
            org=principal.org or "",
            project=parsed.project,
            user=principal.sub,
            user_kind="service" if principal.kind == "service" else "user",
            agent=parsed.agent,
            started_at=iso(parsed.started_at),
            ended_at=iso(parsed.ended_at),
            at=iso(_clamp(parsed.ended_at, parsed.started_at, received_at)),
            received_at=iso(received_at),
            last_received_at=iso(received_at),
            commits=list(parsed.commits),
            rewritten_from=copy.deepcopy(parsed.rewritten_from),
            digests=[parsed.digest],
            policy_results=merge_policy_results([], policy_results),
            gated=False,
            evidence_key="",
            summary={},
            facts={"models": new_facts.models, "usage": new_facts.usage, "commit_lines": new_facts.commit_lines},
            actor_unverified=parsed.actor_unverified,
        )
        record.gated = _gated(record.policy_results)
        record.summary = _summary(evidence, new_facts, record.commits)
        return record, evidence

    record = copy.deepcopy(current)
    latest = parsed.ended_at >= parse_time(current.ended_at, "ended_at")
    rewritten = copy.deepcopy(current.rewritten_from)
    for sha, olds in parsed.rewritten_from.items():
        rewritten[sha] = sorted({*rewritten.get(sha, []), *olds})
    gone = {old for olds in rewritten.values() for old in olds}
    commits = [c for c in dict.fromkeys([*current.commits, *parsed.commits]) if c not in gone]

    old_lines = _dict(current.facts.get("commit_lines"))
    lines = {**old_lines, **new_facts.commit_lines} if latest else {**new_facts.commit_lines, **old_lines}
    record.facts = {
        "models": new_facts.models if latest else current.facts.get("models", {}),
        "usage": new_facts.usage if latest else current.facts.get("usage", {}),
        "commit_lines": {sha: lines[sha] for sha in commits if sha in lines},
    }
    base = copy.deepcopy(parsed.evidence if latest or not current_evidence else dict(current_evidence))
    old_entries = _dict(_dict(current_evidence.get("data")).get("git_context")).get("tracemark_commits")
    entries: dict[str, Any] = {}
    ordered = (
        [*(old_entries or []), *parsed.commit_entries] if latest else [*parsed.commit_entries, *(old_entries or [])]
    )
    for entry in ordered:
        if isinstance(entry, dict) and isinstance(entry.get("sha"), str) and entry["sha"] not in gone:
            entries[entry["sha"]] = entry
    if entries:
        data = base.setdefault("data", {})
        git_context = data.get("git_context") if isinstance(data.get("git_context"), dict) else {}
        git_context["tracemark_commits"] = list(entries.values())
        data["git_context"] = git_context

    started = min(parsed.started_at, parse_time(current.started_at, "started_at"))
    record.started_at = iso(started)
    if latest:
        record.ended_at = iso(parsed.ended_at)
        record.last_received_at = iso(received_at)
        record.agent = parsed.agent
        record.actor_unverified = parsed.actor_unverified or record.actor_unverified
    record.at = iso(
        _clamp(parse_time(record.ended_at, "ended_at"), started, parse_time(record.last_received_at, "received"))
    )
    record.commits = commits
    record.rewritten_from = rewritten
    record.digests = [*current.digests, parsed.digest]
    record.policy_results = merge_policy_results(current.policy_results, policy_results)
    record.gated = _gated(record.policy_results)
    record.summary = _summary(base, record.facts, commits)
    return record, base


# ingest -------------------------------------------------------------------------------------------
def _trusted_keys(store: AppStore, org: str, sub: str, envelope: Mapping[str, Any]) -> dict[str, dsse.PublicKey]:
    raw = envelope.get("signatures")
    if isinstance(raw, list) and len(raw) > MAX_SIGNATURES:
        raise Unprocessable(f"the envelope has more than {MAX_SIGNATURES} signatures", code="invalid_envelope")
    try:
        _, _, signatures = dsse.parse_envelope(envelope)
    except dsse.DsseError as exc:
        raise Unprocessable(f"not a DSSE envelope: {exc}", code="invalid_envelope") from exc
    keys = store.keys_for_subject(org, sub)
    revoked_tokens: dict[str, bool] = {}

    def active(key_token: str) -> bool:
        if key_token not in revoked_tokens:
            token = store.get_token(org, key_token)
            revoked_tokens[key_token] = token is None or bool(token.revoked_at)
        return not revoked_tokens[key_token]

    trusted: dict[str, dsse.PublicKey] = {}
    revoked: set[str] = set()
    for key in keys:
        if key.revoked_at or not active(key.token_id):
            revoked.add(key.keyid)
            continue
        try:
            trusted[key.keyid] = dsse.load_public_key_pem(key.pem)
        except dsse.DsseError:
            continue
    named = {kid for kid, _ in signatures if kid}
    if named and not named & set(trusted):
        if named & revoked:
            raise Unprocessable(
                "the signing key has been revoked (or the token that registered it was); register a new key",
                code="key_revoked",
            )
        raise Unprocessable(
            f"unknown signing key {sorted(named)[0][:64]!r}: it is not registered to {sub!r} in {org!r}; "
            "register it with POST /v1/keys (tracemark auth login does)",
            code="unknown_key",
        )
    if not trusted:
        raise Unprocessable(
            f"{sub!r} has no registered signing key; register one with POST /v1/keys", code="unknown_key"
        )
    return trusted


def _parse_envelope(envelope: bytes | Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    if isinstance(envelope, bytes | bytearray):
        if len(envelope) > max_bytes:
            raise PayloadTooLarge(
                f"the envelope is {len(envelope)} bytes; the limit is {max_bytes} bytes "
                "(send larger ones through POST /v1/uploads)"
            )
        value = strict_json(bytes(envelope), "the DSSE envelope")
    else:
        value = dict(envelope)
    if not isinstance(value, dict):
        raise BadRequest("the DSSE envelope must be a JSON object", code="malformed_json")
    if value.get("payloadType") != dsse.INTOTO_PAYLOAD_TYPE:
        raise Unprocessable(
            f"payloadType must be {dsse.INTOTO_PAYLOAD_TYPE!r}, got {str(value.get('payloadType'))[:100]!r}",
            code="unsupported_payload_type",
        )
    return value


def session_url(base_url: str, session_id: str) -> str:
    return f"{base_url.rstrip('/')}/v1/sessions/{session_id}"


def _find_transcript(
    org: str, parsed: ParsedAttestation, blobs: BlobStore
) -> tuple[dict[str, Any] | None, bytes | None]:
    """The transcript named by `predicate.transcript` (uploaded first with POST /v1/uploads, kind
    transcript), checked by sha256 and size: (reference, bytes still to move into place)."""
    if parsed.transcript is None:
        return None, None
    sha, size = parsed.transcript["sha256"], parsed.transcript["size"]
    final_key = f"transcripts/{org}/{sha}.jsonl.gz"
    if blobs.size(final_key) == size:
        return {"sha256": sha, "size": size, "key": final_key}, None
    data = blobs.get(transcript_upload_key(org, sha), max_bytes=MAX_TRANSCRIPT_BYTES)
    if data is None:
        return {"sha256": sha, "size": size, "key": None}, None
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        raise Unprocessable(
            "the uploaded transcript does not match predicate.transcript (sha256 and size)", code="transcript_mismatch"
        )
    return {"sha256": sha, "size": size, "key": final_key}, data


def transcript_upload_key(org: str, sha256: str) -> str:
    return f"uploads/{org}/transcripts/{sha256}"


def _first_writes(
    store: AppStore,
    blobs: BlobStore,
    org: str,
    parsed: ParsedAttestation,
    *,
    envelope_key: str,
    transcript: tuple[dict[str, Any] | None, bytes | None],
) -> None:
    blobs.put(envelope_key, parsed.canonical)
    reference, data = transcript
    if reference is not None and data is not None:
        blobs.put(str(reference["key"]), data, content_type="application/gzip")
        blobs.delete(transcript_upload_key(org, str(reference["sha256"])))
    index = [*parsed.commits, *(old for olds in parsed.rewritten_from.values() for old in olds)]
    store.put_commit_index(org, parsed.session_id, index)


def _check_record_size(record: SessionRecord) -> None:
    size = len(json.dumps(dataclasses.asdict(record) | {"evidence": None}, separators=(",", ":")))
    if size > MAX_SESSION_RECORD_BYTES:
        raise Unprocessable(
            f"session {record.id!r} would grow to {size} bytes of index data ({len(record.commits)} commits, "
            f"{len(record.digests)} attestations); the limit is {MAX_SESSION_RECORD_BYTES}",
            code="session_too_large",
        )


def _check_mergeable(current: SessionRecord | None, principal: Principal, parsed: ParsedAttestation) -> None:
    if current is not None and current.user != principal.sub:
        raise Conflict(
            f"session {parsed.session_id!r} was pushed by another identity; it cannot be merged",
            code="session_owner_mismatch",
        )
    if current is not None and current.project != parsed.project:
        raise Conflict(
            f"session {parsed.session_id!r} belongs to project {current.project!r}, not {parsed.project!r}",
            code="project_mismatch",
        )


def _evaluate_policies(
    store: AppStore, org: str, contract_yaml: str | None, parsed: ParsedAttestation, evaluator: PolicyEvaluator
) -> list[dict[str, Any]]:
    org_record = store.get_org(org)
    gate_default = bool(org_record.settings.get("gate_default")) if org_record else False
    policies = {p.name: p.text for p in store.list_policies(org)}
    try:
        report = evaluator(contract_yaml, policies, gate_default, copy.deepcopy(parsed.evidence))
        return [dict(r) for r in report.results]
    except Exception as exc:  # a policy engine failure never fails the push, and never passes
        logger.exception("policy evaluation failed")
        return [
            {
                "policy": "contract",
                "status": "neutral",
                "violations": [],
                "gate": False,
                "reason": f"error: {exc}"[:300],
            }
        ]


def ingest_attestation(
    principal: Principal,
    envelope: bytes | Mapping[str, Any],
    received_at: datetime,
    *,
    store: AppStore,
    blobs: BlobStore,
    policy_evaluator: PolicyEvaluator,
    rollup_writer: RollupWriterLike,
    base_url: str = "",
    max_bytes: int = MAX_ENVELOPE_BYTES,
    after_commit: Callable[[str, str, str], object] | None = None,
) -> IngestResult:
    """Ingest one DSSE envelope for `principal` (module docstring). `after_commit(org, session_id,
    digest)` runs once a new attestation is stored (the PR workflow re-correlates open PRs); its
    failures are logged, never returned."""
    org = require_scope(principal, "push")
    received_at = received_at.astimezone(UTC)
    value = _parse_envelope(envelope, max_bytes)
    trusted = _trusted_keys(store, org, principal.sub, value)
    try:
        verified = dsse.verify(value, trusted)
    except dsse.DsseError as exc:
        raise Unprocessable(
            f"the DSSE signature does not verify with {principal.sub!r}'s registered keys: {exc}",
            code="bad_signature",
        ) from exc
    digest = dsse.envelope_digest(value)
    stored = store.get_attestation(org, digest)
    if stored is not None:
        return _replay(store, org, stored, rollup_writer)
    parsed = parse_attestation(org, value, verified)
    project = store.get_project(org, parsed.project)
    if project is None:
        raise NotFound(
            f"project {parsed.project!r} does not exist in {org!r}; an org admin creates it with POST /v1/projects",
            code="unknown_project",
        )
    _check_mergeable(store.get_session(org, parsed.session_id), principal, parsed)  # before any write
    new_results = _evaluate_policies(store, org, project.contract_yaml, parsed, policy_evaluator)
    transcript, transcript_bytes = _find_transcript(org, parsed, blobs)
    envelope_key = f"envelopes/{digest}.json"
    first_writes_done = False
    for attempt in range(_SESSION_WRITE_ATTEMPTS):
        current = store.get_session(org, parsed.session_id)
        if attempt or (current is not None and digest in current.digests):
            stored = store.get_attestation(org, digest)  # lost a race to the same envelope?
            if stored is not None:
                return IngestResult(200, stored.result)
        _check_mergeable(current, principal, parsed)
        current_evidence = _current_evidence(store, blobs, current)
        if current_evidence is None:
            continue  # replaced (and its old evidence deleted) while we read it: merge again
        record, merged = merge_session(
            current, current_evidence, parsed, principal=principal, received_at=received_at, policy_results=new_results
        )
        if transcript is not None:
            record.transcript = transcript
        _check_record_size(record)
        if not first_writes_done:  # every check has passed: the first writes (content-addressed, idempotent)
            _first_writes(
                store, blobs, org, parsed, envelope_key=envelope_key, transcript=(transcript, transcript_bytes)
            )
            first_writes_done = True
        record.score = _session_score(record, merged)
        record.evidence_key = _put_evidence(blobs, org, merged)
        body = {
            "digest": digest,
            "sessions": [{"id": record.id, "url": session_url(base_url, record.id)}],
            "policy_results": record.policy_results,
            "gated": record.gated,
        }
        attestation = AttestationRecord(
            org=org,
            digest=digest,
            session_ids=[record.id],
            sub=principal.sub,
            keyid=parsed.keyid,
            received_at=iso(received_at),
            envelope_key=envelope_key,
            result=body,
            policy_results=new_results,
        )
        try:
            store.commit_ingest(attestation, [SessionCommit(record, None if current is None else current.version)])
        except AlreadyIngested:
            winner = store.get_attestation(org, digest)
            if winner is None:  # erased in between
                raise Unavailable("the attestation changed while it was stored; retry") from None
            return IngestResult(200, winner.result)
        except StaleSession:
            continue
        if current is not None and current.evidence_key and current.evidence_key != record.evidence_key:
            _delete_quietly(blobs, current.evidence_key)
        before = session_facts(current) if current is not None else None
        record.version = 0 if current is None else current.version + 1
        _record_rollups(rollup_writer, before, session_facts(record), sweep=True)
        if after_commit is not None:
            try:
                after_commit(org, record.id, digest)
            except Exception:  # the attestation is stored; PR updates catch up on the next event
                logger.exception("re-correlating pull requests failed", extra={"session": record.id})
        return IngestResult(201, body)
    raise Unavailable(f"session {parsed.session_id!r} is being updated concurrently; retry")


def _put_evidence(blobs: BlobStore, org: str, merged: dict[str, Any]) -> str:
    """Store a session's merged evidence, content-addressed; its key."""
    data = json.dumps(merged, sort_keys=True, separators=(",", ":")).encode()
    key = f"evidence/{org}/{hashlib.sha256(data).hexdigest()}.json"
    blobs.put(key, data)
    return key


def _current_evidence(store: AppStore, blobs: BlobStore, current: SessionRecord | None) -> dict[str, Any] | None:
    """The stored session's merged evidence; None when the session changed while it was read.
    Merging with nothing would silently drop the session's earlier evidence, so an evidence
    object that cannot be read is a retryable error."""
    if current is None:
        return {}
    evidence = load_evidence(current, blobs)
    if evidence or not current.evidence_key:
        return evidence
    again = store.get_session(current.org, current.id)
    if again is None or again.version != current.version:
        return None
    raise Unavailable(f"the stored evidence of session {current.id!r} could not be read; retry")


def _delete_quietly(blobs: BlobStore, key: str) -> None:
    """Clean-up after the commit: the attestation is stored, so a failure here is only logged (an
    orphan object is harmless; turning a stored push into an error would skip its rollups)."""
    try:
        blobs.delete(key)
    except Exception:
        logger.warning("could not delete a superseded object", extra={"key": key}, exc_info=True)


def _session_score(record: SessionRecord, evidence: dict[str, Any]) -> dict[str, Any] | None:
    """The AI Session Score over all the session's commits, so `GET /v1/sessions/{id}` has one before
    any pull request correlates it (the PR workflow then stores the PR-scoped score)."""
    from tracemark_common.prs.correlate import session_score

    try:
        return session_score(dataclasses.replace(record, evidence=evidence))
    except Exception:  # a scoring bug must not lose an attestation
        logger.exception("scoring failed", extra={"session": record.id})
        return record.score


def _record_rollups(
    writer: RollupWriterLike, before: SessionFacts | None, after: SessionFacts | None, *, sweep: bool = False
) -> None:
    facts = after or before
    try:
        writer.record_session(before, after)
    except Exception:  # the session is stored; a rollup failure must not turn it into a retry
        logger.exception("rollup update failed", extra={"session": facts.session_id if facts else None})
    if sweep and facts is not None:
        _sweep_rollups(writer, facts.org)


def _replay(store: AppStore, org: str, stored: AttestationRecord, writer: RollupWriterLike) -> IngestResult:
    """A retried push: the stored answer. If the first push died after storing the session, its
    rollups catch up here (the session's rollup ledger makes this a no-op when they are complete)."""
    for session_id in stored.session_ids:
        record = store.get_session(org, session_id)
        if record is not None:
            _record_rollups(writer, None, session_facts(record))
    return IngestResult(200, stored.result)


def _sweep_rollups(writer: RollupWriterLike, org: str) -> None:
    """Complete the organisation's rollup updates that died part-way (rollups.ledger)."""
    try:
        completed = writer.complete_pending(org)
    except Exception:
        logger.exception("completing pending rollup updates failed", extra={"org": org})
        return
    if completed:
        logger.warning("completed interrupted rollup updates", extra={"org": org, "count": completed})


def erase_session(
    principal: Principal, session_id: str, *, store: AppStore, blobs: BlobStore, rollup_writer: RollupWriterLike
) -> None:
    """DELETE /v1/sessions/{id}: the session, its attestations, evidence and transcript go; the
    rollups move back."""
    org = require_org_admin(principal)
    for _ in range(_SESSION_WRITE_ATTEMPTS):
        record = store.get_session(org, session_id)
        if record is None:
            raise NotFound(f"session {session_id!r} does not exist", code="session_not_found")
        try:
            store.delete_session(record)
        except StaleSession:
            continue
        for digest in record.digests:
            blobs.delete(f"envelopes/{digest}.json")
        if record.evidence_key:
            blobs.delete(record.evidence_key)
        if record.transcript and record.transcript.get("key"):
            blobs.delete(str(record.transcript["key"]))
        _record_rollups(rollup_writer, session_facts(record), None)
        return
    raise Unavailable(f"session {session_id!r} is being updated concurrently; retry")
