"""Transient storage failures (server-only): throttling, conflicting transactions, 5xx and
connection errors of DynamoDB and S3 are retryable, so the API answers them with 503
`unavailable` (and `Retry-After`), and the PR workflow's steps raise `Unavailable`, which the
state machine retries (statemachine/pr_correlation.asl.json). Anything else stays a bug (500).

botocore raises `ClientError`; pynamodb wraps it (`PutError`, `GetError`, `TransactWriteError`...)
with the botocore error as the cause, so the whole cause chain is inspected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tracemark_common.errors import Unavailable

TRANSIENT_CODES = frozenset(
    {
        # DynamoDB
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        # S3
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailableException",
        "RequestTimeTooSkewed",
    }
)
# A cancelled transaction is transient when an item was throttled or conflicted (a failed
# condition is a domain outcome and is handled where the transaction is written).
TRANSIENT_CANCELLATION = frozenset({"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"})
MAX_CHAIN = 8


def _client_error_reason(exc: BaseException) -> str | None:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return None
    response: dict[str, Any] = dict(exc.response or {})
    code = str((response.get("Error") or {}).get("Code") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return code or str(status)
    if code == "TransactionCanceledException":
        reasons = {str(r.get("Code")) for r in response.get("CancellationReasons") or [] if isinstance(r, dict)}
        if reasons & TRANSIENT_CANCELLATION:
            return f"{code} ({', '.join(sorted(reasons & TRANSIENT_CANCELLATION))})"
    return None


def transient_reason(exc: BaseException) -> str | None:
    """Why `exc` (or an exception it was raised from) is a transient AWS failure, else None."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(MAX_CHAIN):
        if current is None or id(current) in seen:
            return None
        seen.add(id(current))
        if isinstance(current, Unavailable):
            return current.message
        if isinstance(
            current, ConnectionClosedError | ConnectTimeoutError | EndpointConnectionError | ReadTimeoutError
        ):
            return type(current).__name__
        reason = _client_error_reason(current)
        if reason is not None:
            return reason
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def transient_as_unavailable(what: str) -> Iterator[None]:
    """Re-raise a transient storage failure inside the block as `Unavailable` (retryable)."""
    try:
        yield
    except Unavailable:
        raise
    except Exception as exc:
        reason = transient_reason(exc)
        if reason is None:
            raise
        raise Unavailable(f"{what}: storage is temporarily unavailable ({reason}); retry") from exc
