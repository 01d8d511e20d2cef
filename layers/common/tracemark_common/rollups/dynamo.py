"""The rollup store on the DynamoDB application table (server only: imports boto3).

Item layout (docs/architecture.md, "Dashboard rollups"):
- `pk=ROLLUP#<scope>`, `sk=D#<yyyy-mm-dd>`: one daily bucket, the binary `Bucket` in `b` with
  version `v` (replaced whole under a version condition).
- `pk=ROLLUP#<scope>`, `sk=HP#<yyyy-mm-dd>`: the day's 24 hourly buckets in one item: `b` holds
  each hour's counters without user and model records, `c00`..`c23` the records summed from
  00:00 to that hour (`rollups.packs`); version `v` for the whole pack. A `24h` query reads 2 or
  3 items and at most two running totals of each, so its cost is the same for an organisation
  with a session a day and one with a thousand an hour.
- `pk=ROLLUPUSER#O#<org>`, `sk=<user hash, 16 hex>`: the user's `name` and `kind`; `sk=DIR`: the
  organisation's user directory (every user's name and kind, best effort up to 300 KB), read in
  the same request as the buckets.
- `pk=ROLLUPCOMMIT#<scope>#<sha>`, `sk=STATE`: a commit's de-duplication state (`v` version,
  `lines`, maps `h` and `d` of bucket label -> sessions), written with a version condition.
- `pk=ROLLUPPR#<org>#<repo id>#<number>`, `sk=FIRST`: the first correlation of a PR.

A dashboard read projects `pk`, `sk`, `b` and the running totals its hours need, whatever the
buckets count.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tracemark_common.errors import Unavailable
from tracemark_common.rollups.bucket import Bucket, CorruptBucket, Totals
from tracemark_common.rollups.buckets import Key, scope_id
from tracemark_common.rollups.deltas import CommitState
from tracemark_common.rollups.ledger import Ledger, Pending, facts_from_json, facts_to_json, prune_ops
from tracemark_common.rollups.packs import (
    RUNNING_TOTALS,
    decode_hours,
    encode_hours,
    hours_totals,
    join_day,
    running_total,
    split_day,
)
from tracemark_common.rollups.store import PeriodsRead, RollupStore

BATCH_GET_MAX = 100
MAX_UNPROCESSED_ROUNDS = 8
BLOB = "b"
VERSION = "v"
OPS = "o"  # operation id (hour-prefixed in a pack) -> epoch seconds: see rollups.ledger
HOUR_PREFIX = "H#"
PACK_PREFIX = "HP#"
_PACK_CACHE_MAX = 512
# The organisation's user directory (`pk=ROLLUPUSER#O#<org>`, `sk=DIR`; a user's own item has a
# hex hash as `sk`): every user's name and kind in one item, read with the buckets.
DIRECTORY_SK = "DIR"
DIRECTORY_MAX_BYTES = 300_000  # compressed, under DynamoDB's 400 KB item limit: ~10,000 users
DIRECTORY_NAME_MAX = 256
RUNNING_TOTALS_MAX_BYTES = 300_000  # an hour pack's blobs, under DynamoDB's 400 KB item limit


def _key(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def _pack_of(key: Key) -> tuple[Key, int] | None:
    """(the day's hour-pack item, hour) for an hourly bucket key; None for a daily one."""
    pk, sk = key
    if not sk.startswith(HOUR_PREFIX):
        return None
    label = sk[len(HOUR_PREFIX) :]  # yyyy-mm-ddThh
    return (pk, PACK_PREFIX + label[:10]), int(label[11:13])


def item_key(key: Key) -> Key:
    """The DynamoDB item that holds a bucket: itself for a day, the day's hour pack for an hour."""
    packed = _pack_of(key)
    return key if packed is None else packed[0]


def _user_key(org: str, ident: bytes) -> Key:
    return f"ROLLUPUSER#{scope_id(org)}", ident.hex()


def _bucket(blob: bytes | None, *, raw: bool = False) -> Bucket:
    if not blob:
        return Bucket()
    try:
        return Bucket.from_bytes(blob) if raw else Bucket.decode(blob)
    except CorruptBucket as exc:
        raise Unavailable(f"dashboard rollups: {exc}", code="rollup_unavailable") from exc


def _version(item: Mapping[str, Any]) -> int:
    return int(item[VERSION]["N"]) if VERSION in item else 0


def _ops(item: Mapping[str, Any]) -> dict[str, int]:
    return {op: int(at["N"]) for op, at in item.get(OPS, {}).get("M", {}).items()}


def _directory_key(org: str) -> Key:
    return f"ROLLUPUSER#{scope_id(org)}", DIRECTORY_SK


def _encode_directory(entries: Mapping[bytes, tuple[str, str]]) -> bytes:
    body = {ident.hex(): [name, kind] for ident, (name, kind) in sorted(entries.items())}
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)


def _decode_directory(blob: bytes) -> dict[bytes, tuple[str, str]]:
    try:
        body = json.loads(zlib.decompress(blob))
        return {bytes.fromhex(h): (str(entry[0]), str(entry[1])) for h, entry in body.items()}
    except (zlib.error, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CorruptBucket("damaged user directory") from exc


def _runs(hours: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted hours as runs of consecutive ones: [0, 1, 2, 5] -> [(0, 2), (5, 5)]."""
    runs: list[tuple[int, int]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour - 1:
            runs[-1] = (runs[-1][0], hour)
        else:
            runs.append((hour, hour))
    return runs


def _counts(attr: Mapping[str, Any] | None) -> dict[str, int]:
    if not attr or "M" not in attr:
        return {}
    return {label: int(v["N"]) for label, v in attr["M"].items() if int(v["N"]) > 0}


class DynamoRollupStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client: Any = client or boto3.client("dynamodb")
        # The hour packs read by get_bucket, by version, so put_bucket can rewrite the other
        # hours of the pack without reading it again. A version names exactly one content, so
        # an entry another thread cached is as good as our own.
        self._packs: dict[Key, tuple[int, dict[int, bytes], dict[str, int]]] = {}
        self._packs_lock = threading.Lock()
        self._directories: dict[str, set[bytes]] = {}  # org -> users known to be in its directory

    # ---- buckets ----------------------------------------------------------------------------

    def get_bucket(self, key: Key) -> tuple[int, Bucket, dict[str, int]]:
        packed = _pack_of(key)
        if packed is None:
            item = self._read(key, project=True)
            return _version(item), _bucket(item[BLOB]["B"] if BLOB in item else None), _ops(item)
        pack_key, hour = packed
        version, hours, ops = self._read_pack(pack_key)
        prefix = f"{hour:02d}:"
        mine = {op[len(prefix) :]: at for op, at in ops.items() if op.startswith(prefix)}
        return version, _bucket(hours.get(hour), raw=True), mine

    def put_bucket(self, key: Key, bucket: Bucket, version: int, ops: Mapping[str, int]) -> bool:
        packed = _pack_of(key)
        if packed is None:
            return self._write(key, {BLOB: bucket.encode()}, version, ops)
        pack_key, hour = packed
        with self._packs_lock:
            cached = self._packs.get(pack_key)
        if cached is None or cached[0] != version:
            cached = self._read_pack(pack_key)
            if cached[0] != version:
                return False
        hours = dict(cached[1])
        if bucket.is_empty():
            hours.pop(hour, None)
        else:
            hours[hour] = bucket.to_bytes()
        prefix = f"{hour:02d}:"
        newest = max(ops.values(), default=0)
        others = {op: at for op, at in cached[2].items() if not op.startswith(prefix)}
        pack_ops = {**prune_ops(others, newest), **{prefix + op: at for op, at in ops.items()}}
        try:
            bare, totals = split_day(hours)
        except CorruptBucket as exc:
            raise Unavailable(f"dashboard rollups: {exc}", code="rollup_unavailable") from exc
        blobs = {BLOB: bare, **totals}
        if sum(map(len, blobs.values())) > RUNNING_TOTALS_MAX_BYTES:
            # A day with more users than running totals fit in one item: the hours keep their
            # own records (the layout before running totals, which reads the same, only slower).
            blobs = {BLOB: encode_hours(hours)}
        if not self._write(pack_key, blobs, version, pack_ops):
            return False
        self._remember(pack_key, version + 1, hours, pack_ops)
        return True

    def read_periods(self, org: str, periods: Sequence[Sequence[Key]]) -> PeriodsRead:
        plan = _ReadPlan(periods, _directory_key(org))
        attributes = {f"#a{i}": name for i, name in enumerate([BLOB, *sorted(plan.totals_wanted)])}
        raw = self._batch_items(list(plan.items), "pk, sk, " + ", ".join(attributes), attributes, strict=True)
        try:
            return plan.result(raw)
        except CorruptBucket as exc:
            raise Unavailable(f"dashboard rollups: {exc}", code="rollup_unavailable") from exc

    def _read(self, key: Key, *, project: bool) -> dict[str, Any]:
        projection = (
            {"ProjectionExpression": "#v, #b, #o", "ExpressionAttributeNames": {"#v": VERSION, "#b": BLOB, "#o": OPS}}
            if project
            else {}
        )
        response = self._call("get_item", TableName=self.table_name, Key=_key(key), ConsistentRead=True, **projection)
        item: dict[str, Any] = response.get("Item") or {}
        return item

    def _read_pack(self, pack_key: Key) -> tuple[int, dict[int, bytes], dict[str, int]]:
        item = self._read(pack_key, project=False)  # `b`, every running total, version and ops
        totals = {name: item[name]["B"] for name in RUNNING_TOTALS if name in item}
        try:
            hours = join_day(item[BLOB]["B"] if BLOB in item else b"", totals)
        except CorruptBucket as exc:
            raise Unavailable(f"dashboard rollups: {exc}", code="rollup_unavailable") from exc
        version, ops = _version(item), _ops(item)
        self._remember(pack_key, version, hours, ops)
        return version, hours, ops

    def _remember(self, pack_key: Key, version: int, hours: dict[int, bytes], ops: dict[str, int]) -> None:
        with self._packs_lock:
            if len(self._packs) >= _PACK_CACHE_MAX:
                self._packs.clear()
            current = self._packs.get(pack_key)
            if current is None or current[0] <= version:
                self._packs[pack_key] = (version, hours, ops)

    def _write(
        self, key: Key, blobs: Mapping[str, bytes], version: int, ops: Mapping[str, int], entity: str = "rollup"
    ) -> bool:
        """Replace the whole item (its blobs: attribute -> bytes, and ops) with the next version,
        only if the stored version is still `version`."""
        item: dict[str, Any] = {
            **_key(key),
            "entity": {"S": entity},
            VERSION: {"N": str(version + 1)},
            OPS: {"M": {op: {"N": str(at)} for op, at in ops.items()}},
            **{name: {"B": blob} for name, blob in blobs.items()},
        }
        if version:
            condition: dict[str, Any] = {
                "ConditionExpression": "#v = :current",
                "ExpressionAttributeValues": {":current": {"N": str(version)}},
            }
        else:
            condition = {"ConditionExpression": "attribute_not_exists(#v)"}
        return self._conditional(
            "put_item", TableName=self.table_name, Item=item, ExpressionAttributeNames={"#v": VERSION}, **condition
        )

    def _batch_items(
        self, keys: Sequence[Key], projection: str, names: Mapping[str, str], *, strict: bool
    ) -> dict[Key, dict[str, Any]]:
        """The items among `keys`, projected, in BatchGetItem calls of at most 100 keys, retrying
        unprocessed keys with backoff. Keys still unprocessed after that: Unavailable when
        `strict`, else simply missing."""
        found: dict[Key, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [_key(k) for k in keys[start : start + BATCH_GET_MAX]],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": dict(names),
                }
            }
            for round_ in range(MAX_UNPROCESSED_ROUNDS):
                response = self._call("batch_get_item", RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    found[(raw["pk"]["S"], raw["sk"]["S"])] = raw
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**round_, 1.0))
            if request and strict:
                raise Unavailable("dashboard rollups: storage is throttling reads; retry", code="rollup_unavailable")
        return found

    # ---- session ledgers ---------------------------------------------------------------------

    def get_ledger(self, key: Key) -> Ledger:
        response = self._call("get_item", TableName=self.table_name, Key=_key(key), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return Ledger()
        pending = None
        if "pending" in item:
            raw = json.loads(item["pending"]["S"])
            pending = Pending(
                op=raw["op"],
                before=facts_from_json(raw["before"]),
                after=facts_from_json(raw["after"]),
                started=datetime.fromisoformat(raw["started"]),
            )
        return Ledger(version=int(item["v"]["N"]), applied=facts_from_json(item["applied"]["S"]), pending=pending)

    def put_ledger(self, key: Key, ledger: Ledger, version: int) -> bool:
        item: dict[str, Any] = {
            **_key(key),
            "entity": {"S": "rollup_ledger"},
            "v": {"N": str(version + 1)},
            "applied": {"S": facts_to_json(ledger.applied)},
        }
        pending = ledger.pending
        if pending is not None:
            facts = pending.after or pending.before
            raw = {
                "op": pending.op,
                "before": facts_to_json(pending.before),
                "after": facts_to_json(pending.after),
                "started": pending.started.isoformat(),
            }
            item["pending"] = {"S": json.dumps(raw)}
            if facts is not None:  # the sparse index the sweep reads
                item["gsi2pk"] = {"S": f"ROLLUPPENDING#{scope_id(facts.org)}"}
                item["gsi2sk"] = {"S": f"{pending.started.isoformat()}#{facts.session_id}"}
                item["org"] = {"S": facts.org}
                item["sid"] = {"S": facts.session_id}
        if version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": {"N": str(version)}}}
        return self._conditional("put_item", TableName=self.table_name, Item=item, **condition)

    def pending_ledgers(self, org: str, started_before: datetime, limit: int) -> list[tuple[str, str]]:
        response = self._call(
            "query",
            TableName=self.table_name,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :p AND gsi2sk < :cut",
            ExpressionAttributeValues={
                ":p": {"S": f"ROLLUPPENDING#{scope_id(org)}"},
                ":cut": {"S": started_before.isoformat()},
            },
            Limit=limit,
        )
        return [(i["org"]["S"], i["sid"]["S"]) for i in response.get("Items", []) if "org" in i and "sid" in i]

    # ---- user names -------------------------------------------------------------------------

    def put_user_names(self, org: str, names: Mapping[bytes, tuple[str, str]]) -> None:
        for ident, (name, kind) in names.items():
            self._call(
                "put_item",
                TableName=self.table_name,
                Item={
                    **_key(_user_key(org, ident)),
                    "entity": {"S": "rollup_user"},
                    "name": {"S": name},
                    "kind": {"S": kind},
                },
            )
        self._add_to_directory(org, names)

    def get_user_names(self, org: str, hashes: Sequence[bytes]) -> dict[bytes, tuple[str, str]]:
        wanted = {_user_key(org, ident): ident for ident in hashes}
        items = self._batch_items(list(wanted), "pk, sk, #n, #k", {"#n": "name", "#k": "kind"}, strict=False)
        # a name that could not be read shows as its hash: the numbers stay right
        return {
            wanted[key]: (item["name"]["S"], item.get("kind", {}).get("S", "user"))
            for key, item in items.items()
            if key in wanted and "name" in item
        }

    def _add_to_directory(self, org: str, names: Mapping[bytes, tuple[str, str]]) -> None:
        """Add users to the organisation's directory item (best effort: the per-user items above
        are the record, and a query looks up there whoever the directory lacks)."""
        key = _directory_key(org)
        with self._packs_lock:
            known = self._directories.get(org)
        if known is not None and all(ident in known for ident in names):
            return
        for _ in range(3):
            item = self._read(key, project=True)
            try:
                entries = _decode_directory(item[BLOB]["B"]) if BLOB in item else {}
            except CorruptBucket:
                entries = {}  # rebuilt from the users seen from now on; older ones fall back
            missing = {i: n for i, n in names.items() if i not in entries and len(n[0]) <= DIRECTORY_NAME_MAX}
            if missing:
                blob = _encode_directory({**entries, **missing})
                if len(blob) > DIRECTORY_MAX_BYTES:
                    missing = {}  # full: these users are found through their own items
                elif not self._write(key, {BLOB: blob}, _version(item), {}, entity="rollup_user_directory"):
                    continue
                entries = {**entries, **missing}
            with self._packs_lock:
                self._directories[org] = set(entries) | set(names)
            return

    # ---- commits and PRs --------------------------------------------------------------------

    def get_commit(self, key: Key) -> CommitState:
        response = self._call("get_item", TableName=self.table_name, Key=_key(key), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return CommitState()
        ops = json.loads(item["ops"]["S"]) if "ops" in item else {}
        return CommitState(
            version=int(item["v"]["N"]),
            lines=int(item.get("lines", {"N": "0"})["N"]),
            hours=_counts(item.get("h")),
            days=_counts(item.get("d")),
            ops={op: (at, CommitState(lines=lines, hours=h, days=d)) for op, (at, lines, h, d) in ops.items()},
        )

    def put_commit(self, key: Key, state: CommitState) -> bool:
        item = {
            **_key(key),
            "entity": {"S": "rollup_commit"},
            "v": {"N": str(state.version + 1)},
            "lines": {"N": str(state.lines)},
            "h": {"M": {label: {"N": str(n)} for label, n in state.hours.items()}},
            "d": {"M": {label: {"N": str(n)} for label, n in state.days.items()}},
            "ops": {"S": json.dumps({op: [at, b.lines, b.hours, b.days] for op, (at, b) in state.ops.items()})},
        }
        if state.version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "v = :v",
                "ExpressionAttributeValues": {":v": {"N": str(state.version)}},
            }
        return self._conditional("put_item", TableName=self.table_name, Item=item, **condition)

    def put_if_absent(self, key: Key, item: Mapping[str, str]) -> bool:
        body = {**_key(key), "entity": {"S": "rollup_pr"}, **{k: {"S": v} for k, v in item.items()}}
        return self._conditional(
            "put_item", TableName=self.table_name, Item=body, ConditionExpression="attribute_not_exists(pk)"
        )

    def get_marker(self, key: Key) -> dict[str, str] | None:
        response = self._call("get_item", TableName=self.table_name, Key=_key(key), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        return {name: value["S"] for name, value in item.items() if "S" in value and name not in {"pk", "sk"}}

    def set_marker(self, key: Key, name: str, value: str) -> None:
        self._call(
            "update_item",
            TableName=self.table_name,
            Key=_key(key),
            UpdateExpression="SET #n = :v",
            ExpressionAttributeNames={"#n": name},
            ExpressionAttributeValues={":v": {"S": value}},
        )

    def _conditional(self, operation: str, **kwargs: Any) -> bool:
        try:
            self._call(operation, **kwargs)
        except _ConditionFailed:
            return False
        return True

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed from exc
            raise Unavailable(f"dashboard rollups: {operation} failed ({code})", code="rollup_unavailable") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"dashboard rollups: {operation} failed ({exc})", code="rollup_unavailable") from exc


class _ReadPlan:
    """Which items a dashboard read fetches, and how it makes buckets and totals of them: a day
    is its own item; hours a..b of a day are in the day's pack, whose records come from the
    running totals c{b} and c{a-1} (rollups.packs); and the organisation's user directory."""

    def __init__(self, periods: Sequence[Sequence[Key]], directory: Key) -> None:
        self.directory = directory
        self.items: dict[Key, None] = {directory: None}
        self.pack_hours: dict[Key, set[int]] = {}
        self.totals_wanted: set[str] = set()
        self.plans: list[tuple[list[Key], dict[Key, list[tuple[int, int]]]]] = []
        self.located: dict[Key, tuple[Key, int] | None] = {}  # bucket key -> (pack, hour), None for a day
        for keys in periods:
            days: list[Key] = []
            hours: dict[Key, set[int]] = {}
            for key in keys:
                packed = self.located[key] = _pack_of(key)
                if packed is None:
                    days.append(key)
                    self.items[key] = None
                else:
                    hours.setdefault(packed[0], set()).add(packed[1])
                    self.pack_hours.setdefault(packed[0], set()).add(packed[1])
                    self.items[packed[0]] = None
            runs = {pack: _runs(sorted(hs)) for pack, hs in hours.items()}
            for first, last in (run for pack_runs in runs.values() for run in pack_runs):
                self.totals_wanted.update([running_total(last)] + ([running_total(first - 1)] if first else []))
            self.plans.append((days, runs))

    def result(self, raw: Mapping[Key, Mapping[str, Any]]) -> PeriodsRead:
        daily: dict[Key, Bucket] = {}
        packs: dict[Key, tuple[dict[int, Bucket], dict[str, Bucket]]] = {}
        names: dict[bytes, tuple[str, str]] = {}
        for item_key, item in raw.items():
            blob = item[BLOB]["B"] if BLOB in item else b""
            if item_key == self.directory:
                try:
                    names = _decode_directory(blob)
                except CorruptBucket:
                    names = {}  # the query looks the Top Users up one by one
            elif not item_key[1].startswith(PACK_PREFIX):
                daily[item_key] = Bucket.decode(blob) if blob else Bucket()
            else:
                needed = self.pack_hours[item_key]  # only the hours asked for are decoded
                hours = {h: Bucket.from_bytes(r) for h, r in decode_hours(blob).items() if h in needed}
                packs[item_key] = hours, {n: Bucket.decode(item[n]["B"]) for n in self.totals_wanted if n in item}
        found: dict[Key, Bucket] = {}
        for key, packed in self.located.items():
            bucket = daily.get(key) if packed is None else packs.get(packed[0], ({}, {}))[0].get(packed[1])
            if bucket is not None:
                found[key] = bucket
        totals = []
        for days, runs in self.plans:
            total = Totals().add_all(daily[key] for key in days if key in daily)
            for pack_key, pack_runs in runs.items():
                for first, last in pack_runs if pack_key in packs else ():
                    hours_totals(*packs[pack_key], first, last, into=total)
            totals.append(total)
        return PeriodsRead(found, totals, names)


class _ConditionFailed(Exception):
    pass


@lru_cache(maxsize=4)
def _store_for(table_name: str) -> DynamoRollupStore:
    return DynamoRollupStore(table_name)


def rollup_store_from_settings() -> DynamoRollupStore:
    """The store on the application table named by the settings (cached per table name)."""
    from tracemark_common.settings import get_settings

    return _store_for(get_settings().app_table_name)


def _conforms(store: DynamoRollupStore) -> RollupStore:  # mypy checks the adapter against the port
    return store
