"""What the application table holds, as plain data (no AWS): one dataclass per entity.

The DynamoDB adapter (`store.dynamo`) and the in-memory fake (`store.memory`) both speak these.
Times are ISO-8601 UTC strings (`...Z`) unless a name says `epoch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OrgRecord:
    name: str
    created_at: str
    created_by: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. {"gate_default": true}


@dataclass
class ProjectRecord:
    org: str
    name: str
    created_at: str
    created_by: str = ""
    contract_yaml: str | None = None
    contract_updated_at: str | None = None
    contract_updated_by: str | None = None


@dataclass
class TokenRecord:
    """A minted token (the JWT itself is never stored; `id` is its `jti`)."""

    org: str
    id: str
    sub: str
    kind: str  # "user" | "service"
    role: str  # "org_admin" | "member" | "service"
    scopes: list[str]
    created_at: str
    expires_at_epoch: int
    created_by: str = ""
    can_register_keys: bool = False
    revoked_at: str | None = None


@dataclass
class KeyRecord:
    org: str
    keyid: str
    pem: str
    subject: str
    token_id: str
    created_at: str
    revoked_at: str | None = None


@dataclass
class PolicyRecord:
    org: str
    name: str
    text: str
    updated_at: str
    updated_by: str = ""


@dataclass
class AttestationRecord:
    """One accepted DSSE envelope (content address `digest`) and the response it got."""

    org: str
    digest: str
    session_ids: list[str]
    sub: str
    keyid: str
    received_at: str
    envelope_key: str
    result: dict[str, Any]  # the 201 body, returned again (200) on a replay
    policy_results: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SessionRecord:
    """A session after merging all its attestations (SPEC §3.2).

    `evidence` is the merged evidence envelope; list queries leave it empty (`{}`) and
    `get_session` loads it from S3 (`evidence_key`).
    """

    id: str
    org: str
    project: str
    user: str  # the pushing token's `sub`
    user_kind: str  # "user" | "service"
    agent: str
    started_at: str
    ended_at: str
    at: str  # ended_at clamped to [started_at, received], the session's time on the dashboard
    received_at: str  # first attestation
    last_received_at: str  # the attestation whose evidence is current (latest ended_at)
    commits: list[str]
    rewritten_from: dict[str, list[str]]  # new sha -> the shas it replaced (amend / rebase)
    digests: list[str]  # attestations merged into this session, in arrival order
    policy_results: list[dict[str, Any]]
    gated: bool
    evidence_key: str
    summary: dict[str, Any]  # what lists show: tokens, cost, models, lines
    facts: dict[str, Any]  # what the rollups need (models usage, per-commit lines)
    actor_unverified: str | None = None  # git user.email at push, display only
    transcript: dict[str, Any] | None = None  # {"sha256", "size", "key"|None}
    score: dict[str, Any] | None = None
    prs: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditRecord:
    org: str
    at: str
    action: str
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)
