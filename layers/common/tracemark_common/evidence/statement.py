"""The in-toto Statement v1 that carries one session's evidence, and its DSSE envelope (SPEC §2.6).

Statement: `_type` https://in-toto.io/Statement/v1, one subject per commit of the session
(`{"name": sha, "digest": {"gitCommit": sha}}`), predicateType
https://tracemark.dev/ai-coding-session/v1, predicate `{evidence, project, organization,
cli_version, transcript?: {sha256, size}}`. Signed with `tracemark_common.dsse` (payloadType
application/vnd.in-toto+json, standard base64), so any DSSE implementation can verify it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracemark_common import dsse
from tracemark_common.evidence.models import EvidenceError, validate_envelope

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://tracemark.dev/ai-coding-session/v1"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TranscriptRef:
    sha256: str
    size: int


def build_statement(
    evidence: Mapping[str, Any],
    commits: Sequence[str],
    *,
    project: str,
    organization: str | None,
    cli_version: str,
    transcript: TranscriptRef | None = None,
) -> dict[str, Any]:
    shas = list(dict.fromkeys(commits))
    if not shas:
        raise EvidenceError("an attestation needs at least one commit")
    bad = [sha for sha in shas if not _SHA.match(sha)]
    if bad:
        raise EvidenceError(f"not a full git commit id: {bad[0]!r}")
    predicate: dict[str, Any] = {
        "evidence": dict(evidence),
        "project": project,
        "organization": organization or "",
        "cli_version": cli_version,
    }
    if transcript is not None:
        predicate["transcript"] = {"sha256": transcript.sha256, "size": transcript.size}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": sha, "digest": {"gitCommit": sha}} for sha in shas],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, compact, UTF-8): the same statement always signs the same."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_statement(statement: Mapping[str, Any], key: dsse.PrivateKey) -> dict[str, Any]:
    return dsse.sign(statement_bytes(statement), key, dsse.INTOTO_PAYLOAD_TYPE)


def check_statement(statement: object, *, validate_evidence: bool = True) -> dict[str, Any]:
    """Raise EvidenceError unless `statement` is one of ours; returns it."""
    if not isinstance(statement, dict):
        raise EvidenceError("the statement must be a JSON object")
    problems: list[str] = []
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"_type must be {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"predicateType must be {PREDICATE_TYPE}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        problems.append("subject must be a non-empty list")
    else:
        for subject in subjects:
            digest = subject.get("digest") if isinstance(subject, dict) else None
            sha = digest.get("gitCommit") if isinstance(digest, dict) else None
            if not isinstance(sha, str) or not _SHA.match(sha) or subject.get("name") != sha:
                problems.append("each subject must be {name: <sha>, digest: {gitCommit: <sha>}}")
                break
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        problems.append("predicate must be an object")
    else:
        for key in ("project", "cli_version"):
            if not isinstance(predicate.get(key), str) or not predicate.get(key):
                problems.append(f"predicate.{key} must be a non-empty string")
        if "organization" in predicate and not isinstance(predicate["organization"], str):
            problems.append("predicate.organization must be a string")
        transcript = predicate.get("transcript")
        if transcript is not None and not (
            isinstance(transcript, dict)
            and isinstance(transcript.get("sha256"), str)
            and _SHA256.match(transcript["sha256"])
            and isinstance(transcript.get("size"), int)
            and transcript["size"] >= 0
        ):
            problems.append("predicate.transcript must be {sha256: <64 hex>, size: <bytes>}")
        if validate_evidence:
            try:
                validate_envelope(predicate.get("evidence"))
            except EvidenceError as exc:
                problems.extend(f"predicate.evidence: {p}" for p in exc.problems)
    if problems:
        raise EvidenceError("invalid statement: " + "; ".join(problems[:10]), problems)
    return statement


@dataclass(frozen=True)
class VerifiedAttestation:
    statement: dict[str, Any]
    keyid: str


def verify_attestation(envelope: object, trusted: Mapping[str, dsse.PublicKey]) -> VerifiedAttestation:
    """Verify the DSSE signature against trusted keys, then the statement. Raises
    dsse.DsseError (signature) or EvidenceError (content)."""
    verified = dsse.verify(envelope, trusted)
    if verified.payload_type != dsse.INTOTO_PAYLOAD_TYPE:
        raise EvidenceError(f"payloadType must be {dsse.INTOTO_PAYLOAD_TYPE}")
    try:
        statement = json.loads(verified.payload)
    except ValueError as exc:
        raise EvidenceError("the signed payload is not JSON") from exc
    return VerifiedAttestation(statement=check_statement(statement), keyid=verified.keyid)
