"""A local API Gateway HTTP API (payload format 2.0) built from the template's `HttpApi` events.

Each request becomes the event API Gateway would send, the real handler runs in-process (through
`LocalStack.invoke`, so per-function locks hold), and the handler's result is mapped back to an
HTTP response the way API Gateway maps it. Limits: 10 MB request bodies (API Gateway) and 6 MB
event payloads (Lambda) are answered with 413, as in production.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tracemark_local.stack import LAMBDA_PAYLOAD_LIMIT, HandlerError
from tracemark_local.template import ACCOUNT, http_routes

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from tracemark_local.stack import LocalStack

API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024
TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml", "application/yaml")


def _werkzeug_path(template_path: str) -> str:
    out = template_path
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        name = out[start + 1 : end]
        converter = f"<path:{name[:-1]}>" if name.endswith("+") else f"<{name}>"
        out = out[:start] + converter + out[end + 1 :]
    return out


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status=status, content_type="application/json")


class HttpApiEmulator:
    """WSGI app: template routes → API Gateway v2 events → handlers."""

    def __init__(self, stack: LocalStack, stage: str = "$default") -> None:
        self.stack = stack
        self.stage = stage
        self.default_function: str | None = None
        rules = []
        for route in http_routes(stack.template):
            if route.path == "$default":
                self.default_function = route.function
                continue
            methods = None if route.method == "ANY" else [route.method]
            rules.append(
                Rule(
                    _werkzeug_path(route.path),
                    methods=methods,
                    endpoint=(route.function, f"{route.method} {route.path}"),
                    strict_slashes=False,
                    merge_slashes=False,
                )
            )
        self.url_map = Map(rules)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        length = request.content_length or 0
        if length > API_GATEWAY_BODY_LIMIT:
            return _error(413, "payload_too_large", "request body exceeds the API Gateway limit of 10 MB")
        adapter = self.url_map.bind_to_environ(request.environ)
        path_parameters: Mapping[str, Any] = {}
        try:
            (function, route_key), path_parameters = adapter.match(request.path, method=request.method)
        except (NotFound, MethodNotAllowed):
            if self.default_function is None:
                return _error(404, "not_found", f"no route for {request.method} {request.path}")
            function, route_key = self.default_function, "$default"
        except HTTPException as exc:  # e.g. a redirect for a trailing slash
            return _error(exc.code or 400, "bad_request", exc.description or "bad request")
        body = request.get_data(cache=False)
        if len(body) > API_GATEWAY_BODY_LIMIT:
            return _error(413, "payload_too_large", "request body exceeds the API Gateway limit of 10 MB")
        event = self.build_event(request, body, route_key, path_parameters)
        if len(json.dumps(event)) > LAMBDA_PAYLOAD_LIMIT:
            return _error(413, "payload_too_large", "request exceeds Lambda's 6 MB payload limit; use POST /v1/uploads")
        try:
            result = self.stack.invoke(function, event)
        except HandlerError:
            # API Gateway answers an unhandled Lambda error with a bare 500.
            return Response(
                json.dumps({"message": "Internal Server Error"}), status=500, content_type="application/json"
            )
        return self.build_response(result)

    def build_event(
        self, request: Request, body: bytes, route_key: str, path_parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            lower = key.lower()
            headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
        query: dict[str, str] = {}
        for key in request.args:
            query[key] = ",".join(request.args.getlist(key))
        content_type = (request.content_type or "").lower()
        is_text = not body or content_type.startswith(TEXT_TYPES)
        if is_text:
            try:
                body_text = body.decode()
            except UnicodeDecodeError:
                is_text = False
        if not is_text:
            body_text = base64.b64encode(body).decode()
        now = datetime.now(UTC)
        raw_path = request.path if self.stage == "$default" else f"/{self.stage}{request.path}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": request.query_string.decode(),
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": raw_path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route_key,
                "stage": self.stage,
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(time.time() * 1000),
            },
            "isBase64Encoded": not is_text,
        }
        if body:
            event["body"] = body_text
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = dict(path_parameters)
        cookies = request.headers.get("Cookie")
        if cookies:
            event["cookies"] = [part.strip() for part in cookies.split(";") if part.strip()]
        return event

    @staticmethod
    def build_response(result: Any) -> Response:
        if isinstance(result, dict) and "statusCode" in result:
            raw = result.get("body") or ""
            data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
            response = Response(data, status=int(result["statusCode"]))
            response.headers.clear()
            for key, value in (result.get("headers") or {}).items():
                response.headers[key] = str(value)
            for key, values in (result.get("multiValueHeaders") or {}).items():
                for value in values:
                    response.headers.add(key, str(value))
            for cookie in result.get("cookies") or []:
                response.headers.add("Set-Cookie", cookie)
            response.headers.setdefault("Content-Type", "application/json")
            return response
        # Payload 2.0 "inferred" format: anything else is a 200 JSON body.
        body = result if isinstance(result, str) else json.dumps(result)
        return Response(body, status=200, content_type="application/json")
