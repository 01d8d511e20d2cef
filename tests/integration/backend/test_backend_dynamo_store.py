"""`DynamoStore` and `S3Blobs` on moto (in-process), with the application table's schema from
template.yaml: conditional creates, optimistic versions, the ingest transaction's two failure
modes, GSI look-ups, org-scoped pagination and erasure."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest

from tracemark_common.errors import PayloadTooLarge
from tracemark_common.store.base import AlreadyExists, AlreadyIngested, SessionCommit, SessionQuery, StaleSession
from tracemark_common.store.dynamo import DynamoStore
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
from tracemark_common.store.s3 import S3Blobs

T0 = "2026-11-20T10:00:00.000Z"


def _create_table(client: Any, table: str) -> None:
    index = [
        {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": f"{name}pk", "KeyType": "HASH"},
                {"AttributeName": f"{name}sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for name in ("gsi1", "gsi2")
    ]
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")
        ],
        GlobalSecondaryIndexes=index,
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def store() -> Iterator[DynamoStore]:
    # A table of its own: moto's state is shared with the session's `stack` when that is running.
    table = f"backend-store-{uuid.uuid4().hex[:12]}"
    with moto.mock_aws():
        _create_table(boto3.client("dynamodb", region_name="us-east-1"), table)
        yield DynamoStore(table, region="us-east-1", host="")


def session(org: str, sid: str, at: str, *, user: str = "alice", project: str = "web") -> SessionRecord:
    return SessionRecord(
        id=sid,
        org=org,
        project=project,
        user=user,
        user_kind="user",
        agent="claude-code",
        started_at=at,
        ended_at=at,
        at=at,
        received_at=at,
        last_received_at=at,
        commits=["a" * 40],
        rewritten_from={},
        digests=[f"d-{sid}"],
        policy_results=[],
        gated=False,
        evidence_key=f"evidence/{org}/{sid}.json",
        summary={"total_tokens": 1},
        facts={},
    )


def attestation(org: str, digest: str, sid: str) -> AttestationRecord:
    return AttestationRecord(
        org=org,
        digest=digest,
        session_ids=[sid],
        sub="alice",
        keyid="k",
        received_at=T0,
        envelope_key=f"envelopes/{digest}.json",
        result={"digest": digest},
    )


def test_orgs_projects_policies_and_conditional_creates(store: DynamoStore) -> None:
    store.create_org(OrgRecord(name="acme", created_at=T0))
    with pytest.raises(AlreadyExists):
        store.create_org(OrgRecord(name="acme", created_at=T0))
    assert store.update_org_settings("acme", {"gate_default": True}).settings == {"gate_default": True}
    assert store.get_org("acme").settings == {"gate_default": True}  # type: ignore[union-attr]
    assert store.get_org("nope") is None
    store.create_project(ProjectRecord(org="acme", name="web", created_at=T0))
    with pytest.raises(AlreadyExists):
        store.create_project(ProjectRecord(org="acme", name="web", created_at=T0))
    store.set_project_contract("acme", "web", "kind: Contract", T0, "boss")
    assert store.get_project("acme", "web").contract_yaml == "kind: Contract"  # type: ignore[union-attr]
    assert store.get_project("other", "web") is None
    store.put_policy(PolicyRecord(org="acme", name="p1", text="package main", updated_at=T0))
    store.put_policy(PolicyRecord(org="other", name="p2", text="package main", updated_at=T0))
    assert [p.name for p in store.list_policies("acme")] == ["p1"]
    store.audit(AuditRecord(org="acme", at=T0, action="x", actor="boss"))


def test_tokens_and_keys(store: DynamoStore) -> None:
    store.put_token(
        TokenRecord(
            org="acme",
            id="tok_1",
            sub="alice",
            kind="user",
            role="member",
            scopes=["push"],
            created_at=T0,
            expires_at_epoch=2_000_000_000,
        )
    )
    assert store.get_token("acme", "tok_1").sub == "alice"  # type: ignore[union-attr]
    assert store.get_token("other", "tok_1") is None
    assert store.revoke_token("acme", "tok_1", T0).revoked_at == T0  # type: ignore[union-attr]
    assert store.revoke_token("acme", "tok_missing", T0) is None
    for n, (sub, token) in enumerate([("alice", "tok_1"), ("alice", "tok_2"), ("bob", "tok_3")]):
        store.create_key(
            KeyRecord(org="acme", keyid=f"{n:064x}", pem="pem", subject=sub, token_id=token, created_at=T0)
        )
    with pytest.raises(AlreadyExists):
        store.create_key(
            KeyRecord(org="acme", keyid=f"{0:064x}", pem="pem", subject="eve", token_id="t", created_at=T0)
        )
    assert sorted(k.keyid[-1] for k in store.keys_for_subject("acme", "alice")) == ["0", "1"]
    assert store.keys_for_subject("other", "alice") == []
    assert [k.subject for k in store.keys_for_token("acme", "tok_3")] == ["bob"]
    store.revoke_key("acme", f"{1:064x}", T0)
    revoked = {k.keyid[-1]: k.revoked_at for k in store.keys_for_subject("acme", "alice")}
    assert revoked == {"0": None, "1": T0}


def test_ingest_transaction_claims_the_digest_once(store: DynamoStore) -> None:
    first = session("acme", "s1", T0)
    store.commit_ingest(attestation("acme", "d1", "s1"), [SessionCommit(first, None)])
    # the same digest again: AlreadyIngested, whatever the session condition
    with pytest.raises(AlreadyIngested):
        store.commit_ingest(attestation("acme", "d1", "s1"), [SessionCommit(first, 0)])
    # a new digest with a stale session version: StaleSession, and nothing written
    with pytest.raises(StaleSession):
        store.commit_ingest(attestation("acme", "d2", "s1"), [SessionCommit(first, None)])
    assert store.get_attestation("acme", "d2") is None
    merged = dataclasses.replace(first, digests=["d-s1", "d2"])
    store.commit_ingest(attestation("acme", "d2", "s1"), [SessionCommit(merged, 0)])
    got = store.get_session("acme", "s1")
    assert got is not None and got.version == 1 and got.digests == ["d-s1", "d2"]
    assert store.get_attestation("acme", "d2").result == {"digest": "d2"}  # type: ignore[union-attr]
    assert store.get_attestation("other", "d2") is None


def test_update_session_and_the_commit_index(store: DynamoStore) -> None:
    record = session("acme", "s1", T0)
    record.commits = ["a" * 40, "b" * 40]
    store.commit_ingest(attestation("acme", "d-s1", "s1"), [SessionCommit(record, None)])
    store.put_commit_index("acme", "s1", ["a" * 40, "b" * 40, "a" * 40, "c" * 40])
    assert store.sessions_for_commit("acme", "b" * 40) == ["s1"]
    assert store.sessions_for_commit("other", "b" * 40) == []
    # an entry the session does not back (left by a failed ingest) is ignored
    assert store.sessions_for_commit("acme", "c" * 40) == []

    def score(record: SessionRecord) -> None:
        record.score = {"score": 90}

    updated = store.update_session("acme", "s1", score)
    assert updated is not None and updated.version == 1
    assert store.get_session("acme", "s1").score == {"score": 90}  # type: ignore[union-attr]
    assert store.update_session("acme", "missing", score) is None
    # a stale delete is refused; a current one removes the session, its attestations and index
    with pytest.raises(StaleSession):
        store.delete_session(session("acme", "s1", T0))
    current = store.get_session("acme", "s1")
    assert current is not None
    current.rewritten_from = {"a" * 40: ["b" * 40]}
    store.delete_session(current)
    assert store.get_session("acme", "s1") is None
    assert store.get_attestation("acme", "d-s1") is None
    assert store.sessions_for_commit("acme", "b" * 40) == []


def test_list_sessions_pages_filters_and_stays_in_its_org(store: DynamoStore) -> None:
    for n in range(7):
        at = f"2026-11-2{n}T10:00:00.000Z"
        user, project = ("alice", "web") if n % 2 == 0 else ("bob", "api")
        store.commit_ingest(
            attestation("acme", f"d{n}", f"s{n}"),
            [SessionCommit(session("acme", f"s{n}", at, user=user, project=project), None)],
        )
    store.commit_ingest(attestation("other", "dx", "sx"), [SessionCommit(session("other", "sx", T0), None)])
    seen: list[str] = []
    cursor = None
    while True:
        rows, cursor = store.list_sessions(SessionQuery(org="acme", limit=3, cursor=cursor))
        seen += [r.id for r in rows]
        if cursor is None:
            break
    assert seen == [f"s{n}" for n in reversed(range(7))]
    rows, _ = store.list_sessions(SessionQuery(org="acme", user="bob", limit=50))
    assert [r.id for r in rows] == ["s5", "s3", "s1"]
    rows, _ = store.list_sessions(SessionQuery(org="acme", project="web", limit=2))
    assert [r.id for r in rows] == ["s6", "s4"]
    rows, _ = store.list_sessions(
        SessionQuery(org="acme", since="2026-11-22T00:00:00.000Z", until="2026-11-25T00:00:00.000Z")
    )
    assert [r.id for r in rows] == ["s4", "s3", "s2"]
    rows, _ = store.list_sessions(SessionQuery(org="other"))
    assert [r.id for r in rows] == ["sx"]


def test_s3_blobs() -> None:
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="evidence")
        blobs = S3Blobs("evidence", client)
        blobs.put("a/b.json", b"{}")
        assert blobs.get("a/b.json") == b"{}"
        assert blobs.size("a/b.json") == 2
        assert blobs.get("missing") is None and blobs.size("missing") is None
        with pytest.raises(PayloadTooLarge):
            blobs.get("a/b.json", max_bytes=1)
        blobs.delete("a/b.json")
        assert blobs.get("a/b.json") is None
        assert "a/c" in blobs.presign_put("a/c", 60, "application/json")
        assert "a/b.json" in blobs.presign_get("a/b.json", 60)
