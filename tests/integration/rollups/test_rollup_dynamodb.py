"""The DynamoDB rollup store on moto gives the same numbers as the brute-force reference."""

from __future__ import annotations

import importlib.util
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from tracemark_common.rollups import CommitLines, RollupWriter, SessionFacts, query_dashboard
from tracemark_common.rollups.buckets import RANGES, short_hash
from tracemark_common.rollups.dynamo import DynamoRollupStore

_REF = Path(__file__).resolve().parents[2] / "unit" / "rollups" / "rollup_reference.py"
_spec = importlib.util.spec_from_file_location("rollup_reference_for_dynamo", _REF)
assert _spec and _spec.loader
ref = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ref
_spec.loader.exec_module(ref)


@dataclass
class Db:
    client: Any
    table: str


@pytest.fixture
def db() -> Iterator[Db]:
    # A table of its own: moto may already be running for the whole session (the `stack` fixture).
    table = f"rollups-{uuid.uuid4().hex[:12]}"
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        # The application table's key schema from template.yaml (pk/sk, and gsi2)
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi2pk", "gsi2sk")
            ],
            GlobalSecondaryIndexes=[  # gsi2 of template.yaml: the sweep finds pending rollup ledgers there
                {
                    "IndexName": "gsi2",
                    "KeySchema": [
                        {"AttributeName": "gsi2pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi2sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Db(client, table)


class CountingClient:
    """The real boto3 client, counting calls per operation."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        return getattr(self._client, name)


class AtomicCallsClient:
    """The real moto client with each call made atomic, as every DynamoDB request is (moto's
    in-process UpdateItem is not thread-safe). Threads still interleave between calls, so the
    optimistic version checks of the commit state really race."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            with self._lock:
                try:
                    return method(**kwargs)
                except self._client.exceptions.ConditionalCheckFailedException:
                    self.conflicts += 1
                    raise

        return call


def test_moto_store_matches_brute_force(db: Db) -> None:
    store = DynamoRollupStore(db.table, db.client)
    world = ref.run_workload(RollupWriter(store), seed=11, sessions=40)
    for range_ in RANGES:
        for project in (None, "web"):
            result = query_dashboard(store, "acme", range_, project, ref.NOW)
            ref.assert_matches(result, world, "acme", project, range_=range_, now=ref.NOW)


def test_a_24h_window_ending_at_any_hour_matches_brute_force(db: Db) -> None:
    # Given sessions over the last two days, across every hour of them

    store = DynamoRollupStore(db.table, db.client)
    world = ref.run_workload(RollupWriter(store), seed=5, sessions=120)
    # Then a window ending at each hour (so every split of 48 hours into days) gives exact numbers
    for back in range(26):
        now = ref.NOW - timedelta(hours=back)
        for project in (None, "web"):
            result = query_dashboard(store, "acme", "24h", project, now)
            ref.assert_matches(result, world, "acme", project, range_="24h", now=now)


def test_hour_packs_of_the_previous_layout_read_and_update_exactly(db: Db) -> None:

    from tracemark_common.rollups.packs import RUNNING_TOTALS, encode_hours, join_day

    # Given rollups whose hour packs are in the layout before running totals (records in `b`)
    store = DynamoRollupStore(db.table, db.client)
    world = ref.run_workload(RollupWriter(store), seed=9, sessions=60)
    packs = [
        item
        for item in db.client.scan(TableName=db.table)["Items"]
        if item["sk"]["S"].startswith("HP#") and item["pk"]["S"].startswith("ROLLUP#")
    ]
    assert packs
    for item in packs:
        totals = {name: item.pop(name)["B"] for name in RUNNING_TOTALS if name in item}
        item["b"] = {"B": encode_hours(join_day(item["b"]["B"], totals))}
        db.client.put_item(TableName=db.table, Item=item)
    # When the dashboard is read, and more sessions are written over them
    fresh = DynamoRollupStore(db.table, db.client)
    for range_ in ("24h", "7d"):
        ref.assert_matches(
            query_dashboard(fresh, "acme", range_, None, ref.NOW), world, "acme", None, range_=range_, now=ref.NOW
        )
    writer = RollupWriter(fresh)
    for i, hours_ago in enumerate((0, 3, 20, 30)):
        extra = SessionFacts(
            org="acme", project="web", session_id=f"late{i}", user="ana", user_kind="user",
            at=ref.NOW - timedelta(hours=hours_ago), total_tokens=10 + i,
        )  # fmt: skip
        writer.record_session(None, extra)
        world.sessions[extra.session_id] = extra
    # Then the numbers stay exact
    for range_ in ("24h", "7d"):
        result = query_dashboard(DynamoRollupStore(db.table, db.client), "acme", range_, None, ref.NOW)
        ref.assert_matches(result, world, "acme", None, range_=range_, now=ref.NOW)


def test_a_day_too_big_for_running_totals_keeps_records_in_its_hours(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracemark_common.rollups import dynamo

    # Given a limit on running totals that every busy day exceeds
    monkeypatch.setattr(dynamo, "RUNNING_TOTALS_MAX_BYTES", 200)
    store = DynamoRollupStore(db.table, db.client)
    world = ref.run_workload(RollupWriter(store), seed=6, org="big", sessions=80)
    # Then those packs have no running totals, and every window still counts exactly
    packs = [
        item
        for item in db.client.scan(TableName=db.table)["Items"]
        if item["sk"]["S"].startswith("HP#") and item["pk"]["S"] == "ROLLUP#O#big"
    ]
    assert packs and any(not any(name.startswith("c") for name in item) for item in packs)
    for back in (0, 7, 15):
        now = ref.NOW - timedelta(hours=back)
        result = query_dashboard(DynamoRollupStore(db.table, db.client), "big", "24h", None, now)
        ref.assert_matches(result, world, "big", None, range_="24h", now=now)


def test_query_request_count_is_independent_of_sessions(db: Db) -> None:
    counts = []
    for org, sessions in (("small", 5), ("large", 60)):
        ref.run_workload(RollupWriter(DynamoRollupStore(db.table, db.client)), seed=3, org=org, sessions=sessions)
        client = CountingClient(db.client)
        query_dashboard(DynamoRollupStore(db.table, client), org, "3m", None, ref.NOW)
        counts.append(client.calls)
    # 180 buckets and the organisation's user directory (the Top Users' names): 181 keys, two calls
    assert counts[0] == counts[1] == {"batch_get_item": 2}


def test_concurrent_writers_on_moto_give_exact_numbers(db: Db) -> None:
    # Given 20 threads recording sessions that share a bucket and a commit
    client = AtomicCallsClient(db.client)
    store = DynamoRollupStore(db.table, client)
    writer = RollupWriter(store, sleep=lambda _s: None, max_attempts=200)
    sha = "f" * 40
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def push(i: int) -> None:
        barrier.wait()
        try:
            facts = SessionFacts(
                org="acme",
                project="web",
                session_id=f"s{i}",
                user=f"u{i % 5}",
                user_kind="user",
                at=ref.NOW,
                total_tokens=10,
                commits={sha: CommitLines(30, 20, 5, 0)},
            )
            writer.record_session(None, facts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cards = query_dashboard(store, "acme", "24h", "web", ref.NOW)["cards"]
    assert cards["total_sessions"]["value"] == 20
    assert cards["total_tokens"]["value"] == 200
    assert cards["active_users"]["value"] == 5
    assert (cards["ai_authored_code"]["ai_lines"], cards["ai_authored_code"]["all_lines"]) == (100, 50)


def test_pr_marker_is_conditional_on_moto(db: Db) -> None:
    writer = RollupWriter(DynamoRollupStore(db.table, db.client))
    assert writer.record_pr_correlated("acme", None, 9, 1, ref.NOW) is True
    assert writer.record_pr_correlated("acme", "web", 9, 1, ref.NOW) is False
    result = query_dashboard(DynamoRollupStore(db.table, db.client), "acme", "24h", None, ref.NOW)
    assert result["cards"]["ai_assisted_prs"]["value"] == 1


def test_storage_failure_is_unavailable(db: Db) -> None:
    from tracemark_common.errors import Unavailable

    store = DynamoRollupStore("no-such-table", db.client)
    with pytest.raises(Unavailable):
        query_dashboard(store, "acme", "7d", None, ref.NOW)


def test_wide_session_is_split_under_the_expression_limit(db: Db) -> None:
    # Given one session with 150 models and 40 commits spread over many days (hundreds of attributes)

    from tracemark_common.rollups import ModelUsage

    store = DynamoRollupStore(db.table, db.client)
    writer = RollupWriter(store)
    models = {f"model-{i:03d}-" + "x" * 40: ModelUsage(total_tokens=i + 1) for i in range(150)}
    facts = SessionFacts(
        org="wide",
        project="web",
        session_id="w",
        user="u",
        user_kind="user",
        at=ref.NOW,
        models=models,
        commits={f"{i:040x}": CommitLines(3, 0, 1, 0) for i in range(40)},
    )
    writer.record_session(None, facts)
    for day in (1, 3, 8, 20, 50):  # the same commits in sessions on other days: g<d> terms
        writer.record_session(
            None,
            SessionFacts(
                org="wide",
                project="web",
                session_id=f"d{day}",
                user="u",
                user_kind="user",
                at=ref.NOW - timedelta(days=day),
                commits={f"{i:040x}": CommitLines(3, 0, 0, 0) for i in range(40)},
            ),
        )
    result = query_dashboard(store, "wide", "3m", None, ref.NOW)
    assert len(result["model_breakdown"]) == 150
    assert result["cards"]["ai_authored_code"]["all_lines"] == 120
    assert result["cards"]["total_sessions"]["value"] == 6


class ItemCountingClient(CountingClient):
    """Counts the items each BatchGetItem returns, and the attributes of each."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.items: list[tuple[str, ...]] = []

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls["batch_get_item"] = self.calls.get("batch_get_item", 0) + 1
        response = self._client.batch_get_item(**kwargs)
        for items in response.get("Responses", {}).values():
            self.items.extend(tuple(sorted(item)) for item in items)
        return response


def test_a_day_of_hours_is_one_item_and_a_24h_read_takes_two_running_totals_per_day(db: Db) -> None:
    # Given sessions in 30 different hours of the last 48 (a busy organisation)

    writer = RollupWriter(DynamoRollupStore(db.table, db.client))
    for hour in range(30):
        facts = SessionFacts(
            org="busy", project="web", session_id=f"h{hour}", user=f"u{hour % 7}", user_kind="user",
            at=ref.NOW - timedelta(hours=hour), total_tokens=hour + 1,
        )  # fmt: skip
        writer.record_session(None, facts)
    # When the 24h dashboard is read
    client = ItemCountingClient(db.client)
    result = query_dashboard(DynamoRollupStore(db.table, client), "busy", "24h", None, ref.NOW)
    # Then one request returned the day items the 48 hours touch that hold data (today and
    # yesterday), each with pk, sk, the hours' counters `b` and only the two running totals a
    # window ending at 15:xx needs (users and models of 00..15 and of 00..23), not 48 hours of
    # users; and the organisation's user directory (pk, sk, b), for the Top Users' names
    assert client.calls == {"batch_get_item": 1}
    assert sorted(client.items) == [("b", "c15", "c23", "pk", "sk")] * 2 + [("b", "pk", "sk")]
    assert {u["user"] for u in result["top_users"]} == {f"u{i}" for i in range(7)}
    assert result["cards"]["total_sessions"] == {"value": 24, "previous": 6, "delta": 18, "delta_pct": 300.0}
    assert [p["sessions"] for p in result["series"]] == [1] * 24


@pytest.mark.parametrize("damage", ["missing", "damaged", "partial"])
def test_top_users_missing_from_the_directory_are_looked_up_one_by_one(db: Db, damage: str) -> None:
    from tracemark_common.rollups.dynamo import _directory_key, _encode_directory

    # Given an organisation whose user directory is gone, damaged, or lacks a user (one written
    # when it was full, say)
    store = DynamoRollupStore(db.table, db.client)
    world = ref.run_workload(RollupWriter(store), seed=4, org="dir", sessions=50)
    pk, sk = _directory_key("dir")
    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    if damage == "missing":
        db.client.delete_item(TableName=db.table, Key=key)
    elif damage == "damaged":
        db.client.update_item(
            TableName=db.table, Key=key, UpdateExpression="SET b = :b", ExpressionAttributeValues={":b": {"B": b"?"}}
        )
    else:
        item = db.client.get_item(TableName=db.table, Key=key)["Item"]
        some = {bytes.fromhex(short_hash(u)): (u, k) for u, k in ref.USERS[:3]}
        item["b"] = {"B": _encode_directory(some)}
        db.client.put_item(TableName=db.table, Item=item)
    # When the dashboard is read
    client = CountingClient(db.client)
    result = query_dashboard(DynamoRollupStore(db.table, client), "dir", "7d", None, ref.NOW)
    # Then the Top Users still have their names (one more request, for those the directory lacks)
    ref.assert_matches(result, world, "dir", None, range_="7d", now=ref.NOW)
    assert client.calls == {"batch_get_item": 2}


def test_a_damaged_bucket_is_a_clear_503_not_a_crash(db: Db) -> None:
    from tracemark_common.errors import Unavailable
    from tracemark_common.rollups.buckets import bucket_index, bucket_key, scope_id

    RollupWriter(DynamoRollupStore(db.table, db.client)).record_session(
        None, SessionFacts(org="dmg", project="web", session_id="s", user="u", user_kind="user", at=ref.NOW)
    )
    key = bucket_key(scope_id("dmg"), "D", bucket_index("D", ref.NOW))
    db.client.update_item(
        TableName=db.table,
        Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}},
        UpdateExpression="SET b = :b",
        ExpressionAttributeValues={":b": {"B": b"not a bucket"}},
    )
    with pytest.raises(Unavailable) as info:
        query_dashboard(DynamoRollupStore(db.table, db.client), "dmg", "7d", None, ref.NOW)
    assert info.value.code == "rollup_unavailable"


class DyingStore(DynamoRollupStore):
    """The real adapter on moto, killed at its `crash_at`-th conditional write."""

    crash_at: int | None = None
    writes = 0

    def _conditional(self, operation: str, **kwargs: Any) -> bool:
        self.writes += 1
        if self.crash_at is not None and self.writes == self.crash_at:
            raise RuntimeError(f"killed at write {self.writes}")
        return super()._conditional(operation, **kwargs)


def test_an_update_killed_at_any_write_is_repaired_exactly_on_moto(db: Db) -> None:

    def session(**changes: Any) -> SessionFacts:
        base = SessionFacts(
            org="", project="web", session_id="s1", user="ana", user_kind="user", at=ref.NOW,
            total_tokens=10, commits={"c" * 40: CommitLines(30, 10, 12, 0)},
        )  # fmt: skip
        return SessionFacts(**{**base.__dict__, **changes})

    moved = {"at": ref.NOW - timedelta(days=2, hours=3), "project": "api", "total_tokens": 4}
    expected = None
    crash = 0
    while True:
        crash += 1
        org = f"kill{crash}"
        store = DyingStore(db.table, db.client)
        writer = RollupWriter(store, sleep=lambda _s: None)
        writer.record_session(None, session(org=org))
        writer.record_session(None, session(org=org, session_id="s0", user="bo"))
        store.crash_at = store.writes + crash
        try:
            writer.record_session(session(org=org), session(org=org, **moved))
            finished = True
        except RuntimeError:
            finished = False
            if crash % 2:  # half the time the client retries, half the time the sweep repairs it
                writer.record_session(session(org=org), session(org=org, **moved))
            else:
                assert writer.complete_pending(org, older_than_seconds=0) == 1
        numbers = [
            query_dashboard(DynamoRollupStore(db.table, db.client), org, r, p, ref.NOW)["cards"]
            for r in ("24h", "7d") for p in (None, "web", "api")
        ]  # fmt: skip
        if expected is None:
            expected = numbers
        assert numbers == expected, f"killed at write {crash}"
        if finished:
            break
    assert crash > 6
