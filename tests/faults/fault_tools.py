"""Fault injection at the AWS boundary: botocore `before-call` hooks on the real clients.

A hook that returns `(http_response, parsed)` from `before-call.<service>.<Operation>` makes
botocore skip the HTTP request (and its retry loop) and raise the error exactly as if DynamoDB or
S3 had answered it. Faults are chosen by counting calls, never by timing:

    faults.fail("TransactWriteItems", "ProvisionedThroughputExceededException", skip=0, times=1)

lets `skip` matching calls through, then fails the next `times`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

THROTTLE_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded")


@dataclass
class BotoFault:
    operation: str
    code: str
    status: int
    skip: int
    times: int
    extra: dict[str, Any] = field(default_factory=dict)
    when: Callable[[], bool] | None = None  # only calls made while this holds count
    seen: int = 0
    fired: int = 0


class BotoFaults:
    """Injects errors into chosen operations of real botocore clients; records every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.faults: list[BotoFault] = []
        self._lock = threading.Lock()
        self._attached: list[tuple[Any, str]] = []

    def attach(self, client: Any) -> None:
        unique_id = f"tracemark-faults-{uuid.uuid4().hex}"
        client.meta.events.register("before-call.*.*", self._before_call, unique_id=unique_id)
        self._attached.append((client, unique_id))

    def detach(self) -> None:
        for client, unique_id in self._attached:
            client.meta.events.unregister("before-call.*.*", unique_id=unique_id)
        self._attached.clear()

    def fail(
        self,
        operation: str,
        code: str,
        *,
        status: int = 400,
        skip: int = 0,
        times: int = 1,
        extra: dict[str, Any] | None = None,
        when: Callable[[], bool] | None = None,
    ) -> BotoFault:
        fault = BotoFault(operation, code, status, skip, times, dict(extra or {}), when)
        with self._lock:
            self.faults.append(fault)
        return fault

    def throttle(
        self, operation: str, *, skip: int = 0, times: int = 1, when: Callable[[], bool] | None = None
    ) -> BotoFault:
        return self.fail(operation, "ProvisionedThroughputExceededException", skip=skip, times=times, when=when)

    def cancel_transaction(self, reasons: list[str], *, skip: int = 0, times: int = 1) -> BotoFault:
        """A `TransactionCanceledException` with one reason code per item ("None" for items that
        were fine), as DynamoDB reports throttling or a conflicting transaction."""
        return self.fail(
            "TransactWriteItems",
            "TransactionCanceledException",
            skip=skip,
            times=times,
            extra={"CancellationReasons": [{"Code": r, "Message": r} for r in reasons]},
        )

    def count(self, operation: str) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c == operation)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.calls.clear()

    def _before_call(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        operation = str(model.name)
        with self._lock:
            self.calls.append(operation)
            for fault in self.faults:
                if fault.operation != operation or fault.fired >= fault.times:
                    continue
                if fault.when is not None and not fault.when():
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.fired += 1
                return _error_response(fault)
        return None


def _error_response(fault: BotoFault) -> tuple[AWSResponse, dict[str, Any]]:
    headers = {"x-amzn-requestid": "injected-" + uuid.uuid4().hex[:8]}
    http = AWSResponse("https://injected.invalid/", fault.status, headers, None)
    parsed: dict[str, Any] = {
        "Error": {"Code": fault.code, "Message": f"injected {fault.code}"},
        "ResponseMetadata": {"HTTPStatusCode": fault.status, "HTTPHeaders": headers},
        **fault.extra,
    }
    return http, parsed


# -- HTTP through the local stack's emulator (no sockets) ------------------------------------------------


def api(stack: Any, method: str, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return stack.invoke_http(method, path, headers=headers, **kwargs)  # type: ignore[no-any-return]


def ok(stack: Any, method: str, path: str, token: str | None, status: int = 200, **kwargs: Any) -> Any:
    code, _, body = api(stack, method, path, token, **kwargs)
    assert code == status, body
    return body
