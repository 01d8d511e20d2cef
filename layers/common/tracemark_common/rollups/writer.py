"""The rollup writer: called by ingest (sessions) and the PR workflow (PRs). SPEC §3.7."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

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
        """Move every counter by the difference between `before` (None: new session) and
        `after` (None: deleted session). Calling it with equal facts changes nothing."""
        if after is not None and (before is None or (before.org, before.user) != (after.org, after.user)):
            self.store.put_user_names(after.org, {bytes.fromhex(short_hash(after.user)): (after.user, after.user_kind)})
        deltas = session_deltas(before, after)
        for move in commit_moves(before, after):
            merge_deltas(deltas, self._move_commit(move))
        self._apply(deltas)

    def record_pr_correlated(
        self, org: str, project: str | None, repo_id: str | int, pr_number: int, at: datetime
    ) -> bool:
        """Count a PR as AI-assisted on the day (and hour) it was first correlated with a
        session. Later calls for the same PR change nothing; returns True when this one counted."""
        moment = to_utc(at)
        marker = {"org": org, "project": project or "", "at": moment.isoformat()}
        if not self.store.put_if_absent(pr_key(org, str(repo_id), pr_number), marker):
            return False
        deltas: Deltas = {}
        for scope in scopes(org, project):
            for granularity in GRANULARITIES:
                deltas[bucket_key(scope, granularity, bucket_index(granularity, moment))] = BucketDelta({PRS: 1})
        self._apply(deltas)
        return True

    def _move_commit(self, move: CommitMove) -> Deltas:
        key = commit_key(move.scope, move.sha)
        for attempt in range(self._max_attempts):
            old = self.store.get_commit(key)
            new = apply_move(old, move)
            if self.store.put_commit(key, new):
                return commit_deltas(move.scope, old, new)
            self._sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))  # noqa: S311 - jitter, not crypto
        raise Unavailable(f"rollups: commit {move.sha} is being updated concurrently; retry", code="rollup_contention")

    def _apply(self, deltas: Deltas) -> None:
        for key in sorted(deltas):
            delta = deltas[key]
            if delta.counters:
                self._update_bucket(key, delta)

    def _update_bucket(self, key: Key, delta: BucketDelta) -> None:
        for attempt in range(self._max_attempts):
            version, bucket = self.store.get_bucket(key)
            if self.store.put_bucket(key, bucket.apply(delta), version):
                return
            self._sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))  # noqa: S311 - jitter, not crypto
        raise Unavailable(f"rollups: bucket {key[1]} is being updated concurrently; retry", code="rollup_contention")
