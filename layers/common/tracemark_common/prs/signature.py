"""GitHub webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`,
checked over the raw bytes, before any parsing, in constant time. Pure."""

from __future__ import annotations

import hashlib
import hmac

from tracemark_common.errors import Unauthorized

PREFIX = "sha256="


def signature_for(secret: str, body: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise `Unauthorized` unless `header` is the signature of `body` with `secret`."""
    if not secret:
        raise Unauthorized("webhook secret is not configured", code="bad_signature")
    if not header:
        raise Unauthorized("missing X-Hub-Signature-256 header", code="bad_signature")
    expected = signature_for(secret, body).encode()
    if not hmac.compare_digest(expected, header.strip().encode("utf-8", "replace")[:200]):
        raise Unauthorized("X-Hub-Signature-256 does not match the body", code="bad_signature")
