"""The rollup writer: called by ingest (sessions) and the PR workflow (PRs). SPEC §3.7."""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tracemark_common.errors import Unavailable
from tracemark_common.rollups.buckets import (
    GRANULARITIES,
    Key,
    bucket_index,
    bucket_key,
    commit_key,
    pr_key,
    scopes,
    short_hash,
    to_utc,
)
from tracemark_common.rollups.deltas import (
    PRS,
    BucketDelta,
    CommitMove,
    Deltas,
    apply_move,
    commit_deltas,
    commit_moves,
    merge_deltas,
    session_deltas,
)
from tracemark_common.rollups.facts import SessionFacts
from tracemark_common.rollups.ledger import Ledger, Pending, ledger_key, prune_ops
from tracemark_common.rollups.store import RollupStore

MAX_ATTEMPTS = 30  # with jittered backoff capped at 0.5 s: a few seconds at worst


class RollupWriter:
    """Moves the dashboard counters. Each bucket (scalars, per-user and per-model records) is
    read, moved by the delta and written back under an optimistic version check, retried with
    jittered backoff when another writer got there first, so concurrent writers never lose a
    count. A commit's de-duplication state is updated the same way before its bucket deltas are
    applied."""

    def __init__(
        self,
        store: RollupStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self._sleep = sleep
        self._max_attempts = max_attempts

    def record_session(self, before: SessionFacts | None, after: SessionFacts | None) -> None:
        """Make the rollups count `after` for this session (None: a deleted session). `before`
        names the session when `after` is None; what the rollups counted so far comes from the
        session's ledger, so a repeated call changes nothing and a crashed one is completed."""
        facts = after or before
        if facts is not None:
            self.sync_session(facts.org, facts.session_id, after)

    def sync_session(self, org: str, session_id: str, target: SessionFacts | None) -> None:
        key = ledger_key(org, session_id)
        for attempt in range(self._max_attempts):
            ledger = self.store.get_ledger(key)
            if ledger.pending is not None:  # an earlier update did not finish: complete it first
                self._complete(ledger.pending)
                self.store.put_ledger(key, Ledger(applied=ledger.pending.after), ledger.version)
                continue
            if ledger.applied == target:
                return
            if target is not None and (ledger.applied is None or ledger.applied.user != target.user):
                self.store.put_user_names(
                    org, {bytes.fromhex(short_hash(target.user)): (target.user, target.user_kind)}
                )
            pending = Pending(uuid.uuid4().hex[:16], ledger.applied, target, self._now())
            if not self.store.put_ledger(key, Ledger(applied=ledger.applied, pending=pending), ledger.version):
                self._sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))  # noqa: S311 - jitter, not crypto
                continue
            self._complete(pending)
            self.store.put_ledger(key, Ledger(applied=target), ledger.version + 1)  # lost: another completed it
            return
        raise Unavailable(
            f"rollups: session {session_id} is being updated concurrently; retry", code="rollup_contention"
        )

    def complete_pending(self, org: str, older_than_seconds: int = 30, limit: int = 10) -> int:
        """Complete updates that crashed part-way (their ledger is still pending); returns how
        many. Ingest calls it after each push of the organisation."""
        cutoff = self._now() - timedelta(seconds=older_than_seconds)
        done = 0
        for org_, session_id in self.store.pending_ledgers(org, cutoff, limit):
            ledger = self.store.get_ledger(ledger_key(org_, session_id))
            if ledger.pending is not None and ledger.pending.started <= cutoff:
                self.sync_session(org_, session_id, ledger.pending.after)
                done += 1
        return done

    def _complete(self, pending: Pending) -> None:
        deltas = session_deltas(pending.before, pending.after)
        for move in commit_moves(pending.before, pending.after):
            merge_deltas(deltas, self._move_commit(move, pending.op))
        self._apply(deltas, pending.op)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def record_pr_correlated(
        self, org: str, project: str | None, repo_id: str | int, pr_number: int, at: datetime
    ) -> bool:
        """Count a PR as AI-assisted on the day (and hour) it was first correlated with a
        session. Later calls for the same PR change nothing; returns True when this one counted."""
        key = pr_key(org, str(repo_id), pr_number)
        moment = to_utc(at)
        marker = {"org": org, "project": project or "", "at": moment.isoformat()}
        created = self.store.put_if_absent(key, marker)
        if not created:
            stored = self.store.get_marker(key)
            if stored is None or stored.get("counted") == "yes":
                return False
            # the first correlation died before its counts landed: complete it (idempotent)
            marker = stored
            moment = datetime.fromisoformat(stored["at"])
        deltas: Deltas = {}
        for scope in scopes(org, marker.get("project") or None):
            for granularity in GRANULARITIES:
                deltas[bucket_key(scope, granularity, bucket_index(granularity, moment))] = BucketDelta({PRS: 1})
        self._apply(deltas, f"pr:{key[0]}")
        self.store.set_marker(key, "counted", "yes")
        return created

    def _move_commit(self, move: CommitMove, op: str) -> Deltas:
        key = commit_key(move.scope, move.sha)
        for attempt in range(self._max_attempts):
            old = self.store.get_commit(key)
            if op in old.ops:  # applied before a crash: the same deltas again, from the state before it
                before = old.ops[op][1]
                return commit_deltas(move.scope, before, apply_move(before, move))
            now = int(self._now().timestamp())
            kept = prune_ops({o: at for o, (at, _before) in old.ops.items()}, now)
            ops = {o: old.ops[o] for o in kept} | {op: (now, old.snapshot())}
            new = dataclasses.replace(apply_move(old, move), ops=ops)
            if self.store.put_commit(key, new):
                return commit_deltas(move.scope, old, new)
            self._sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))  # noqa: S311 - jitter, not crypto
        raise Unavailable(f"rollups: commit {move.sha} is being updated concurrently; retry", code="rollup_contention")

    def _apply(self, deltas: Deltas, op: str) -> None:
        for key in sorted(deltas):
            delta = deltas[key]
            if delta.counters:
                self._update_bucket(key, delta, op)

    def _update_bucket(self, key: Key, delta: BucketDelta, op: str) -> None:
        for attempt in range(self._max_attempts):
            version, bucket, ops = self.store.get_bucket(key)
            if op in ops:  # this operation already landed here (before a crash)
                return
            now = int(self._now().timestamp())
            if self.store.put_bucket(key, bucket.apply(delta), version, {**prune_ops(ops, now), op: now}):
                return
            self._sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))  # noqa: S311 - jitter, not crypto
        raise Unavailable(f"rollups: bucket {key[1]} is being updated concurrently; retry", code="rollup_contention")
