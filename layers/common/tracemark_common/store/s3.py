"""`BlobStore` on the S3 evidence bucket (boto3), server-only."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tracemark_common.errors import PayloadTooLarge

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Blobs:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            # SigV4 everywhere: presigned GETs of SSE-KMS objects need it, and `tracemark serve`
            # forwards only SigV4-signed requests to moto (tracemark_local.s3_gate).
            self._client = boto3.client("s3", config=Config(signature_version="s3v4"))
        return self._client

    def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        length = int(response.get("ContentLength") or 0)
        if max_bytes is not None and length > max_bytes:
            response["Body"].close()
            raise PayloadTooLarge(f"object is {length} bytes; the limit is {max_bytes} bytes")
        data: bytes = response["Body"].read() if max_bytes is None else response["Body"].read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise PayloadTooLarge(f"object is larger than the limit of {max_bytes} bytes")
        return data

    def size(self, key: str) -> int | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return int(response.get("ContentLength") or 0)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def presign_put(self, key: str, expires_in: int, content_type: str) -> str:
        url: str = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
        )
        return url

    def presign_get(self, key: str, expires_in: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url
