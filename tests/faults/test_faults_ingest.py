"""Storage faults and crashes during `POST /v1/attestations` (SPEC §3.2 "nothing half-stored",
§2.6 "transient failures ... retried", docs/api.md 503 `unavailable`).

The local stack runs template.yaml on moto in-process; faults are injected on the real botocore
clients (`before-call` hooks: DynamoDB throttling, cancelled transactions, S3 errors), and a
crash is one domain step monkeypatched to raise. Each test then checks that nothing is half
stored, that retrying the same push stores the session exactly once, and that a replay answers
the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from attest_builders import commit_entry, evidence, sha, sign, statement
from fault_tools import BotoFaults, api, ok

from tracemark_common import ingest as ingest_module
from tracemark_common.store import sessions_for_commit
from tracemark_common.store.dynamo import DynamoStore


def recent(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat()


def envelope(tenant: dict[str, Any], session: str, commits: list[int], *, ended_hours_ago: float = 1) -> dict[str, Any]:
    ev = evidence(
        session,
        started=recent(ended_hours_ago + 1),
        ended=recent(ended_hours_ago),
        commits=[commit_entry(n) for n in commits],
    )
    return sign(statement(ev, org=tenant["org"]), tenant["key"])


def push(stack: Any, tenant: dict[str, Any], env: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return api(stack, "POST", "/v1/attestations", tenant["member"], json_body=env)  # type: ignore[no-any-return]


def session(stack: Any, tenant: dict[str, Any], session_id: str) -> tuple[int, Any]:
    status, _, body = api(stack, "GET", f"/v1/sessions/{session_id}", tenant["member"])
    return status, body


def total_sessions(stack: Any, tenant: dict[str, Any]) -> int:
    cards = ok(stack, "GET", "/v1/dashboard/ai", tenant["admin"], query="range=7d")
    return int(cards["cards"]["total_sessions"]["value"])


def assert_retryable(response: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = response
    assert status == 503, body
    assert body["error"]["code"] == "unavailable" and "retry" in body["error"]["message"], body
    assert headers.get("Retry-After") == "1"


def assert_nothing_stored(stack: Any, tenant: dict[str, Any], session_id: str, commits: list[int]) -> None:
    assert session(stack, tenant, session_id)[0] == 404
    assert ok(stack, "GET", "/v1/sessions", tenant["member"])["items"] == []
    for n in commits:
        assert sessions_for_commit(tenant["org"], sha(n)) == []


# -- throttling and cancelled transactions at each write of a new session -------------------------------

INGEST_FAULTS: dict[str, Callable[[BotoFaults], object]] = {
    # authentication: the token's revocation record
    "token-read-throttled": lambda f: f.throttle("GetItem"),
    # the caller's signing keys (GSI query)
    "key-query-throttled": lambda f: f.fail("Query", "ThrottlingException"),
    # first S3 write: the content-addressed envelope
    "envelope-put-slowdown": lambda f: f.fail("PutObject", "SlowDown", status=503),
    # the commit index (BatchWriteItem)
    "commit-index-throttled": lambda f: f.throttle("BatchWriteItem"),
    # the merged evidence (second S3 write)
    "evidence-put-500": lambda f: f.fail("PutObject", "InternalError", status=500, skip=1),
    # the transaction that claims the digest and writes the session
    "transaction-throttled": lambda f: f.throttle("TransactWriteItems"),
    "transaction-cancelled-throttling": lambda f: f.cancel_transaction(["None", "ThrottlingError"]),
    "transaction-cancelled-conflict": lambda f: f.cancel_transaction(["TransactionConflict", "None"]),
}


@pytest.mark.parametrize("fault", list(INGEST_FAULTS))
def test_storage_fault_during_a_new_push_is_503_stores_nothing_and_a_retry_stores_once(
    stack: Any, tenant: dict[str, Any], boto_faults: BotoFaults, fault: str
) -> None:
    # Given a new session's attestation, and storage failing at one chosen call
    env = envelope(tenant, "s-new", [1, 2])
    INGEST_FAULTS[fault](boto_faults)
    # When it is pushed
    response = push(stack, tenant, env)
    # Then the API answers a retryable 503 and nothing is half-stored
    assert_retryable(response)
    assert all(f.fired == f.times for f in boto_faults.faults), "the fault was not reached"
    assert_nothing_stored(stack, tenant, "s-new", [1, 2])
    assert total_sessions(stack, tenant) == 0
    # When the client retries the same push
    status, _, created = push(stack, tenant, env)
    # Then it is stored exactly once, and a replay answers the same
    assert status == 201, created
    code, body = session(stack, tenant, "s-new")
    assert code == 200 and body["commit_shas"] == [sha(1), sha(2)] and len(body["attestations"]) == 1
    assert body["evidence"]["data"]["session"]["id"] == "s-new"
    assert sessions_for_commit(tenant["org"], sha(2)) == ["s-new"]
    assert push(stack, tenant, env)[0:3:2] == (200, created)
    assert total_sessions(stack, tenant) == 1


# -- faults while merging a later attestation into a stored session ------------------------------------

MERGE_FAULTS: dict[str, Callable[[BotoFaults], object]] = {
    "transaction-throttled": lambda f: f.throttle("TransactWriteItems"),
    "transaction-cancelled-conflict": lambda f: f.cancel_transaction(["None", "TransactionConflict"]),
    # reading the session's stored evidence to merge with it
    "evidence-get-500": lambda f: f.fail("GetObject", "InternalError", status=500),
    # ... or S3 answering that it is not there (it is: a missing read must not erase the history)
    "evidence-get-missing": lambda f: f.fail("GetObject", "NoSuchKey", status=404),
    "evidence-put-slowdown": lambda f: f.fail("PutObject", "SlowDown", status=503, skip=1),
}


@pytest.mark.parametrize("fault", list(MERGE_FAULTS))
def test_storage_fault_during_a_merge_leaves_the_session_as_it_was(
    stack: Any, tenant: dict[str, Any], boto_faults: BotoFaults, fault: str
) -> None:
    # Given a stored session with commit 1, and a later attestation adding commit 2
    first = envelope(tenant, "s-merge", [1], ended_hours_ago=2)
    assert push(stack, tenant, first)[0] == 201
    before = session(stack, tenant, "s-merge")[1]
    second = envelope(tenant, "s-merge", [2], ended_hours_ago=1)
    # When storage fails at one chosen call of the merge
    MERGE_FAULTS[fault](boto_faults)
    response = push(stack, tenant, second)
    # Then the API answers a retryable 503 and the session is exactly as it was
    assert_retryable(response)
    assert all(f.fired == f.times for f in boto_faults.faults), "the fault was not reached"
    code, after = session(stack, tenant, "s-merge")
    assert code == 200 and after == before
    assert sessions_for_commit(tenant["org"], sha(2)) == []  # no index entry for an unstored commit
    # When the client retries
    status, _, created = push(stack, tenant, second)
    # Then the merge is exact: both commits, both attestations, both commits' evidence entries
    assert status == 201, created
    merged = session(stack, tenant, "s-merge")[1]
    assert merged["commit_shas"] == [sha(1), sha(2)] and len(merged["attestations"]) == 2
    entries = merged["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert [e["sha"] for e in entries] == [sha(1), sha(2)]
    assert sessions_for_commit(tenant["org"], sha(2)) == ["s-merge"]
    assert push(stack, tenant, second)[0:3:2] == (200, created)
    assert total_sessions(stack, tenant) == 1


def test_reading_a_session_while_s3_fails_is_503_not_500(
    stack: Any, tenant: dict[str, Any], boto_faults: BotoFaults
) -> None:
    # Given a stored session
    assert push(stack, tenant, envelope(tenant, "s-read", [1]))[0] == 201
    # When S3 fails the evidence read
    boto_faults.fail("GetObject", "SlowDown", status=503)
    status, headers, body = api(stack, "GET", "/v1/sessions/s-read", tenant["member"])
    # Then the answer is a retryable 503, and the next read works
    assert_retryable((status, headers, body))
    assert session(stack, tenant, "s-read")[0] == 200


def test_an_upload_that_was_never_put_is_404_and_stores_nothing(stack: Any, tenant: dict[str, Any]) -> None:
    # Given a presigned upload whose bytes were never PUT
    upload = ok(stack, "POST", "/v1/uploads", tenant["member"], 201, json_body={"kind": "attestation"})
    # When the attestation names it
    status, _, body = push(stack, tenant, {"upload_id": upload["upload_id"]})  # type: ignore[arg-type]
    # Then a clear 404 and nothing is stored
    assert status == 404 and body["error"]["code"] == "upload_not_found", body
    assert ok(stack, "GET", "/v1/sessions", tenant["member"])["items"] == []


# -- a handler crash between the steps of ingest ---------------------------------------------------------


class Crash(RuntimeError):
    """The Lambda dies here (timeout, out of memory, a bug)."""


def crash_after_first_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ingest_module._first_writes

    def crashing(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)  # envelope in S3, commit index written
        raise Crash("after the S3 put, before the transaction")

    monkeypatch.setattr(ingest_module, "_first_writes", crashing)


def crash_before_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    def crashing(self: DynamoStore, *args: Any, **kwargs: Any) -> None:
        raise Crash("evidence stored, transaction not sent")

    monkeypatch.setattr(DynamoStore, "commit_ingest", crashing)


def crash_after_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    original = DynamoStore.commit_ingest

    def crashing(self: DynamoStore, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        raise Crash("after the transaction committed")

    monkeypatch.setattr(DynamoStore, "commit_ingest", crashing)


@pytest.mark.parametrize("where", ["after-first-writes", "before-transaction"])
def test_crash_before_the_transaction_stores_nothing_and_the_retry_completes(
    stack: Any, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # Given a push that crashes the handler between two steps of ingest
    env = envelope(tenant, "s-crash", [1, 2])
    {"after-first-writes": crash_after_first_writes, "before-transaction": crash_before_transaction}[where](monkeypatch)
    status, _, body = push(stack, tenant, env)
    assert status == 500, body
    # Then nothing is half-stored: no session, no attestation, no usable commit index entry
    assert_nothing_stored(stack, tenant, "s-crash", [1, 2])
    # When the same push is retried on a healthy handler
    monkeypatch.undo()
    status, _, created = push(stack, tenant, env)
    # Then it completes, once, and a replay returns the same answer
    assert status == 201, created
    body = session(stack, tenant, "s-crash")[1]
    assert body["commit_shas"] == [sha(1), sha(2)] and len(body["attestations"]) == 1
    assert push(stack, tenant, env)[0:3:2] == (200, created)


def test_crash_after_the_transaction_is_completed_by_the_retry_as_a_replay(
    stack: Any, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stored session and a later attestation whose push crashes right after its transaction
    assert push(stack, tenant, envelope(tenant, "s-late", [1], ended_hours_ago=2))[0] == 201
    env = envelope(tenant, "s-late", [2], ended_hours_ago=1)
    crash_after_transaction(monkeypatch)
    assert push(stack, tenant, env)[0] == 500
    monkeypatch.undo()
    # When the client retries the same push
    status, _, replayed = push(stack, tenant, env)
    # Then the attestation was stored whole: the retry is a replay with the stored 201 body
    assert status == 200, replayed
    assert replayed["sessions"][0]["id"] == "s-late" and replayed["digest"]
    merged = session(stack, tenant, "s-late")[1]
    assert merged["commit_shas"] == [sha(1), sha(2)] and len(merged["attestations"]) == 2
    entries = merged["evidence"]["data"]["git_context"]["tracemark_commits"]
    assert [e["sha"] for e in entries] == [sha(1), sha(2)]
    assert push(stack, tenant, env)[0:3:2] == (200, replayed)
    assert json.dumps(replayed, sort_keys=True) == json.dumps(push(stack, tenant, env)[2], sort_keys=True)


# -- conditional failures: what a concurrent writer looks like to the transaction ------------------------


def test_a_session_condition_failure_is_retried_within_the_same_request(
    stack: Any, tenant: dict[str, Any], boto_faults: BotoFaults
) -> None:
    # Given the transaction reporting that the session item changed under it (its version
    # condition failed), as when another push of the session committed first
    env = envelope(tenant, "s-cond", [1])
    boto_faults.cancel_transaction(["None", "ConditionalCheckFailed"])
    # When the attestation is pushed
    status, _, created = push(stack, tenant, env)
    # Then ingest re-reads and merges again within the request: stored once, no error
    assert status == 201, created
    assert boto_faults.count("TransactWriteItems") == 2
    body = session(stack, tenant, "s-cond")[1]
    assert body["commit_shas"] == [sha(1)] and len(body["attestations"]) == 1
    assert push(stack, tenant, env)[0:3:2] == (200, created)


def test_a_digest_condition_failure_with_no_stored_attestation_is_a_retryable_503(
    stack: Any, tenant: dict[str, Any], boto_faults: BotoFaults
) -> None:
    # Given the transaction reporting that the attestation's digest was already claimed, but no
    # attestation can be read (it was erased in between)
    env = envelope(tenant, "s-claim", [1])
    boto_faults.cancel_transaction(["ConditionalCheckFailed", "None"])
    # When the attestation is pushed
    response = push(stack, tenant, env)
    # Then the answer is a retryable 503, nothing is stored, and the retry stores it once
    assert_retryable(response)
    assert_nothing_stored(stack, tenant, "s-claim", [1])
    assert push(stack, tenant, env)[0] == 201
    assert len(session(stack, tenant, "s-claim")[1]["attestations"]) == 1
