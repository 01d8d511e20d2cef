"""In-memory `AppStore` and `BlobStore`: the same behaviour as the AWS adapters (conditional
creates, optimistic session versions, atomic ingest commits, org-scoped cursors), for unit tests.
Thread-safe, so concurrent-ingest tests can race on it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from tracemark_common.errors import BadRequest, PayloadTooLarge
from tracemark_common.store.base import (
    AlreadyExists,
    AlreadyIngested,
    SessionCommit,
    SessionQuery,
    StaleSession,
)
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


def encode_cursor(position: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str, fields: Sequence[str]) -> dict[str, str]:
    """A cursor is a base64 JSON object holding only sort positions (never an org or a key the
    caller could point at another tenant); anything else is a 400."""
    if len(cursor) > 2048:
        raise BadRequest("cursor is too long", code="bad_cursor")
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("cursor is not one this API returned", code="bad_cursor") from exc
    if not isinstance(value, dict) or sorted(value) != sorted(fields):
        raise BadRequest("cursor is not one this API returned", code="bad_cursor")
    if not all(isinstance(v, str) and v for v in value.values()):
        raise BadRequest("cursor is not one this API returned", code="bad_cursor")
    return {str(k): str(v) for k, v in value.items()}


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.orgs: dict[str, OrgRecord] = {}
        self.projects: dict[tuple[str, str], ProjectRecord] = {}
        self.tokens: dict[tuple[str, str], TokenRecord] = {}
        self.keys: dict[tuple[str, str], KeyRecord] = {}
        self.policies: dict[tuple[str, str], PolicyRecord] = {}
        self.audits: list[AuditRecord] = []
        self.attestations: dict[tuple[str, str], AttestationRecord] = {}
        self.sessions: dict[tuple[str, str], SessionRecord] = {}
        self.commit_index: dict[tuple[str, str], set[str]] = {}

    # organisations ------------------------------------------------------------------------
    def create_org(self, org: OrgRecord) -> None:
        with self._lock:
            if org.name in self.orgs:
                raise AlreadyExists(org.name)
            self.orgs[org.name] = copy.deepcopy(org)

    def get_org(self, name: str) -> OrgRecord | None:
        with self._lock:
            return copy.deepcopy(self.orgs.get(name))

    def update_org_settings(self, name: str, settings: dict[str, Any]) -> OrgRecord:
        with self._lock:
            org = self.orgs[name]
            org.settings.update(copy.deepcopy(settings))
            return copy.deepcopy(org)

    # projects -----------------------------------------------------------------------------
    def create_project(self, project: ProjectRecord) -> None:
        with self._lock:
            key = (project.org, project.name)
            if key in self.projects:
                raise AlreadyExists(project.name)
            self.projects[key] = copy.deepcopy(project)

    def get_project(self, org: str, name: str) -> ProjectRecord | None:
        with self._lock:
            return copy.deepcopy(self.projects.get((org, name)))

    def set_project_contract(self, org: str, name: str, yaml_text: str, at: str, by: str) -> ProjectRecord:
        with self._lock:
            project = self.projects[(org, name)]
            project.contract_yaml = yaml_text
            project.contract_updated_at = at
            project.contract_updated_by = by
            return copy.deepcopy(project)

    # tokens -------------------------------------------------------------------------------
    def put_token(self, token: TokenRecord) -> None:
        with self._lock:
            self.tokens[(token.org, token.id)] = copy.deepcopy(token)

    def get_token(self, org: str, token_id: str) -> TokenRecord | None:
        with self._lock:
            return copy.deepcopy(self.tokens.get((org, token_id)))

    def revoke_token(self, org: str, token_id: str, at: str) -> TokenRecord | None:
        with self._lock:
            token = self.tokens.get((org, token_id))
            if token is None:
                return None
            if token.revoked_at is None:
                token.revoked_at = at
            return copy.deepcopy(token)

    # keys ---------------------------------------------------------------------------------
    def create_key(self, key: KeyRecord) -> None:
        with self._lock:
            if (key.org, key.keyid) in self.keys:
                raise AlreadyExists(key.keyid)
            self.keys[(key.org, key.keyid)] = copy.deepcopy(key)

    def get_key(self, org: str, keyid: str) -> KeyRecord | None:
        with self._lock:
            return copy.deepcopy(self.keys.get((org, keyid)))

    def keys_for_subject(self, org: str, subject: str) -> list[KeyRecord]:
        with self._lock:
            return [copy.deepcopy(k) for (o, _), k in self.keys.items() if o == org and k.subject == subject]

    def keys_for_token(self, org: str, token_id: str) -> list[KeyRecord]:
        with self._lock:
            return [copy.deepcopy(k) for (o, _), k in self.keys.items() if o == org and k.token_id == token_id]

    def revoke_key(self, org: str, keyid: str, at: str) -> KeyRecord | None:
        with self._lock:
            key = self.keys.get((org, keyid))
            if key is None:
                return None
            if key.revoked_at is None:
                key.revoked_at = at
            return copy.deepcopy(key)

    # policies and audit -------------------------------------------------------------------
    def put_policy(self, policy: PolicyRecord) -> None:
        with self._lock:
            self.policies[(policy.org, policy.name)] = copy.deepcopy(policy)

    def get_policy(self, org: str, name: str) -> PolicyRecord | None:
        with self._lock:
            return copy.deepcopy(self.policies.get((org, name)))

    def list_policies(self, org: str) -> list[PolicyRecord]:
        with self._lock:
            return [copy.deepcopy(p) for (o, _), p in sorted(self.policies.items()) if o == org]

    def audit(self, record: AuditRecord) -> None:
        with self._lock:
            self.audits.append(copy.deepcopy(record))

    # attestations and sessions ------------------------------------------------------------
    def get_attestation(self, org: str, digest: str) -> AttestationRecord | None:
        with self._lock:
            return copy.deepcopy(self.attestations.get((org, digest)))

    def get_session(self, org: str, session_id: str) -> SessionRecord | None:
        with self._lock:
            record = copy.deepcopy(self.sessions.get((org, session_id)))
        if record is not None:
            record.evidence = {}
        return record

    def put_commit_index(self, org: str, session_id: str, shas: Sequence[str]) -> None:
        with self._lock:
            for sha in shas:
                self.commit_index.setdefault((org, sha), set()).add(session_id)

    def commit_ingest(self, attestation: AttestationRecord, sessions: Sequence[SessionCommit]) -> None:
        with self._lock:
            if (attestation.org, attestation.digest) in self.attestations:
                raise AlreadyIngested(attestation.digest)
            for item in sessions:
                current = self.sessions.get((item.record.org, item.record.id))
                if item.expected_version is None and current is not None:
                    raise StaleSession(item.record.id)
                if item.expected_version is not None and (current is None or current.version != item.expected_version):
                    raise StaleSession(item.record.id)
            self.attestations[(attestation.org, attestation.digest)] = copy.deepcopy(attestation)
            for item in sessions:
                record = copy.deepcopy(item.record)
                record.evidence = {}
                record.version = 0 if item.expected_version is None else item.expected_version + 1
                self.sessions[(record.org, record.id)] = record

    def update_session(
        self, org: str, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None:
        with self._lock:
            current = self.sessions.get((org, session_id))
            if current is None:
                return None
            record = copy.deepcopy(current)
            change(record)
            record.version = current.version + 1
            record.evidence = {}
            self.sessions[(org, session_id)] = record
            return copy.deepcopy(record)

    def delete_session(self, record: SessionRecord) -> None:
        with self._lock:
            current = self.sessions.get((record.org, record.id))
            if current is None or current.version != record.version:
                raise StaleSession(record.id)
            del self.sessions[(record.org, record.id)]
            for digest in record.digests:
                self.attestations.pop((record.org, digest), None)
            for ids in (v for (o, _), v in self.commit_index.items() if o == record.org):
                ids.discard(record.id)

    def sessions_for_commit(self, org: str, sha: str) -> list[str]:
        # Like DynamoStore: index entries left by a failed ingest name sessions without the sha.
        with self._lock:
            ids = self.commit_index.get((org, sha), set())
            return sorted(
                sid
                for sid in ids
                if (record := self.sessions.get((org, sid))) is not None
                and (sha in record.commits or any(sha in olds for olds in record.rewritten_from.values()))
            )

    def list_sessions(self, query: SessionQuery) -> tuple[list[SessionRecord], str | None]:
        with self._lock:
            rows = [copy.deepcopy(s) for (o, _), s in self.sessions.items() if o == query.org]
        rows = [
            s
            for s in rows
            if (query.since is None or s.at >= query.since)
            and (query.until is None or s.at < query.until)
            and (query.project is None or s.project == query.project)
            and (query.user is None or s.user == query.user)
        ]
        rows.sort(key=lambda s: (s.at, s.id), reverse=True)
        if query.cursor:
            position = decode_cursor(query.cursor, ("at", "id"))
            after = (position["at"], position["id"])
            rows = [s for s in rows if (s.at, s.id) < after]
        page = rows[: query.limit]
        for s in page:
            s.evidence = {}
        next_cursor = None
        if len(rows) > query.limit and page:
            next_cursor = encode_cursor({"at": page[-1].at, "id": page[-1].id})
        return page, next_cursor


class MemoryBlobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        with self._lock:
            self.objects[key] = bytes(data)

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        with self._lock:
            data = self.objects.get(key)
        if data is not None and max_bytes is not None and len(data) > max_bytes:
            raise PayloadTooLarge(f"object is {len(data)} bytes; the limit is {max_bytes} bytes")
        return data

    def size(self, key: str) -> int | None:
        with self._lock:
            data = self.objects.get(key)
        return None if data is None else len(data)

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)

    def presign_put(self, key: str, expires_in: int, content_type: str) -> str:
        return f"memory://upload/{key}?expires_in={expires_in}"

    def presign_get(self, key: str, expires_in: int) -> str:
        return f"memory://download/{key}?expires_in={expires_in}"
