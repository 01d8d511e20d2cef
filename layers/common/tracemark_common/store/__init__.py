"""Data access for orgs, projects, tokens, keys, policies, attestations and sessions.

Other modules call the functions below (they use the configured DynamoDB table and S3 bucket);
tests pass a `MemoryStore` / `MemoryBlobs` explicitly. Importing this package does not import
boto3 or pynamodb: the AWS adapters load on first use.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from tracemark_common.store.base import (
    AlreadyExists,
    AlreadyIngested,
    AppStore,
    BlobStore,
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

__all__ = [
    "AlreadyExists",
    "AlreadyIngested",
    "AppStore",
    "AttestationRecord",
    "AuditRecord",
    "BlobStore",
    "KeyRecord",
    "OrgRecord",
    "PolicyRecord",
    "ProjectRecord",
    "SessionCommit",
    "SessionQuery",
    "SessionRecord",
    "StaleSession",
    "TokenRecord",
    "add_session_pr",
    "default_blobs",
    "default_store",
    "get_session",
    "load_evidence",
    "sessions_for_commit",
    "set_session_score",
]

_MAX_EVIDENCE_BYTES = 64 * 1024 * 1024


def default_store() -> AppStore:
    """The application table named by the settings (one cached adapter per table)."""
    from tracemark_common.settings import get_settings

    return _dynamo_store(get_settings().app_table_name, os.environ.get("AWS_ENDPOINT_URL", ""))


def default_blobs() -> BlobStore:
    """The evidence bucket named by the settings (one cached client per bucket)."""
    from tracemark_common.settings import get_settings

    return _s3_blobs(get_settings().evidence_bucket_name, os.environ.get("AWS_ENDPOINT_URL", ""))


@lru_cache(maxsize=8)
def _dynamo_store(table_name: str, endpoint: str) -> AppStore:
    from tracemark_common.store.dynamo import DynamoStore

    return DynamoStore(table_name, host=endpoint or None)


@lru_cache(maxsize=8)
def _s3_blobs(bucket: str, endpoint: str) -> BlobStore:
    from tracemark_common.store.s3 import S3Blobs

    return S3Blobs(bucket)


def load_evidence(record: SessionRecord, blobs: BlobStore) -> dict[str, Any]:
    data = blobs.get(record.evidence_key, max_bytes=_MAX_EVIDENCE_BYTES) if record.evidence_key else None
    if data is None:
        return {}
    value = json.loads(data)
    return value if isinstance(value, dict) else {}


def get_session(
    org: str, session_id: str, *, store: AppStore | None = None, blobs: BlobStore | None = None
) -> SessionRecord | None:
    """One session of `org` with its merged evidence envelope loaded, or None."""
    store = store or default_store()
    record = store.get_session(org, session_id)
    if record is not None:
        record.evidence = load_evidence(record, blobs or default_blobs())
    return record


def sessions_for_commit(org: str, sha: str, *, store: AppStore | None = None) -> list[str]:
    """Ids of the sessions of `org` attested with commit `sha`, directly or as `rewritten_from`."""
    return (store or default_store()).sessions_for_commit(org, sha.lower())


def set_session_score(org: str, session_id: str, score: dict[str, Any], *, store: AppStore | None = None) -> bool:
    """Record the AI Session Score; False when the session does not exist."""

    def change(record: SessionRecord) -> None:
        record.score = score

    return (store or default_store()).update_session(org, session_id, change) is not None


def add_session_pr(org: str, session_id: str, pr_ref: dict[str, Any], *, store: AppStore | None = None) -> bool:
    """Link a PR to a session (idempotent: the same `pr_ref` is stored once; a ref with the same
    `repo_id`/`repository` and `number` replaces the old one). False when the session is gone."""

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        repo_a = a.get("repo_id", a.get("repository"))
        repo_b = b.get("repo_id", b.get("repository"))
        return repo_a == repo_b and a.get("number") == b.get("number") and "number" in a

    def change(record: SessionRecord) -> None:
        kept = [p for p in record.prs if p != pr_ref and not same(p, pr_ref)]
        record.prs = [*kept, pr_ref]

    return (store or default_store()).update_session(org, session_id, change) is not None
