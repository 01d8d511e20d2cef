"""Evidence documents and attestations shared by the CLI (build, sign) and the server (verify,
validate): the Chainloop-compatible evidence envelope and the in-toto statement around it."""

from __future__ import annotations

from tracemark_common.evidence.models import (
    EVIDENCE_ID,
    SCHEMA_URL,
    SCHEMA_VERSION,
    Agent,
    CodeChanges,
    EvidenceData,
    EvidenceEnvelope,
    EvidenceError,
    FileChange,
    FileStatus,
    LineRange,
    Session,
    load_schema,
    validate_envelope,
)
from tracemark_common.evidence.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    TranscriptRef,
    VerifiedAttestation,
    build_statement,
    check_statement,
    sign_statement,
    statement_bytes,
    verify_attestation,
)

__all__ = [
    "EVIDENCE_ID",
    "PREDICATE_TYPE",
    "SCHEMA_URL",
    "SCHEMA_VERSION",
    "STATEMENT_TYPE",
    "Agent",
    "CodeChanges",
    "EvidenceData",
    "EvidenceEnvelope",
    "EvidenceError",
    "FileChange",
    "FileStatus",
    "LineRange",
    "Session",
    "TranscriptRef",
    "VerifiedAttestation",
    "build_statement",
    "check_statement",
    "load_schema",
    "sign_statement",
    "statement_bytes",
    "validate_envelope",
    "verify_attestation",
]
