"""A rollup update that dies part-way is completed exactly: by the next update of the session (a
retried push) or by the sweep over pending ledgers. Given / When / Then in each test."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from rollup_reference import NOW

from tracemark_common.rollups import CommitLines, InMemoryRollupStore, ModelUsage, RollupWriter, SessionFacts
from tracemark_common.rollups import query_dashboard as query
from tracemark_common.rollups.bucket import Bucket
from tracemark_common.rollups.buckets import Key
from tracemark_common.rollups.deltas import CommitState
from tracemark_common.rollups.ledger import Ledger


class Crash(Exception):
    pass


class CrashingStore(InMemoryRollupStore):
    """Dies (raises) at its `crash_at`-th write: a Lambda killed between two DynamoDB calls."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.writes = 0

    def _write(self) -> None:
        self.writes += 1
        if self.crash_at is not None and self.writes == self.crash_at:
            raise Crash(f"killed at write {self.writes}")

    def put_bucket(self, key: Key, bucket: Bucket, version: int, ops: Mapping[str, int]) -> bool:
        self._write()
        return super().put_bucket(key, bucket, version, ops)

    def put_commit(self, key: Key, state: CommitState) -> bool:
        self._write()
        return super().put_commit(key, state)

    def put_ledger(self, key: Key, ledger: Ledger, version: int) -> bool:
        self._write()
        return super().put_ledger(key, ledger, version)

    def put_if_absent(self, key: Key, item: Mapping[str, str]) -> bool:
        self._write()
        return super().put_if_absent(key, item)

    def set_marker(self, key: Key, name: str, value: str) -> None:
        self._write()
        super().set_marker(key, name, value)


SHARED = "a" * 40


def facts(sid: str, **changes: Any) -> SessionFacts:
    base = SessionFacts(
        org="acme",
        project="web",
        session_id=sid,
        user=f"user-{sid}",
        user_kind="user",
        at=NOW - timedelta(hours=2),
        models={"claude-opus-4-6": ModelUsage(total_tokens=100, cost_usd=0.5)},
        total_tokens=100,
        cost_usd=0.5,
        commits={SHARED: CommitLines(40, 10, 20, 0), f"{sid:0>40}": CommitLines(5, 5, 5, 0)},
    )
    return dataclasses.replace(base, **changes)


MOVED = {
    "at": NOW - timedelta(days=3),
    "project": "api",
    "total_tokens": 7,
    "commits": {SHARED: CommitLines(40, 10, 1, 0)},
}


def dashboards(store: InMemoryRollupStore) -> list[dict[str, Any]]:
    result = []
    for range_ in ("24h", "7d", "30d"):
        for project in (None, "web", "api"):
            body = query(store, "acme", range_, project, NOW)
            body.pop("generated_at")
            result.append(body)
    return result


def history(writer: RollupWriter) -> None:
    """What was already there: another session sharing a commit, and s1 as first pushed."""
    writer.record_session(None, facts("s0"))
    writer.record_session(None, facts("s1"))


def clean(final: SessionFacts | None) -> list[dict[str, Any]]:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    history(writer)
    writer.record_session(facts("s1"), final)
    return dashboards(store)


def writes_of_one_update(final: SessionFacts | None) -> int:
    store = CrashingStore()
    writer = RollupWriter(store)
    history(writer)
    before = store.writes
    writer.record_session(facts("s1"), final)
    return store.writes - before


@pytest.mark.parametrize("final", [facts("s1", **MOVED), None], ids=["re-push that moves the session", "delete"])
def test_a_crash_at_any_write_is_completed_by_the_retry(final: SessionFacts | None) -> None:
    expected = clean(final)
    total = writes_of_one_update(final)
    assert total >= 8  # ledger, commit states, buckets in two scopes and granularities, ledger
    for crash in range(1, total + 1):
        # Given s1's update killed at its `crash`-th write
        store = CrashingStore()
        writer = RollupWriter(store)
        history(writer)
        store.crash_at = store.writes + crash
        with pytest.raises(Crash):
            writer.record_session(facts("s1"), final)
        # When the push is retried
        writer.record_session(facts("s1"), final)
        # Then the dashboards are exactly those of an update that never crashed
        assert dashboards(store) == expected, f"crash at write {crash} of {total}"


def test_a_crash_followed_by_a_newer_push_counts_the_newer_push_exactly() -> None:
    newer = facts("s1", total_tokens=999, commits={SHARED: CommitLines(40, 10, 30, 0)})
    expected = clean(newer)
    for crash in range(1, writes_of_one_update(facts("s1", **MOVED)) + 1):
        store = CrashingStore()
        writer = RollupWriter(store)
        history(writer)
        store.crash_at = store.writes + crash
        with pytest.raises(Crash):
            writer.record_session(facts("s1"), facts("s1", **MOVED))
        writer.record_session(facts("s1", **MOVED), newer)
        assert dashboards(store) == expected, f"crash at write {crash}"


def test_the_sweep_completes_an_update_nobody_retried() -> None:
    final = facts("s1", **MOVED)
    expected = clean(final)
    store = CrashingStore()
    writer = RollupWriter(store)
    history(writer)
    store.crash_at = store.writes + 4  # after the ledger and a few commit writes
    with pytest.raises(Crash):
        writer.record_session(facts("s1"), final)
    # Given a pending update too fresh to sweep, nothing happens
    assert writer.complete_pending("acme", older_than_seconds=3600) == 0
    # When the sweep runs after the grace period (another push of the organisation)
    assert writer.complete_pending("acme", older_than_seconds=0) == 1
    # Then the numbers are exact, and a late retry changes nothing
    assert dashboards(store) == expected
    writer.record_session(facts("s1"), final)
    assert dashboards(store) == expected
    assert writer.complete_pending("acme", older_than_seconds=0) == 0


def test_a_pr_correlation_that_died_is_counted_once_by_the_next_one() -> None:
    for crash in range(1, 7):  # a marker, four buckets (two scopes, hour and day), `counted`
        # Given the first correlation of PR 7 killed at its `crash`-th write
        store = CrashingStore()
        writer = RollupWriter(store)
        store.crash_at = crash
        with contextlib.suppress(Crash):
            writer.record_pr_correlated("acme", "web", 42, 7, NOW - timedelta(hours=1))
        assert store.writes == crash
        store.crash_at = None
        # When the PR is correlated again later (the next synchronize)
        writer.record_pr_correlated("acme", "web", 42, 7, NOW)
        writer.record_pr_correlated("acme", "web", 42, 7, NOW)
        # Then it counts once, in the bucket of its first correlation, in both scopes
        for project in (None, "web"):
            body = query(store, "acme", "24h", project, NOW)
            assert body["cards"]["ai_assisted_prs"]["value"] == 1, (crash, project)
            first = [0, 1] if crash == 1 else [1, 0]  # killed before its marker: the next one is the first
            assert [p["ai_assisted_prs"] for p in body["series"]][-2:] == first, (crash, project)
