"""The rollup store port, and an in-memory implementation for tests and tools.

The DynamoDB adapter is `tracemark_common.rollups.dynamo.DynamoRollupStore` (server only).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tracemark_common.rollups.bucket import Bucket, Totals
from tracemark_common.rollups.buckets import Key
from tracemark_common.rollups.deltas import CommitState
from tracemark_common.rollups.ledger import Ledger


@dataclasses.dataclass
class PeriodsRead:
    """What the dashboard reads for some periods (lists of bucket keys)."""

    buckets: dict[Key, Bucket]  # those that exist, for their counters (user and model records may be left out)
    totals: list[Totals]  # per period: the user and model records of its buckets, summed
    names: dict[bytes, tuple[str, str]]  # the organisation's users (name, kind): some may be missing,
    # found by `get_user_names`


class RollupStore(Protocol):
    def get_bucket(self, key: Key) -> tuple[int, Bucket, dict[str, int]]:
        """The bucket, its version (0: not stored yet, with an empty bucket) and the operations
        that changed it recently (id -> epoch seconds), read consistently."""

    def put_bucket(self, key: Key, bucket: Bucket, version: int, ops: Mapping[str, int]) -> bool:
        """Store `bucket` and `ops` with version `version + 1`, only if the stored version is
        still `version`; False otherwise (nothing written)."""

    def get_ledger(self, key: Key) -> Ledger:
        """A session's rollup ledger, read consistently (`version == 0` when absent)."""

    def put_ledger(self, key: Key, ledger: Ledger, version: int) -> bool:
        """Store `ledger` with version `version + 1` if the stored version is still `version`."""

    def pending_ledgers(self, org: str, started_before: datetime, limit: int) -> list[tuple[str, str]]:
        """(org, session id) of ledgers of `org` whose update started before `started_before`
        and has not finished (eventually consistent is fine)."""

    def read_periods(self, org: str, periods: Sequence[Sequence[Key]]) -> PeriodsRead:
        """What the dashboard reads (eventually consistent is fine), in as few requests as the
        storage allows (the count depends on the keys, never on the contents): see
        `PeriodsRead`."""

    def put_user_names(self, org: str, names: Mapping[bytes, tuple[str, str]]) -> None:
        """Remember (name, kind) of users by their 8-byte hash, once per organisation
        (idempotent: a hash always names the same user)."""

    def get_user_names(self, org: str, hashes: Sequence[bytes]) -> dict[bytes, tuple[str, str]]:
        """(name, kind) of the users among `hashes` that were remembered."""

    def get_commit(self, key: Key) -> CommitState:
        """A commit's state, read consistently (`version == 0` when absent)."""

    def put_commit(self, key: Key, state: CommitState) -> bool:
        """Store `state` with version `state.version + 1` if the stored version is still
        `state.version`; False when another writer got there first."""

    def put_if_absent(self, key: Key, item: Mapping[str, str]) -> bool:
        """Create the item unless it exists; True when this call created it."""

    def get_marker(self, key: Key) -> dict[str, str] | None:
        """The item `put_if_absent` created (its string attributes), read consistently."""

    def set_marker(self, key: Key, name: str, value: str) -> None:
        """Set one string attribute of an existing marker."""


class InMemoryRollupStore:
    """A thread-safe dict of encoded buckets (so the binary form is exercised too). `requests`
    counts calls, so tests can check a query's cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.buckets: dict[Key, tuple[int, bytes]] = {}
        self.bucket_ops: dict[Key, dict[str, int]] = {}
        self.ledgers: dict[Key, Ledger] = {}
        self.commits: dict[Key, CommitState] = {}
        self.markers: dict[Key, dict[str, str]] = {}
        self.names: dict[tuple[str, bytes], tuple[str, str]] = {}
        self.requests = 0

    def __len__(self) -> int:
        return len(self.buckets)

    def __contains__(self, key: object) -> bool:
        return key in self.buckets

    def get_bucket(self, key: Key) -> tuple[int, Bucket, dict[str, int]]:
        with self._lock:
            self.requests += 1
            version, blob = self.buckets.get(key, (0, b""))
            ops = dict(self.bucket_ops.get(key, {}))
        return version, Bucket.decode(blob) if blob else Bucket(), ops

    def put_bucket(self, key: Key, bucket: Bucket, version: int, ops: Mapping[str, int]) -> bool:
        blob = bucket.encode()
        with self._lock:
            self.requests += 1
            if self.buckets.get(key, (0, b""))[0] != version:
                return False
            self.buckets[key] = (version + 1, blob)
            self.bucket_ops[key] = dict(ops)
            return True

    def get_ledger(self, key: Key) -> Ledger:
        with self._lock:
            self.requests += 1
            return self.ledgers.get(key, Ledger())

    def put_ledger(self, key: Key, ledger: Ledger, version: int) -> bool:
        with self._lock:
            self.requests += 1
            if self.ledgers.get(key, Ledger()).version != version:
                return False
            self.ledgers[key] = dataclasses.replace(ledger, version=version + 1)
            return True

    def pending_ledgers(self, org: str, started_before: datetime, limit: int) -> list[tuple[str, str]]:
        with self._lock:
            self.requests += 1
            found = [
                (ledger.pending.after or ledger.pending.before)
                for ledger in self.ledgers.values()
                if ledger.pending is not None and ledger.pending.started < started_before
            ]
        return [(f.org, f.session_id) for f in found if f is not None and f.org == org][:limit]

    def read_periods(self, org: str, periods: Sequence[Sequence[Key]]) -> PeriodsRead:
        keys = list(dict.fromkeys(key for period in periods for key in period))
        with self._lock:
            self.requests += (len(keys) + 1 + 99) // 100  # as many as DynamoDB BatchGetItem calls
            blobs = {key: self.buckets[key][1] for key in keys if key in self.buckets}
            names = {ident: name for (org_, ident), name in self.names.items() if org_ == org}
        found = {key: Bucket.decode(blob) for key, blob in blobs.items()}
        totals = [Totals().add_all(found[key] for key in period if key in found) for period in periods]
        return PeriodsRead(found, totals, names)

    def put_user_names(self, org: str, names: Mapping[bytes, tuple[str, str]]) -> None:
        with self._lock:
            self.requests += 1
            self.names.update({(org, h): n for h, n in names.items()})

    def get_user_names(self, org: str, hashes: Sequence[bytes]) -> dict[bytes, tuple[str, str]]:
        with self._lock:
            self.requests += (len(hashes) + 99) // 100
            return {h: self.names[(org, h)] for h in hashes if (org, h) in self.names}

    def get_commit(self, key: Key) -> CommitState:
        with self._lock:
            self.requests += 1
            return self.commits.get(key, CommitState())

    def put_commit(self, key: Key, state: CommitState) -> bool:
        with self._lock:
            self.requests += 1
            if self.commits.get(key, CommitState()).version != state.version:
                return False
            self.commits[key] = dataclasses.replace(state, version=state.version + 1)
            return True

    def put_if_absent(self, key: Key, item: Mapping[str, str]) -> bool:
        with self._lock:
            self.requests += 1
            if key in self.markers:
                return False
            self.markers[key] = dict(item)
            return True

    def get_marker(self, key: Key) -> dict[str, str] | None:
        with self._lock:
            self.requests += 1
            found = self.markers.get(key)
            return None if found is None else dict(found)

    def set_marker(self, key: Key, name: str, value: str) -> None:
        with self._lock:
            self.requests += 1
            self.markers.setdefault(key, {})[name] = value


def _conforms(store: InMemoryRollupStore) -> RollupStore:  # mypy checks the fake against the port
    return store
