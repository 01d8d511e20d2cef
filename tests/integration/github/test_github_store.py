"""`DynamoGitHubStore` on the local stack's application table (moto): conditional writes."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from tracemark_common.prs.dynamo import DynamoGitHubStore
from tracemark_common.prs.records import DeliveryRecord, InstallationRecord, PullRequestState, RepositoryRecord


@pytest.fixture
def store(stack: Any) -> DynamoGitHubStore:
    return DynamoGitHubStore(stack.settings.app_table_name)


def unique() -> int:
    return int(uuid.uuid4().int % 10**12) + 1


def test_installations_and_repositories_round_trip(store: DynamoGitHubStore) -> None:
    inst = unique()
    store.put_installation(InstallationRecord(inst, "acme", "Organization", "t0", "t0"))
    store.put_installation(InstallationRecord(inst, "acme", "Organization", "t0", "t1", org="acme"))
    record = store.get_installation(inst)
    assert record is not None and (record.org, record.updated_at) == ("acme", "t1")
    assert any(r.id == inst for r in store.list_installations())
    repo = unique()
    store.put_repository(RepositoryRecord(repo, "acme/app", inst, "t0"))
    linked = store.update_repository(repo, lambda r: setattr(r, "project", "web"))
    assert linked is not None and linked.project == "web"
    assert [r.id for r in store.repositories_of(inst)] == [repo]
    assert store.update_repository(unique(), lambda r: None) is None
    assert store.get_repository(unique()) is None


def test_deliveries_are_recorded_once(store: DynamoGitHubStore) -> None:
    delivery = str(uuid.uuid4())
    assert store.record_delivery(DeliveryRecord(delivery, "installation", "created", "t")) is True
    assert store.record_delivery(DeliveryRecord(delivery, "installation", "created", "t")) is False


def test_concurrent_pull_updates_lose_nothing(store: DynamoGitHubStore) -> None:
    # Given 8 threads each appending to one PR's state (created by the first)
    repo = unique()

    def append(n: int) -> None:
        def change(state: PullRequestState) -> None:
            state.session_ids = [*state.session_ids, f"s{n}"]

        store.update_pull(repo, 1, change)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = store.get_pull(repo, 1)
    assert state is not None
    assert sorted(state.session_ids) == sorted(f"s{n}" for n in range(8))
    assert state.version == 8


def test_session_pull_links(store: DynamoGitHubStore) -> None:
    org = "o" + uuid.uuid4().hex[:8]
    store.link_session_pull(org, "s1", 5, 2)
    store.link_session_pull(org, "s1", 5, 2)
    store.link_session_pull(org, "s1", 4, 9)
    assert store.pulls_for_session(org, "s1") == [(4, 9), (5, 2)]
    assert store.pulls_for_session(org, "s2") == []
