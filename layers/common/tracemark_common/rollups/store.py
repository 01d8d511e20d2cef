"""The rollup store port, and an in-memory implementation for tests and tools.

The DynamoDB adapter is `tracemark_common.rollups.dynamo.DynamoRollupStore` (server only).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from tracemark_common.rollups.buckets import Key
from tracemark_common.rollups.deltas import CommitState

Item = dict[str, int | str]


class RollupStore(Protocol):
    def add(self, key: Key, counters: Mapping[str, int]) -> None:
        """Atomically ADD `counters` to the bucket item's numbers (missing ones start at 0),
        creating the item if needed."""

    def get_detail(self, key: Key) -> tuple[int, dict[str, int | str]]:
        """The bucket's packed per-user/per-model map and its version (0: none yet), read
        consistently."""

    def put_detail(self, key: Key, counters: Mapping[str, int], detail: Mapping[str, int | str], version: int) -> bool:
        """In one atomic write: ADD `counters`, replace the packed map with `detail` and set its
        version to `version + 1` — only if the stored version is still `version`; False otherwise
        (nothing written)."""

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        """The bucket items that exist among `keys`, numbers and packed map entries flattened
        into one dict (eventually consistent is fine)."""

    def get_commit(self, key: Key) -> CommitState:
        """A commit's state, read consistently (`version == 0` when absent)."""

    def put_commit(self, key: Key, state: CommitState) -> bool:
        """Store `state` with version `state.version + 1` if the stored version is still
        `state.version`; False when another writer got there first."""

    def put_if_absent(self, key: Key, item: Mapping[str, str]) -> bool:
        """Create the item unless it exists; True when this call created it."""


class InMemoryRollupStore:
    """A thread-safe dict. `requests` counts calls, so tests can check a query's cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[Key, dict[str, int]] = {}
        self.details: dict[Key, tuple[int, dict[str, int | str]]] = {}
        self.commits: dict[Key, CommitState] = {}
        self.markers: dict[Key, dict[str, str]] = {}
        self.requests = 0

    def __len__(self) -> int:
        return len(self.items.keys() | self.details.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.items or key in self.details

    def add(self, key: Key, counters: Mapping[str, int]) -> None:
        with self._lock:
            self.requests += 1
            self._add(key, counters)

    def _add(self, key: Key, counters: Mapping[str, int]) -> None:
        item = self.items.setdefault(key, {})
        for name, value in counters.items():
            item[name] = item.get(name, 0) + value

    def get_detail(self, key: Key) -> tuple[int, dict[str, int | str]]:
        with self._lock:
            self.requests += 1
            version, detail = self.details.get(key, (0, {}))
            return version, dict(detail)

    def put_detail(self, key: Key, counters: Mapping[str, int], detail: Mapping[str, int | str], version: int) -> bool:
        with self._lock:
            self.requests += 1
            if self.details.get(key, (0, {}))[0] != version:
                return False
            self._add(key, counters)
            self.details[key] = (version + 1, dict(detail))
            return True

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        with self._lock:
            self.requests += (len(keys) + 99) // 100  # as many as DynamoDB BatchGetItem calls
            found: dict[Key, Item] = {}
            for key in keys:
                if key in self.items or key in self.details:
                    found[key] = {**self.details.get(key, (0, {}))[1], **self.items.get(key, {})}
            return found

    def get_commit(self, key: Key) -> CommitState:
        with self._lock:
            self.requests += 1
            return self.commits.get(key, CommitState())

    def put_commit(self, key: Key, state: CommitState) -> bool:
        with self._lock:
            self.requests += 1
            if self.commits.get(key, CommitState()).version != state.version:
                return False
            self.commits[key] = CommitState(
                version=state.version + 1, lines=state.lines, hours=dict(state.hours), days=dict(state.days)
            )
            return True

    def put_if_absent(self, key: Key, item: Mapping[str, str]) -> bool:
        with self._lock:
            self.requests += 1
            if key in self.markers:
                return False
            self.markers[key] = dict(item)
            return True


def _conforms(store: InMemoryRollupStore) -> RollupStore:  # mypy checks the fake against the port
    return store
