"""The storage interface of the GitHub side (`GitHubStore`) and its in-memory fake.

Every change goes through `update_*` with a change function: the adapters apply it with a
version condition (optimistic concurrency), so two executions racing on one pull request
never lose an update. A change function may raise to abort the write (e.g. `PublishBusy`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Protocol

from tracemark_common.prs.records import (
    DeliveryRecord,
    InstallationRecord,
    PullRequestState,
    RepositoryRecord,
)


class GitHubStore(Protocol):
    def get_installation(self, installation_id: int) -> InstallationRecord | None: ...
    def put_installation(self, record: InstallationRecord) -> None: ...
    def update_installation(
        self, installation_id: int, change: Callable[[InstallationRecord], None]
    ) -> InstallationRecord | None: ...
    def list_installations(self) -> list[InstallationRecord]: ...

    def get_repository(self, repository_id: int) -> RepositoryRecord | None: ...
    def put_repository(self, record: RepositoryRecord) -> None: ...
    def update_repository(
        self, repository_id: int, change: Callable[[RepositoryRecord], None]
    ) -> RepositoryRecord | None: ...
    def repositories_of(self, installation_id: int) -> list[RepositoryRecord]: ...

    def record_delivery(self, record: DeliveryRecord) -> bool: ...  # False: seen before

    def get_pull(self, repository_id: int, number: int) -> PullRequestState | None: ...
    def update_pull(
        self, repository_id: int, number: int, change: Callable[[PullRequestState], None]
    ) -> PullRequestState: ...  # creates the state when missing

    def link_session_pull(self, org: str, session_id: str, repository_id: int, number: int) -> None: ...
    def pulls_for_session(self, org: str, session_id: str) -> list[tuple[int, int]]: ...


class MemoryGitHubStore:
    """`GitHubStore` in memory, thread-safe, with the same semantics as the DynamoDB adapter."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.installations: dict[int, InstallationRecord] = {}
        self.repositories: dict[int, RepositoryRecord] = {}
        self.deliveries: dict[str, DeliveryRecord] = {}
        self.pulls: dict[tuple[int, int], PullRequestState] = {}
        self.session_pulls: dict[tuple[str, str], set[tuple[int, int]]] = {}

    def get_installation(self, installation_id: int) -> InstallationRecord | None:
        with self._lock:
            return copy.deepcopy(self.installations.get(installation_id))

    def put_installation(self, record: InstallationRecord) -> None:
        with self._lock:
            self.installations[record.id] = copy.deepcopy(record)

    def update_installation(
        self, installation_id: int, change: Callable[[InstallationRecord], None]
    ) -> InstallationRecord | None:
        with self._lock:
            current = self.installations.get(installation_id)
            if current is None:
                return None
            record = copy.deepcopy(current)
            change(record)
            self.installations[installation_id] = record
            return copy.deepcopy(record)

    def list_installations(self) -> list[InstallationRecord]:
        with self._lock:
            return [copy.deepcopy(r) for _, r in sorted(self.installations.items())]

    def get_repository(self, repository_id: int) -> RepositoryRecord | None:
        with self._lock:
            return copy.deepcopy(self.repositories.get(repository_id))

    def put_repository(self, record: RepositoryRecord) -> None:
        with self._lock:
            self.repositories[record.id] = copy.deepcopy(record)

    def update_repository(
        self, repository_id: int, change: Callable[[RepositoryRecord], None]
    ) -> RepositoryRecord | None:
        with self._lock:
            current = self.repositories.get(repository_id)
            if current is None:
                return None
            record = copy.deepcopy(current)
            change(record)
            self.repositories[repository_id] = record
            return copy.deepcopy(record)

    def repositories_of(self, installation_id: int) -> list[RepositoryRecord]:
        with self._lock:
            found = [r for r in self.repositories.values() if r.installation_id == installation_id]
            return [copy.deepcopy(r) for r in sorted(found, key=lambda r: r.full_name)]

    def record_delivery(self, record: DeliveryRecord) -> bool:
        with self._lock:
            if record.id in self.deliveries:
                return False
            self.deliveries[record.id] = copy.deepcopy(record)
            return True

    def get_pull(self, repository_id: int, number: int) -> PullRequestState | None:
        with self._lock:
            return copy.deepcopy(self.pulls.get((repository_id, number)))

    def update_pull(
        self, repository_id: int, number: int, change: Callable[[PullRequestState], None]
    ) -> PullRequestState:
        with self._lock:
            current = self.pulls.get((repository_id, number)) or PullRequestState(repository_id, number)
            record = copy.deepcopy(current)
            change(record)
            record.version = current.version + 1
            self.pulls[(repository_id, number)] = record
            return copy.deepcopy(record)

    def link_session_pull(self, org: str, session_id: str, repository_id: int, number: int) -> None:
        with self._lock:
            self.session_pulls.setdefault((org, session_id), set()).add((repository_id, number))

    def pulls_for_session(self, org: str, session_id: str) -> list[tuple[int, int]]:
        with self._lock:
            return sorted(self.session_pulls.get((org, session_id), set()))
