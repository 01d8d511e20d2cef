"""The writer's optimistic updates: retried on a lost race, a clear 503 when contention persists."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from rollup_reference import NOW

from tracemark_common.errors import Unavailable
from tracemark_common.rollups import CommitLines, InMemoryRollupStore, RollupWriter, SessionFacts, query_dashboard
from tracemark_common.rollups.bucket import Bucket
from tracemark_common.rollups.buckets import Key
from tracemark_common.rollups.deltas import BucketDelta, CommitState


class RacingStore(InMemoryRollupStore):
    """Another writer gets in first `losses` times for every versioned write."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.lost: dict[Key, int] = {}

    def _lose(self, key: Key) -> bool:
        self.lost[key] = self.lost.get(key, 0) + 1
        return self.lost[key] <= self.losses

    def put_bucket(self, key: Key, bucket: Bucket, version: int, ops: Mapping[str, int]) -> bool:
        return False if self._lose(key) else super().put_bucket(key, bucket, version, ops)

    def put_commit(self, key: Key, state: CommitState) -> bool:
        return False if self._lose(key) else super().put_commit(key, state)


def _facts() -> SessionFacts:
    return SessionFacts(
        org="acme",
        project="web",
        session_id="s",
        user="ana",
        user_kind="user",
        at=NOW,
        total_tokens=5,
        commits={"a" * 40: CommitLines(10, 0, 4, 0)},
    )


def test_lost_races_are_retried_and_nothing_is_counted_twice() -> None:
    store = RacingStore(losses=3)
    sleeps: list[float] = []
    RollupWriter(store, sleep=sleeps.append).record_session(None, _facts())
    cards = query_dashboard(store, "acme", "24h", now=NOW)["cards"]
    assert (cards["total_sessions"]["value"], cards["total_tokens"]["value"]) == (1, 5)
    assert (cards["ai_authored_code"]["ai_lines"], cards["ai_authored_code"]["all_lines"]) == (4, 10)
    assert len(sleeps) == 3 * len(store.lost) and all(0 <= s <= 0.5 for s in sleeps)


def test_persistent_contention_is_a_clear_503() -> None:
    store = RacingStore(losses=10**6)
    with pytest.raises(Unavailable) as info:
        RollupWriter(store, sleep=lambda _s: None, max_attempts=4).record_session(None, _facts())
    assert info.value.code == "rollup_contention"


def test_bucket_drops_users_and_models_that_no_longer_count() -> None:
    u1, m1 = "1" * 16, "2" * 16
    added = BucketDelta({"sessions": 1, f"us#{u1}": 1, f"ut#{u1}": 7, f"ms#{m1}": 1})
    added.strings.update({f"mn#{m1}": "gpt"})
    bucket = Bucket.decode(Bucket().apply(added).encode())
    assert list(bucket.user_records()) == [(bytes.fromhex(u1), 1, 0, 7, 0)]
    assert (bucket.models, bucket.model_names) == ({bytes.fromhex(m1): (1, 0, 0, 0)}, {bytes.fromhex(m1): "gpt"})
    assert bucket.active_users == 1
    removed = BucketDelta({"sessions": -1, f"us#{u1}": -1, f"ut#{u1}": -7, f"ms#{m1}": -1})
    empty = Bucket.decode(bucket.apply(removed).encode())
    assert empty.is_empty() and empty.models == {} and empty.model_names == {} and empty.active_users == 0


def test_user_names_are_remembered_once_per_org_and_read_only_for_top_users() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    facts = _facts()
    writer.record_session(None, facts)
    writer.record_session(facts, facts.__class__(**{**facts.__dict__, "total_tokens": 9}))  # re-push: no new name
    assert list(store.names.values()) == [("ana", "user")]
    assert query_dashboard(store, "acme", "24h", now=NOW)["top_users"][0]["user"] == "ana"


def test_unpriced_models_are_counted_not_priced_at_zero() -> None:
    from tracemark_common.rollups import ModelUsage

    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    known = ModelUsage(total_tokens=10, cost_usd=0.25)
    writer.record_session(None, _facts())  # no models
    priced = SessionFacts(org="acme", project="web", session_id="p", user="bo", user_kind="user", at=NOW,
                          models={"claude-opus-4-6": known}, total_tokens=10, cost_usd=0.25)  # fmt: skip
    mixed = SessionFacts(org="acme", project="web", session_id="m", user="bo", user_kind="user", at=NOW,
                         models={"claude-opus-4-6": known, "composer-2": ModelUsage(total_tokens=5, priced=False)},
                         total_tokens=15, cost_usd=0.25, unpriced=True)  # fmt: skip
    writer.record_session(None, priced)
    writer.record_session(None, mixed)
    result = query_dashboard(store, "acme", "24h", now=NOW)
    cost = result["cards"]["total_cost_usd"]
    assert (cost["value"], cost["unpriced_sessions"], cost["previous_unpriced_sessions"]) == (0.5, 1, 0)
    rows = {row["model"]: row for row in result["model_breakdown"]}
    assert (rows["composer-2"]["cost_usd"], rows["composer-2"]["unpriced_sessions"]) == (None, 1)
    assert (rows["claude-opus-4-6"]["cost_usd"], rows["claude-opus-4-6"]["unpriced_sessions"]) == (0.5, 0)
    writer.record_session(mixed, None)  # deleting takes the unpriced count back
    assert query_dashboard(store, "acme", "24h", now=NOW)["cards"]["total_cost_usd"]["unpriced_sessions"] == 0
