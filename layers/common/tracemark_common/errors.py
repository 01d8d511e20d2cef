"""Domain errors. Free of HTTP: `tracemark_common.api` maps them to status codes in one place."""

from __future__ import annotations


class TracemarkError(Exception):
    """Base class. `code` is the machine-readable error code returned to API clients."""

    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(TracemarkError):
    code = "bad_request"


class Unauthorized(TracemarkError):
    code = "unauthorized"


class Forbidden(TracemarkError):
    code = "forbidden"


class NotFound(TracemarkError):
    code = "not_found"


class MethodNotAllowed(TracemarkError):
    code = "method_not_allowed"


class Conflict(TracemarkError):
    code = "conflict"


class PayloadTooLarge(TracemarkError):
    code = "payload_too_large"


class Unprocessable(TracemarkError):
    """Well-formed JSON that fails validation (schema, signature, statement)."""

    code = "invalid"


class Unavailable(TracemarkError):
    """A dependency (storage, GitHub) failed transiently; the client may retry."""

    code = "unavailable"
