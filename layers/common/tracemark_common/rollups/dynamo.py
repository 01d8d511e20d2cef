"""The rollup store on the DynamoDB application table (server only: imports boto3).

Item layout (docs/architecture.md, "Dashboard rollups"):
- `pk=ROLLUP#<scope>`, `sk=H#<yyyy-mm-ddThh>` | `D#<yyyy-mm-dd>`: one bucket. Scalar numbers
  (sessions, tokens, cost, lines, PRs, commit terms) are atomic `ADD`s; per-user and per-model
  counters and names are packed in `detail` (zlib JSON, Binary) with version `dv`, replaced in a
  conditional update that also ADDs the session's scalars — so an item keeps a small, fixed number
  of attributes however many users it counts.
- `pk=ROLLUPCOMMIT#<scope>#<sha>`, `sk=STATE`: a commit's de-duplication state (`v` version,
  `lines`, maps `h` and `d` of bucket label -> sessions), written with a version condition.
- `pk=ROLLUPPR#<org>#<repo id>#<number>`, `sk=FIRST`: the first correlation of a PR.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tracemark_common.errors import Unavailable
from tracemark_common.rollups.buckets import Key
from tracemark_common.rollups.deltas import CommitState
from tracemark_common.rollups.store import Item, RollupStore

BATCH_GET_MAX = 100
# Keep each UpdateExpression well under DynamoDB's 4 KB expression limit (and moto's parser's
# recursion depth); ADDs commute, so a bucket delta split over several updates adds up the same.
ATTRS_PER_UPDATE = 40
MAX_UNPROCESSED_ROUNDS = 8
DETAIL = "detail"  # zlib-compressed JSON: per-user and per-model counters and names
DETAIL_VERSION = "dv"


def _key(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def _pack(detail: Mapping[str, int | str]) -> bytes:
    return zlib.compress(json.dumps(detail, separators=(",", ":"), sort_keys=True).encode(), 6)


def _unpack(attr: Mapping[str, Any] | None) -> dict[str, int | str]:
    if not attr or "B" not in attr:
        return {}
    value = json.loads(zlib.decompress(attr["B"]))
    return {k: v for k, v in value.items() if isinstance(v, int | str)} if isinstance(value, dict) else {}


def _decode(item: Mapping[str, Any]) -> Item:
    """Numbers, plus the packed per-user/per-model map flattened into the same dict."""
    result: Item = _unpack(item.get(DETAIL))
    for name, value in item.items():
        if name not in {"pk", "sk", DETAIL, DETAIL_VERSION} and "N" in value:
            result[name] = int(value["N"])
    return result


def _counts(attr: Mapping[str, Any] | None) -> dict[str, int]:
    if not attr or "M" not in attr:
        return {}
    return {label: int(v["N"]) for label, v in attr["M"].items() if int(v["N"]) > 0}


class DynamoRollupStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self.client: Any = client or boto3.client("dynamodb")

    def add(self, key: Key, counters: Mapping[str, int]) -> None:
        names = list(counters.items())
        for start in range(0, max(len(names), 1), ATTRS_PER_UPDATE):
            attr_names = {"#entity": "entity"}
            values: dict[str, Any] = {":entity": {"S": "rollup"}}
            adds: list[str] = []
            for i, (name, value) in enumerate(names[start : start + ATTRS_PER_UPDATE]):
                attr_names[f"#a{i}"] = name
                values[f":a{i}"] = {"N": str(value)}
                adds.append(f"#a{i} :a{i}")
            self._call(
                "update_item",
                TableName=self.table_name,
                Key=_key(key),
                UpdateExpression="SET #entity = :entity" + (" ADD " + ", ".join(adds) if adds else ""),
                ExpressionAttributeNames=attr_names,
                ExpressionAttributeValues=values,
            )

    def get_detail(self, key: Key) -> tuple[int, dict[str, int | str]]:
        response = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_key(key),
            ConsistentRead=True,
            ProjectionExpression="#dv, #detail",
            ExpressionAttributeNames={"#dv": DETAIL_VERSION, "#detail": DETAIL},
        )
        item = response.get("Item") or {}
        version = int(item[DETAIL_VERSION]["N"]) if DETAIL_VERSION in item else 0
        return version, _unpack(item.get(DETAIL))

    def put_detail(self, key: Key, counters: Mapping[str, int], detail: Mapping[str, int | str], version: int) -> bool:
        attr_names = {"#entity": "entity", "#dv": DETAIL_VERSION, "#detail": DETAIL}
        values: dict[str, Any] = {
            ":entity": {"S": "rollup"},
            ":next": {"N": str(version + 1)},
            ":detail": {"B": _pack(detail)},
        }
        adds = []
        for i, (name, value) in enumerate(counters.items()):
            attr_names[f"#a{i}"] = name
            values[f":a{i}"] = {"N": str(value)}
            adds.append(f"#a{i} :a{i}")
        if version:
            condition = "#dv = :current"
            values[":current"] = {"N": str(version)}
        else:
            condition = "attribute_not_exists(#dv)"
        return self._conditional(
            "update_item",
            TableName=self.table_name,
            Key=_key(key),
            UpdateExpression="SET #entity = :entity, #dv = :next, #detail = :detail"
            + (" ADD " + ", ".join(adds) if adds else ""),
            ConditionExpression=condition,
            ExpressionAttributeNames=attr_names,
            ExpressionAttributeValues=values,
        )

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        found: dict[Key, Item] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.table_name: {"Keys": [_key(k) for k in unique[start : start + BATCH_GET_MAX]]}
            }
            for round_ in range(MAX_UNPROCESSED_ROUNDS):
                response = self._call("batch_get_item", RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    found[(raw["pk"]["S"], raw["sk"]["S"])] = _decode(raw)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**round_, 1.0))
            if request:
                raise Unavailable("dashboard rollups: storage is throttling reads; retry", code="rollup_unavailable")
        return found

    def get_commit(self, key: Key) -> CommitState:
        response = self._call("get_item", TableName=self.table_name, Key=_key(key), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return CommitState()
        return CommitState(
            version=int(item["v"]["N"]),
            lines=int(item.get("lines", {"N": "0"})["N"]),
            hours=_counts(item.get("h")),
            days=_counts(item.get("d")),
        )

    def put_commit(self, key: Key, state: CommitState) -> bool:
        item = {
            **_key(key),
            "entity": {"S": "rollup_commit"},
            "v": {"N": str(state.version + 1)},
            "lines": {"N": str(state.lines)},
            "h": {"M": {label: {"N": str(n)} for label, n in state.hours.items()}},
            "d": {"M": {label: {"N": str(n)} for label, n in state.days.items()}},
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
