"""HTTP edge shared by every function behind the HTTP API: the one error map.

Handlers raise domain errors (`tracemark_common.errors`); this module turns each into
`{"error": {"code", "message"}}` with its status code. Nothing else builds error responses.
"""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from tracemark_common import errors
from tracemark_common.observability import logger
from tracemark_common.routes import allowed_methods
from tracemark_common.transient import transient_reason

STATUS: dict[type[errors.TracemarkError], HTTPStatus] = {
    errors.BadRequest: HTTPStatus.BAD_REQUEST,
    errors.Unauthorized: HTTPStatus.UNAUTHORIZED,
    errors.Forbidden: HTTPStatus.FORBIDDEN,
    errors.NotFound: HTTPStatus.NOT_FOUND,
    errors.MethodNotAllowed: HTTPStatus.METHOD_NOT_ALLOWED,
    errors.Conflict: HTTPStatus.CONFLICT,
    errors.PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.Unprocessable: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.Unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}

# A 503 tells clients when to try again (the CLI spools and retries on its next push anyway).
RETRY_AFTER_SECONDS = "1"

# API Gateway caps bodies at 10 MB and Lambda payloads at 6 MB; we accept at most this much in a
# request body (bigger uploads go through presigned S3 URLs, SPEC §2.6).
MAX_BODY_BYTES = 4 * 1024 * 1024


def status_for(exc: errors.TracemarkError) -> HTTPStatus:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return HTTPStatus.INTERNAL_SERVER_ERROR


def error_response(status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(status_code=int(status), content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body), headers=headers
    )


def create_resolver() -> APIGatewayHttpResolver:
    """A resolver with the error map installed. Route handlers are added by the function."""
    app = APIGatewayHttpResolver()

    @app.exception_handler(errors.TracemarkError)  # type: ignore[untyped-decorator]
    def _domain_error(exc: errors.TracemarkError) -> Response[str]:
        return _error(exc)

    def _error(exc: errors.TracemarkError) -> Response[str]:
        status = status_for(exc)
        if status >= 500:
            logger.warning("request failed", extra={"code": exc.code, "error": exc.message})
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == HTTPStatus.SERVICE_UNAVAILABLE else None
        return error_response(status, exc.code, exc.message, headers=headers)

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response[str]:
        event = app.current_event
        methods = allowed_methods(event.path)
        # A known method that the router did not match: a path parameter holds characters the
        # router's parameter pattern does not take (control or symbol characters). No such
        # resource can exist, so it is a 404 like any other unknown name, never a 405 that
        # names the very method the client used.
        if methods and event.http_method.upper() not in methods:
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{event.http_method} is not allowed on {event.path}; use {', '.join(methods)}",
                headers={"Allow": ", ".join(methods)},
            )
        return error_response(HTTPStatus.NOT_FOUND, "not_found", f"no route for {event.http_method} {event.path}")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(exc: Exception) -> Response[str]:
        reason = transient_reason(exc)
        if reason is not None:  # throttling, a conflicting transaction, a storage 5xx: retryable
            logger.warning("storage unavailable", extra={"reason": reason}, exc_info=exc)
            message = f"storage is temporarily unavailable ({reason}); retry the request"
            return _error(errors.Unavailable(message))
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")

    return app


def body_bytes(event: Any) -> bytes:
    """The request body as bytes. API Gateway base64-encodes bodies that are not text; Powertools'
    `decoded_body` then decodes them as UTF-8 and raises on anything else (a 500 for a client's
    binary body), so the bytes are taken here and each route decides what to accept."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.BadRequest("the request body is not valid base64", code="bad_request") from exc
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)


def bounded_body(event: Any, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body as bytes, or a 413 when it is longer than `limit`."""
    data = body_bytes(event)
    if len(data) > limit:
        raise errors.PayloadTooLarge(
            f"request body is {len(data)} bytes; the limit is {limit} bytes (use POST /v1/uploads for larger bodies)"
        )
    return data


def raw_body(app: APIGatewayHttpResolver, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body as bytes, bounded by `limit`."""
    return bounded_body(app.current_event, limit)


def reject_unknown_parameters(params: Any, known: frozenset[str] | set[str]) -> None:
    """A 400 naming the query parameters a route does not take: a misspelt filter must not
    silently widen the answer."""
    unknown = sorted(set(params or {}) - set(known))
    if unknown:
        raise errors.BadRequest(f"unknown query parameters {unknown}; known: {sorted(known)}", code="bad_request")


def json_body(app: APIGatewayHttpResolver, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body parsed as a JSON object, or a 400 that says what is wrong."""
    data = raw_body(app, limit)
    if not data:
        raise errors.BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(value, dict):
        raise errors.BadRequest("request body must be a JSON object", code="malformed_json")
    return value
