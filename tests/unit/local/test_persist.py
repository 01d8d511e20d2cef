"""The data dir: items (binary attributes included) and objects survive a save/load round trip,
files are replaced atomically, deleted objects disappear, and the flusher saves only after writes."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import moto

from tracemark_local.persist import DataDir, Flusher, WriteCounter, atomic_write, decode_item, encode_item

TABLE = "tracemark-Persist"
BUCKET = "tracemark-persist"


def _make(suffix: str) -> tuple[str, str]:
    """A table and a bucket of this test's own: moto may already be running for the whole session
    (the `stack` fixture), and nested mocks share state."""
    table, bucket = f"{TABLE}-{suffix}", f"{BUCKET}-{suffix}"
    boto3.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("s3").create_bucket(Bucket=bucket)
    return table, bucket


def test_round_trip_of_items_and_objects(tmp_path: Path) -> None:
    items = [
        {
            "pk": {"S": f"item-{n}"},
            "blob": {"B": bytes([n, 0, 255])},
            "set": {"BS": [b"\x00", b"\x01"]},
            "n": {"N": str(n)},
        }
        for n in range(60)  # more than one batch of 25
    ]
    saved = tmp_path / "saved"
    with moto.mock_aws():
        # Given a table with binary attributes and a bucket with two objects
        table, bucket = _make(uuid.uuid4().hex[:8])
        for item in items:
            boto3.client("dynamodb").put_item(TableName=table, Item=item)
        s3 = boto3.client("s3")
        s3.put_object(Bucket=bucket, Key="envelopes/a.json", Body=b'{"a": 1}')
        s3.put_object(Bucket=bucket, Key="weird key/ü?.bin", Body=b"\x00\x01")
        # When the data dir is saved
        DataDir(saved, None).save([table], [bucket])
        # And an object is deleted and saved again
        s3.delete_object(Bucket=bucket, Key="envelopes/a.json")
        DataDir(saved, None).save([table], [bucket])
    assert len(list((saved / "s3" / bucket / "objects").iterdir())) == 1
    # Then a fresh backend (new, empty resources of the same names) loads everything back
    for path in (saved / "dynamodb").iterdir():
        path.rename(path.with_name(path.name.replace(table, "fresh")))
    (saved / "s3" / bucket).rename(saved / "s3" / "fresh-bucket")
    with moto.mock_aws():
        fresh_table, fresh_bucket = _make(uuid.uuid4().hex[:8])
        (saved / "dynamodb" / "fresh.jsonl").rename(saved / "dynamodb" / f"{fresh_table}.jsonl")
        (saved / "s3" / "fresh-bucket").rename(saved / "s3" / fresh_bucket)
        counts = DataDir(saved, None).load([fresh_table], [fresh_bucket])
        assert counts == {"items": 60, "objects": 1}
        got = boto3.client("dynamodb").get_item(TableName=fresh_table, Key={"pk": {"S": "item-7"}})["Item"]
        assert got["blob"]["B"] == bytes([7, 0, 255])
        assert sorted(got["set"]["BS"]) == [b"\x00", b"\x01"]
        body = boto3.client("s3").get_object(Bucket=fresh_bucket, Key="weird key/ü?.bin")["Body"].read()
        assert body == b"\x00\x01"


def test_binary_encoding_is_reversible() -> None:
    item = {"a": {"M": {"b": {"B": b"\xff"}, "l": {"L": [{"BS": [b"x"]}, {"S": "B"}]}}}}
    assert decode_item(encode_item(item)) == item


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [path.name for path in target.parent.iterdir()] == ["file.json"]


def test_flusher_saves_only_after_writes(tmp_path: Path) -> None:
    calls: list[int] = []

    class Recorder(DataDir):
        def save(self, tables: object, buckets: object) -> None:
            calls.append(1)

    counter = WriteCounter(lambda environ, start: [b""])
    flusher = Flusher(Recorder(tmp_path, None), counter, [], [])
    flusher.flush()
    assert calls == []
    counter({"REQUEST_METHOD": "GET"}, None)
    flusher.flush()
    assert calls == []
    counter({"REQUEST_METHOD": "POST"}, None)
    flusher.flush()
    flusher.flush()
    assert calls == [1]
