"""Keep the local stack's data across restarts (SPEC §4).

Every DynamoDB item and S3 object is written into the data dir — atomically (write to a temporary
file, then rename), within 5 seconds of a write and on a clean stop — and loaded at start. Writes
are noticed by counting mutating requests that reach moto. Step Functions history is not kept.

Layout: `dynamodb/<table>.jsonl` (one item per line, DynamoDB JSON); `s3/<bucket>/index.json`
(key -> {etag, file}) and `s3/<bucket>/objects/<sha256 of key>` (the bytes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tracemark_local.template import REGION

FLUSH_INTERVAL_S = 2.0


def encode_item(value: Any) -> Any:
    """boto3's DynamoDB JSON with binary (`B`, `BS`) as base64 text, as on DynamoDB's wire."""
    if isinstance(value, dict):
        return {
            key: _encode_binary(key, item) if key in ("B", "BS") else encode_item(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [encode_item(item) for item in value]
    return value


def _encode_binary(kind: str, value: Any) -> Any:
    if kind == "B":
        return base64.b64encode(bytes(value)).decode()
    return [base64.b64encode(bytes(item)).decode() for item in value]


def decode_item(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "B":
                out[key] = base64.b64decode(item)
            elif key == "BS":
                out[key] = [base64.b64decode(part) for part in item]
            else:
                out[key] = decode_item(item)
        return out
    if isinstance(value, list):
        return [decode_item(item) for item in value]
    return value


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WriteCounter:
    """WSGI middleware around moto that counts mutating requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD", "OPTIONS"):
            with self._lock:
                self.count += 1
        return self.app(environ, start_response)


class DataDir:
    def __init__(self, root: Path, endpoint_url: str | None) -> None:
        self.root = root
        self.endpoint_url = endpoint_url

    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    # ------------------------------------------------------------------ save
    def save(self, tables: Iterable[str], buckets: Iterable[str]) -> None:
        for table in tables:
            self._save_table(table)
        for bucket in buckets:
            self._save_bucket(bucket)

    def _save_table(self, table: str) -> None:
        lines: list[str] = []
        for page in self._client("dynamodb").get_paginator("scan").paginate(TableName=table):
            lines.extend(json.dumps(encode_item(item), sort_keys=True) for item in page.get("Items", []))
        atomic_write(self.root / "dynamodb" / f"{table}.jsonl", ("\n".join(lines) + "\n" if lines else "").encode())

    def _save_bucket(self, bucket: str) -> None:
        s3 = self._client("s3")
        folder = self.root / "s3" / bucket
        index_path = folder / "index.json"
        old: dict[str, dict[str, str]] = json.loads(index_path.read_text()) if index_path.exists() else {}
        new: dict[str, dict[str, str]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                key, etag = obj["Key"], obj["ETag"]
                file_name = hashlib.sha256(key.encode()).hexdigest()
                if old.get(key, {}).get("etag") != etag or not (folder / "objects" / file_name).exists():
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    atomic_write(folder / "objects" / file_name, body)
                new[key] = {"etag": etag, "file": file_name}
        atomic_write(index_path, json.dumps(new, sort_keys=True).encode())
        for key, entry in old.items():
            if key not in new:
                (folder / "objects" / entry["file"]).unlink(missing_ok=True)

    # ------------------------------------------------------------------ load
    def load(self, tables: Iterable[str], buckets: Iterable[str]) -> dict[str, int]:
        counts = {"items": 0, "objects": 0}
        dynamodb = self._client("dynamodb")
        for table in tables:
            path = self.root / "dynamodb" / f"{table}.jsonl"
            if not path.exists():
                continue
            batch: list[dict[str, Any]] = []
            for line in path.read_text().splitlines():
                if line.strip():
                    batch.append({"PutRequest": {"Item": decode_item(json.loads(line))}})
                if len(batch) == 25:
                    self._write_batch(dynamodb, table, batch)
                    counts["items"] += len(batch)
                    batch = []
            if batch:
                self._write_batch(dynamodb, table, batch)
                counts["items"] += len(batch)
        s3 = self._client("s3")
        for bucket in buckets:
            index_path = self.root / "s3" / bucket / "index.json"
            if not index_path.exists():
                continue
            for key, entry in json.loads(index_path.read_text()).items():
                data = (self.root / "s3" / bucket / "objects" / entry["file"]).read_bytes()
                s3.put_object(Bucket=bucket, Key=key, Body=data)
                counts["objects"] += 1
        return counts

    @staticmethod
    def _write_batch(client: Any, table: str, batch: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {table: batch}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


class Flusher(threading.Thread):
    """Saves the data dir at most FLUSH_INTERVAL_S after a write is seen."""

    def __init__(self, data: DataDir, counter: WriteCounter, tables: list[str], buckets: list[str]) -> None:
        super().__init__(name="tracemark-persist", daemon=True)
        self.data = data
        self.counter = counter
        self.tables = tables
        self.buckets = buckets
        self.saved_count = counter.count
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def flush(self) -> None:
        with self._lock:
            seen = self.counter.count
            if seen == self.saved_count:
                return
            try:
                self.data.save(self.tables, self.buckets)
            except Exception as exc:  # keep serving; report and retry on the next tick
                self.last_error = f"{type(exc).__name__}: {exc}"
                return
            self.last_error = None
            self.saved_count = seen

    def run(self) -> None:
        while not self._stop_event.wait(FLUSH_INTERVAL_S):
            self.flush()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self.flush()


def wait_until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
