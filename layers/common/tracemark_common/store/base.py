"""The data-access interfaces: `AppStore` (the application table) and `BlobStore` (the evidence
bucket). Domain code depends on these Protocols; `store.dynamo` / `store.s3` implement them on
AWS and `store.memory` in memory (tests, and anyone who needs a fake).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracemark_common.store.records import (
    AttestationRecord,
    AuditRecord,
    KeyRecord,
    OrgRecord,
    PolicyRecord,
    ProjectRecord,
    SessionRecord,
    TokenRecord,
)


class AlreadyExists(Exception):
    """A conditional create found the item there already."""


class AlreadyIngested(Exception):
    """`commit_ingest` lost to an earlier write of the same attestation digest."""


class StaleSession(Exception):
    """A session changed since it was read (optimistic concurrency); read again and retry."""


@dataclass(frozen=True)
class SessionQuery:
    org: str
    since: str | None = None  # inclusive, compared with SessionRecord.at
    until: str | None = None  # exclusive
    project: str | None = None
    user: str | None = None
    limit: int = 50
    cursor: str | None = None  # opaque, from a previous page


@dataclass(frozen=True)
class SessionCommit:
    """One session write inside an ingest: the new record and the version it replaces
    (`None`: the session must not exist yet)."""

    record: SessionRecord
    expected_version: int | None


class AppStore(Protocol):
    # organisations and settings
    def create_org(self, org: OrgRecord) -> None: ...  # AlreadyExists
    def get_org(self, name: str) -> OrgRecord | None: ...
    def update_org_settings(self, name: str, settings: dict[str, Any]) -> OrgRecord: ...

    # projects and contracts
    def create_project(self, project: ProjectRecord) -> None: ...  # AlreadyExists
    def get_project(self, org: str, name: str) -> ProjectRecord | None: ...
    def set_project_contract(self, org: str, name: str, yaml_text: str, at: str, by: str) -> ProjectRecord: ...

    # tokens
    def put_token(self, token: TokenRecord) -> None: ...
    def get_token(self, org: str, token_id: str) -> TokenRecord | None: ...
    def revoke_token(self, org: str, token_id: str, at: str) -> TokenRecord | None: ...

    # signing keys
    def create_key(self, key: KeyRecord) -> None: ...  # AlreadyExists
    def get_key(self, org: str, keyid: str) -> KeyRecord | None: ...
    def keys_for_subject(self, org: str, subject: str) -> list[KeyRecord]: ...
    def keys_for_token(self, org: str, token_id: str) -> list[KeyRecord]: ...
    def revoke_key(self, org: str, keyid: str, at: str) -> KeyRecord | None: ...

    # org policies
    def put_policy(self, policy: PolicyRecord) -> None: ...
    def get_policy(self, org: str, name: str) -> PolicyRecord | None: ...
    def list_policies(self, org: str) -> list[PolicyRecord]: ...

    # audit trail
    def audit(self, record: AuditRecord) -> None: ...

    # attestations and sessions
    def get_attestation(self, org: str, digest: str) -> AttestationRecord | None: ...
    def get_session(self, org: str, session_id: str) -> SessionRecord | None: ...  # evidence not loaded
    def put_commit_index(self, org: str, session_id: str, shas: Sequence[str]) -> None: ...
    def commit_ingest(self, attestation: AttestationRecord, sessions: Sequence[SessionCommit]) -> None: ...
    def update_session(
        self, org: str, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None: ...
    def delete_session(self, record: SessionRecord) -> None: ...  # StaleSession
    def sessions_for_commit(self, org: str, sha: str) -> list[str]: ...
    def list_sessions(self, query: SessionQuery) -> tuple[list[SessionRecord], str | None]: ...


class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/json") -> None: ...
    def get(self, key: str, max_bytes: int | None = None) -> bytes | None: ...  # None: missing
    def size(self, key: str) -> int | None: ...
    def delete(self, key: str) -> None: ...
    def presign_put(self, key: str, expires_in: int, content_type: str) -> str: ...
    def presign_get(self, key: str, expires_in: int) -> str: ...
