"""The gate in front of `tracemark serve`'s `/_s3/` forwarder.

moto checks no signature: any request that reaches it is served, and moto's server dispatches on
headers (`X-Amz-Target`, the credential scope), not only on the path. Forwarding `/_s3/...` blindly
would let anyone who can reach the serve port list and read every object (envelopes, evidence,
transcripts) and call every moto service — Secrets Manager included, which holds the JWT signing
key and the admin token. So a request is forwarded only when it carries an AWS Signature V4 for
the `s3` service made with this server's own credentials (`serve` generates a random secret key per
run): a presigned URL handed out by the API (`X-Amz-Signature` in the query, not expired) or a
header-signed call of the in-process handlers' boto3 S3 client. Everything else is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # S3's own limit for presigned URLs
HEADER_CLOCK_SKEW = timedelta(minutes=15)  # S3's window for header-signed requests
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def from_env(cls) -> Credentials:
        """The credentials the in-process handlers sign with (set by `serve`, random per run)."""
        return cls(os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", ""))


@dataclass(frozen=True)
class _Signed:
    credential: str
    signed_headers: str
    signature: str
    amz_date: str
    payload_hash: str
    expires: int | None  # presigned URLs only


def _header(environ: Mapping[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return str(environ.get(key, ""))
    return str(environ.get("HTTP_" + key, ""))


def _raw_target(environ: Mapping[str, Any]) -> tuple[str, str]:
    """The path and query exactly as the client sent them (signatures cover the encoded form)."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if raw:
        path, _, query = raw.partition("?")
        return path, query
    return str(environ.get("PATH_INFO", "")), str(environ.get("QUERY_STRING", ""))


def _signed_parts(environ: Mapping[str, Any], query: str) -> _Signed | str:
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "X-Amz-Signature" in params:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            return "unsupported signature algorithm"
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            return "malformed X-Amz-Expires"
        if not 0 < expires <= MAX_PRESIGN_SECONDS:
            return "X-Amz-Expires out of range"
        return _Signed(
            credential=params.get("X-Amz-Credential", ""),
            signed_headers=params.get("X-Amz-SignedHeaders", ""),
            signature=params.get("X-Amz-Signature", ""),
            amz_date=params.get("X-Amz-Date", ""),
            payload_hash=UNSIGNED_PAYLOAD,
            expires=expires,
        )
    match = _AUTH_HEADER.match(_header(environ, "Authorization").strip())
    if match is None:
        return "the request is not signed"
    return _Signed(
        credential=match["credential"],
        signed_headers=match["signed"],
        signature=match["signature"],
        amz_date=_header(environ, "X-Amz-Date"),
        payload_hash=_header(environ, "X-Amz-Content-SHA256") or UNSIGNED_PAYLOAD,
        expires=None,
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    """Every pair but the signature, still percent-encoded as sent, sorted (as botocore signs)."""
    pairs = []
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        if key != "X-Amz-Signature":
            pairs.append(f"{key}={value}")
    return "&".join(sorted(pairs))


def _scope(signed: _Signed, credentials: Credentials, now: datetime) -> list[str] | str:
    """The credential scope when it names our key, S3 and a current time; else why not."""
    scope = signed.credential.split("/")
    if len(scope) != 5 or scope[3] != SERVICE or scope[4] != "aws4_request":
        return "the credential scope is not for S3"
    if not hmac.compare_digest(scope[0].encode(), credentials.access_key.encode()):
        return "unknown access key"
    try:
        signed_at = datetime.strptime(signed.amz_date, _DATE).replace(tzinfo=UTC)
    except ValueError:
        return "malformed X-Amz-Date"
    if scope[1] != signed.amz_date[:8]:
        return "the credential date does not match X-Amz-Date"
    if signed.expires is not None:
        if now > signed_at + timedelta(seconds=signed.expires) or signed_at > now + HEADER_CLOCK_SKEW:
            return "the presigned URL has expired"
    elif abs(now - signed_at) > HEADER_CLOCK_SKEW:
        return "the request time is too far from the server's"
    return scope


def check(environ: Mapping[str, Any], credentials: Credentials, now: datetime | None = None) -> str | None:
    """None when the request is a valid S3 SigV4 request signed with `credentials`, else why not."""
    path, query = _raw_target(environ)
    signed = _signed_parts(environ, query)
    if isinstance(signed, str):
        return signed
    if not credentials.access_key or not credentials.secret_key:
        return "the server has no credentials to check signatures with"
    scope = _scope(signed, credentials, now or datetime.now(UTC))
    if isinstance(scope, str):
        return scope
    names = signed.signed_headers.split(";")
    if "host" not in names or names != sorted(names):
        return "the signed headers must include host"
    headers = "".join(f"{name}:{' '.join(_header(environ, name).split())}\n" for name in names)
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    canonical = "\n".join([method, path, _canonical_query(query), headers, signed.signed_headers, signed.payload_hash])
    string_to_sign = "\n".join(
        [ALGORITHM, signed.amz_date, "/".join(scope[1:]), hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_key).encode(), scope[1])
    for part in (scope[2], scope[3], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
        return "the signature does not match"
    return None


def forbidden(reason: str, start_response: StartResponse) -> Iterable[bytes]:
    body = json.dumps({"error": {"code": "forbidden", "message": f"/_s3/ accepts only presigned URLs: {reason}"}})
    data = body.encode()
    start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
