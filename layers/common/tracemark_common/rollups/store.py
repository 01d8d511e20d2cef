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
    def add(self, key: Key, counters: Mapping[str, int], strings: Mapping[str, str]) -> None:
        """Atomically ADD `counters` to the item's numbers (missing ones start at 0) and SET
        `strings`, creating the item if needed."""

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        """The bucket items that exist among `keys` (eventually consistent is fine)."""

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
        self.items: dict[Key, Item] = {}
        self.commits: dict[Key, CommitState] = {}
        self.markers: dict[Key, dict[str, str]] = {}
        self.requests = 0

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def add(self, key: Key, counters: Mapping[str, int], strings: Mapping[str, str]) -> None:
        with self._lock:
            self.requests += 1
            item = self.items.setdefault(key, {})
            for name, value in counters.items():
                current = item.get(name, 0)
                assert isinstance(current, int)
                item[name] = current + value
            item.update(strings)

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        with self._lock:
            self.requests += (len(keys) + 99) // 100  # as many as DynamoDB BatchGetItem calls
            return {key: dict(self.items[key]) for key in keys if key in self.items}

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
