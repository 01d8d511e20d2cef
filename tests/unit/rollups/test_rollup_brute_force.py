"""Every dashboard card from the rollups equals the brute-force answer over the sessions."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from rollup_reference import NOW, PROJECTS, World, assert_matches, query_times, run_workload

from tracemark_common.errors import BadRequest
from tracemark_common.rollups import (
    RANGES,
    CommitLines,
    InMemoryRollupStore,
    ModelUsage,
    RollupWriter,
    SessionFacts,
    query_dashboard,
)


@pytest.mark.parametrize("seed", range(6))
def test_every_card_matches_brute_force(seed: int) -> None:
    # Given a random history of pushes, re-pushes, deletions and PR correlations
    store = InMemoryRollupStore()
    world = run_workload(RollupWriter(store), seed)
    # Then every range, scope and reference time gives the brute-force numbers
    for now in query_times():
        for range_ in RANGES:
            for project in (None, *PROJECTS, "nope"):
                result = query_dashboard(store, "acme", range_, project, now)
                assert_matches(result, world, "acme", project, range_=range_, now=now)


def _facts(sid: str, *, user: str = "ana", at=NOW, commits=None, models=None, project: str = "web") -> SessionFacts:
    return SessionFacts(
        org="acme",
        project=project,
        session_id=sid,
        user=user,
        user_kind="user",
        at=at,
        models=models or {},
        commits=commits or {},
    )


def test_repush_that_moves_the_time_moves_the_session_between_buckets() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    old = _facts("s1", at=NOW - timedelta(days=10), commits={"a" * 40: CommitLines(10, 0, 5, 0)})
    writer.record_session(None, old)
    assert query_dashboard(store, "acme", "7d", now=NOW)["cards"]["total_sessions"]["value"] == 0
    # When the session is pushed again with a later end
    writer.record_session(old, replace(old, at=NOW - timedelta(hours=1)))
    # Then it left its old day and counts in the new one, lines included
    result = query_dashboard(store, "acme", "7d", now=NOW)
    assert result["cards"]["total_sessions"] == {"value": 1, "previous": 0, "delta": 1, "delta_pct": None}
    assert result["cards"]["ai_authored_code"]["value"] == 50.0
    assert query_dashboard(store, "acme", "30d", now=NOW)["cards"]["total_sessions"]["previous"] == 0


def test_deleted_session_takes_everything_back() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    facts = _facts(
        "s1", commits={"b" * 40: CommitLines(4, 4, 2, 0)}, models={"m": ModelUsage(total_tokens=7, cost_usd=0.5)}
    )
    writer.record_session(None, facts)
    writer.record_session(facts, None)
    for key in list(store.buckets):
        assert store.get_bucket(key)[1].is_empty(), key
    result = query_dashboard(store, "acme", "24h", now=NOW)
    assert result["has_data"] is False
    assert result["cards"]["ai_authored_code"]["value"] is None
    assert result["top_users"] == [] and result["model_breakdown"] == []


def test_commit_shared_by_two_sessions_counts_its_lines_once() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    sha = "c" * 40
    writer.record_session(None, _facts("s1", at=NOW - timedelta(days=3), commits={sha: CommitLines(80, 20, 30, 0)}))
    writer.record_session(None, _facts("s2", user="bo", at=NOW, commits={sha.upper(): CommitLines(80, 20, 20, 0)}))
    code = query_dashboard(store, "acme", "7d", now=NOW)["cards"]["ai_authored_code"]
    assert (code["ai_lines"], code["all_lines"], code["value"]) == (50, 100, 50.0)
    # a period holding only one of the two sessions still counts the commit once
    assert query_dashboard(store, "acme", "24h", now=NOW)["cards"]["ai_authored_code"]["all_lines"] == 100


def test_same_facts_twice_change_nothing() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    facts = _facts("s1", commits={"d" * 40: CommitLines(1, 1, 1, 1)})
    writer.record_session(None, facts)
    requests = store.requests
    writer.record_session(facts, facts)
    assert store.requests == requests + 1  # the session's ledger is read; nothing is written


def test_pr_counts_once_on_the_day_it_was_first_correlated() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    assert writer.record_pr_correlated("acme", "web", 42, 7, NOW - timedelta(days=8)) is True
    assert writer.record_pr_correlated("acme", "web", "42", 7, NOW) is False
    cards = query_dashboard(store, "acme", "7d", now=NOW)["cards"]
    assert cards["ai_assisted_prs"] == {"value": 0, "previous": 1, "delta": -1, "delta_pct": -100.0}
    assert query_dashboard(store, "acme", "7d", "web", NOW)["cards"]["ai_assisted_prs"]["previous"] == 1
    assert query_dashboard(store, "acme", "7d", "api", NOW)["cards"]["ai_assisted_prs"]["previous"] == 0


def test_concurrent_sessions_on_one_bucket_and_one_commit_give_exact_numbers() -> None:
    # Given 20 writers recording different sessions that share a bucket, a user and a commit
    store = InMemoryRollupStore()
    writer = RollupWriter(store, sleep=lambda _s: None)
    sha = "e" * 40
    barrier = threading.Barrier(20)

    def push(i: int) -> None:
        barrier.wait()
        writer.record_session(None, _facts(f"s{i}", user=f"u{i % 4}", commits={sha: CommitLines(60, 40, 1, 0)}))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cards = query_dashboard(store, "acme", "24h", now=NOW)["cards"]
    assert cards["total_sessions"]["value"] == 20
    assert cards["active_users"]["value"] == 4
    assert (cards["ai_authored_code"]["ai_lines"], cards["ai_authored_code"]["all_lines"]) == (20, 100)


@pytest.mark.parametrize("range_", list(RANGES))
def test_query_cost_grows_with_buckets_not_sessions(range_: str) -> None:
    small, large = InMemoryRollupStore(), InMemoryRollupStore()
    run_workload(RollupWriter(small), seed=1, sessions=10)
    run_workload(RollupWriter(large), seed=1, sessions=400)
    costs = []
    for store in (small, large):
        before = store.requests
        query_dashboard(store, "acme", range_, now=NOW)
        costs.append(store.requests - before)
    # the batched reads of the buckets and of the organisation's user directory (Top Users' names)
    assert costs[0] == costs[1] == (2 * RANGES[range_].buckets + 1 + 99) // 100


def test_top_users_are_ten_and_badge_service_accounts() -> None:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    for i in range(14):
        for j in range(i + 1):
            facts = replace(_facts(f"s{i}-{j}", user=f"user{i:02d}"), user_kind="service" if i == 13 else "user")
            writer.record_session(None, facts)
    top = query_dashboard(store, "acme", "24h", now=NOW)["top_users"]
    assert [u["user"] for u in top] == [f"user{i:02d}" for i in range(13, 3, -1)]
    assert top[0]["service_account"] is True and top[1]["service_account"] is False


@pytest.mark.parametrize("bad", ["", "1d", "24H", "7d ", "x" * 10_000, "3m;drop"])
def test_unknown_range_is_a_bad_request(bad: str) -> None:
    with pytest.raises(BadRequest) as info:
        query_dashboard(InMemoryRollupStore(), "acme", bad, now=NOW)
    assert info.value.code == "bad_range"
    assert len(info.value.message) < 200


def test_hostile_names_are_kept_apart() -> None:
    # Given names with separators and huge strings, each scope stays its own
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    huge = "m" * 5000
    writer.record_session(None, _facts("s1", project="a#b", user="x" * 3000, models={huge: ModelUsage(total_tokens=3)}))
    writer.record_session(None, _facts("s2", project="a"))
    assert query_dashboard(store, "acme", "24h", "a#b", NOW)["cards"]["total_sessions"]["value"] == 1
    assert query_dashboard(store, "acme", "24h", "a", NOW)["cards"]["total_sessions"]["value"] == 1
    result = query_dashboard(store, "acme", "24h", None, NOW)
    assert result["model_breakdown"][0]["model"] == huge
    assert max(len(blob) for _version, blob in store.buckets.values()) < 600  # names stored compressed, once


def test_world_reference_is_not_trivial() -> None:
    # Guard: the random workload really produces shared commits, moves and PRs across periods
    store = InMemoryRollupStore()
    world: World = run_workload(RollupWriter(store), seed=0)
    shas = [sha for s in world.sessions.values() for sha in s.commits]
    assert len(shas) > len(set(shas))
    assert len(world.prs) > 5
    result = query_dashboard(store, "acme", "3m", now=NOW)
    assert result["cards"]["total_sessions"]["value"] > 10
    assert result["cards"]["ai_authored_code"]["all_lines"] > 0


def test_cards_are_also_at_the_top_level() -> None:
    store = InMemoryRollupStore()
    RollupWriter(store).record_session(None, _facts("s1"))
    result = query_dashboard(store, "acme", "7d", now=NOW)
    for key, value in result["cards"].items():
        assert result[key] == value
    assert result["total_sessions"]["value"] == 1
