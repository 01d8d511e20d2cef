"""The OpenAPI 3.1 document of `GET /v1/openapi.json`: every route of `tracemark_common.routes`,
with request, parameter and response schemas that tell the truth.

The document is a contract the fuzz suite (tests/fuzz) holds the server to: a request that
matches a schema is never a 400 (400 means "the schema says no"; a well-formed request that is
semantically wrong — a contract that does not parse, a bad signature — is a 422), every status an
operation answers is listed for it, and every response body matches its schema. The patterns are
the handlers' own regular expressions, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tracemark_common import ingest
from tracemark_common.http import core_routes, github_admin
from tracemark_common.routes import Route

_ERROR = {"$ref": "#/components/schemas/Error"}

# The handlers' own patterns, so the document and the code cannot drift apart.
ORG_NAME = core_routes.ORG_NAME.pattern
SUBJECT = core_routes.SUBJECT.pattern
PROJECT_NAME = ingest.PROJECT_NAME.pattern
POLICY_NAME = core_routes.POLICY_NAME.pattern
KEYID = core_routes.KEYID.pattern
TOKEN_ID = core_routes.TOKEN_ID.pattern
UPLOAD_ID = core_routes.UPLOAD_ID.pattern
SESSION_ID = ingest.SESSION_ID.pattern
SHA256 = ingest.SHA256.pattern
GITHUB_ID = github_admin.ID.pattern
# Durations the handler accepts (60 s to 366 days), as one pattern: 60-9999999 s, 1-99999 m,
# 1-999 h, 1-366 d.
TTL_DURATION = (
    r"^(([6-9][0-9]|[1-9][0-9]{2,6})s|[1-9][0-9]{0,4}m|[1-9][0-9]{0,2}h"
    r"|([1-9]|[1-9][0-9]|[1-2][0-9]{2}|3[0-5][0-9]|36[0-6])d)$"
)
# A text document (contract YAML, policy YAML or Rego): not blank, no NUL characters.
DOCUMENT_TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"


def _obj(required: Sequence[str] = (), *, closed: bool = False, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": list(required), "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _str(pattern: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "string", **({"pattern": pattern} if pattern else {}), **extra}


_S = {"type": "string"}
_NS = {"type": ["string", "null"]}
_B = {"type": "boolean"}
_I = {"type": "integer"}
_N = {"type": "number"}
_NN = {"type": ["number", "null"]}
_ARR = {"type": "array"}
_OBJ = {"type": "object"}
_SCOPE = {"enum": ["push", "read", "admin"]}
_SCOPES = {"type": "array", "items": _SCOPE}
_REQUESTED_SCOPES = {"type": ["array", "null"], "items": _SCOPE, "description": "null: the default scopes"}
_NON_ADMIN_SCOPES = {"type": ["array", "null"], "items": {"enum": ["push", "read"]}}
_PAGE_QUERY = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "cursor": _str(description="next_cursor of the previous page"),
}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return _obj(["items", "next_cursor"], items={"type": "array", "items": item}, next_cursor=_NS)


_CARD = _obj(["value", "previous", "delta", "delta_pct"], value=_NN, previous=_NN, delta=_NN, delta_pct=_NN)
_PERIOD = _obj(["start", "end"], start=_S, end=_S)
_SESSION_SUMMARY = _obj(
    ["id", "url", "project", "user", "started_at", "ended_at", "at", "received_at", "commits", "gated", "prs"],
    id=_S,
    url=_S,
    project=_S,
    user=_S,
    user_kind=_NS,
    agent=_NS,
    started_at=_NS,
    ended_at=_NS,
    at=_S,
    received_at=_S,
    commits=_I,
    gated=_B,
    score={"type": ["integer", "number", "null"]},
    flag=_NS,
    prs=_I,
)
_POLICY_RESULT = _obj(["policy", "status"], policy=_S, status=_S, violations=_ARR, gate=_B, reason=_NS)
_TEXT_BODY = _str(DOCUMENT_TEXT, maxLength=256 * 1024)


def _text_body(field: str, what: str) -> dict[str, Any]:
    """A document sent raw (YAML or text) or as JSON `{"<field>": "<text>"}`."""
    return {
        "required": True,
        "description": f'{what} as the raw body, or JSON {{"{field}": "<text>"}}; at most 256 KB',
        "content": {
            "application/json": {"schema": {"type": "object", "required": [field], "properties": {field: _TEXT_BODY}}},
            "application/yaml": {"schema": _TEXT_BODY},
            "text/plain": {"schema": _TEXT_BODY},
        },
    }


def _json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_TOKEN_REQUEST = {
    **_obj(
        ["subject"],
        subject=_str(SUBJECT),
        kind={"enum": ["user", "service"]},
        ttl_seconds={"type": "integer", "minimum": 60, "maximum": 366 * 86400},
        ttl={
            "description": 'seconds, or a duration such as "90d", "12h", "30m" (60 s to 366 days)',
            "oneOf": [{"type": "integer", "minimum": 60, "maximum": 366 * 86400}, _str(TTL_DURATION)],
        },
        role={"enum": ["member", "org_admin", "service"]},
        scopes=_REQUESTED_SCOPES,
        can_register_keys=_B,
    ),
    "not": {"required": ["ttl", "ttl_seconds"]},
    # kind and role go together; only org_admin tokens may carry the `admin` scope.
    "anyOf": [
        _obj(["kind"], kind={"const": "service"}, role={"const": "service"}, scopes=_NON_ADMIN_SCOPES),
        {
            "not": {"required": ["kind"], "properties": {"kind": {"const": "service"}}},
            **_obj(role={"const": "org_admin"}),
            "required": ["role"],
        },
        {
            "not": {"required": ["kind"], "properties": {"kind": {"const": "service"}}},
            **_obj(role={"const": "member"}, scopes=_NON_ADMIN_SCOPES),
        },
    ],
}

# (method, path) -> (who may call it, request body or None, success status, response schema,
#                    error statuses besides 401/403/503, path parameter schemas, query parameters)
Detail = tuple[str, dict[str, Any] | None, int, dict[str, Any], tuple[int, ...], dict[str, Any], dict[str, Any]]

_PROJECT_PARAM = {"name": _str(PROJECT_NAME)}
DETAILS: dict[tuple[str, str], Detail] = {
    ("GET", "/healthz"): ("anyone", None, 200, _obj(["status"], status={"const": "ok"}), (), {}, {}),
    ("GET", "/v1/openapi.json"): ("anyone", None, 200, _obj(["openapi", "paths"], openapi=_S, paths=_OBJ), (), {}, {}),
    ("GET", "/v1/whoami"): (
        "any token (and the server admin)",
        None,
        200,
        _obj(
            ["org", "subject", "role", "scopes"],
            org=_NS,
            subject=_S,
            role=_S,
            scopes=_SCOPES,
            kind=_NS,
            token_id=_NS,
        ),
        (),
        {},
        {},
    ),
    ("POST", "/v1/orgs"): (
        "server admin",
        _json_body(_obj(["name"], name=_str(ORG_NAME), admin_subject=_str(SUBJECT))),
        201,
        _obj(["org", "token", "token_id", "subject"], org=_S, token=_S, token_id=_S, subject=_S),
        (400, 409, 413),
        {},
        {},
    ),
    ("POST", "/v1/projects"): (
        "org admin",
        _json_body(_obj(["name"], name=_str(PROJECT_NAME), contract={"anyOf": [_TEXT_BODY, {"type": "null"}]})),
        201,
        {"$ref": "#/components/schemas/Project"},
        (400, 409, 413, 422),
        {},
        {},
    ),
    ("GET", "/v1/projects/{name}"): (
        "any token",
        None,
        200,
        {"$ref": "#/components/schemas/Project"},
        (404,),
        _PROJECT_PARAM,
        {},
    ),
    ("GET", "/v1/projects/{name}/contract"): (
        "any token",
        None,
        200,
        _obj(
            ["project", "contract", "updated_at", "updated_by"],
            project=_S,
            contract=_NS,
            updated_at=_NS,
            updated_by=_NS,
        ),
        (404,),
        _PROJECT_PARAM,
        {},
    ),
    ("PUT", "/v1/projects/{name}/contract"): (
        "org admin",
        _text_body("contract", "Contract YAML"),
        200,
        _obj(["project", "updated_at"], project=_S, updated_at=_S),
        (400, 404, 413, 422),
        _PROJECT_PARAM,
        {},
    ),
    ("GET", "/v1/policies/{name}"): (
        "org admin",
        None,
        200,
        _obj(["name", "policy", "ref", "updated_at"], name=_S, policy=_S, ref=_S, updated_at=_S),
        (404,),
        {"name": _str(POLICY_NAME)},
        {},
    ),
    ("PUT", "/v1/policies/{name}"): (
        "org admin",
        _text_body("policy", "Policy YAML or Rego"),
        201,
        _obj(["name", "ref"], name=_S, ref=_S),
        (200, 400, 413, 422),
        {"name": _str(POLICY_NAME)},
        {},
    ),
    ("PUT", "/v1/org/settings"): (
        "org admin",
        _json_body(_obj(closed=True, gate_default=_B)),
        200,
        _obj(["org", "settings"], org=_S, settings=_OBJ),
        (400, 413),
        {},
        {},
    ),
    ("POST", "/v1/tokens"): (
        "org admin",
        _json_body(_TOKEN_REQUEST),
        201,
        {"$ref": "#/components/schemas/Token"},
        (400, 413),
        {},
        {},
    ),
    ("DELETE", "/v1/tokens/{id}"): (
        "org admin",
        None,
        200,
        {"$ref": "#/components/schemas/Token"},
        (404,),
        {"id": _str(TOKEN_ID)},
        {},
    ),
    ("POST", "/v1/keys"): (
        "any token with push (service tokens need can_register_keys)",
        _json_body(_obj(["public_key_pem"], public_key_pem=_str(r"\S", maxLength=8192))),
        201,
        {"$ref": "#/components/schemas/Key"},
        (200, 400, 409, 413, 422),
        {},
        {},
    ),
    ("GET", "/v1/keys/{keyid}"): (
        "any token",
        None,
        200,
        {"$ref": "#/components/schemas/Key"},
        (404,),
        {"keyid": _str(KEYID)},
        {},
    ),
    ("DELETE", "/v1/keys/{keyid}"): (
        "owner or org admin",
        None,
        200,
        {"$ref": "#/components/schemas/Key"},
        (404,),
        {"keyid": _str(KEYID)},
        {},
    ),
    ("POST", "/v1/attestations"): (
        "any token with push",
        _json_body(
            {
                "oneOf": [
                    _obj(
                        ["payloadType", "payload", "signatures"],
                        payloadType=_S,
                        payload=_S,
                        signatures={"type": "array", "items": _obj(["sig"], keyid=_S, sig=_S)},
                    ),
                    _obj(["upload_id"], upload_id=_str(UPLOAD_ID)),
                ]
            }
        ),
        201,
        _obj(
            ["digest", "sessions", "policy_results", "gated"],
            digest=_S,
            sessions={"type": "array", "items": _obj(["id", "url"], id=_S, url=_S)},
            policy_results={"type": "array", "items": _POLICY_RESULT},
            gated=_B,
        ),
        (200, 400, 404, 409, 413, 422),
        {},
        {},
    ),
    ("POST", "/v1/uploads"): (
        "any token with push",
        _json_body(
            {
                "anyOf": [
                    _obj(kind={"const": "attestation"}),
                    _obj(["kind", "sha256"], kind={"const": "transcript"}, sha256=_str(SHA256)),
                ]
            },
            required=False,
        ),
        201,
        _obj(
            ["upload_id", "url", "method", "headers", "expires_in", "max_bytes"],
            upload_id=_S,
            url=_S,
            method={"const": "PUT"},
            headers=_OBJ,
            expires_in=_I,
            max_bytes=_I,
        ),
        (400, 413),
        {},
        {},
    ),
    ("GET", "/v1/sessions"): (
        "any token with read",
        None,
        200,
        _page(_SESSION_SUMMARY),
        (400,),
        {},
        {
            "range": {"enum": ["24h", "7d", "30d", "3m"]},
            "since": _str(format="date-time"),
            "until": _str(format="date-time"),
            "project": _str(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,99})?$", description="empty: any project"),
            "user": _str(maxLength=200, description="a token sub; empty: any user"),
            **_PAGE_QUERY,
        },
    ),
    ("GET", "/v1/sessions/{id}"): (
        "any token with read",
        None,
        200,
        {
            **_SESSION_SUMMARY,
            "required": [*_SESSION_SUMMARY["required"], "commit_shas", "policy_results", "evidence"],
            "properties": {
                **_SESSION_SUMMARY["properties"],
                "last_received_at": _NS,
                "commit_shas": {"type": "array", "items": _S},
                "rewritten_from": _OBJ,
                "attestations": {"type": "array", "items": _S},
                "actor_unverified": _NS,
                "transcript": {"type": ["object", "null"]},
                "policy_results": {"type": "array", "items": _POLICY_RESULT},
                "score": {"type": ["object", "null"]},
                "prs": _ARR,
                "evidence": {"type": ["object", "null"]},
                "evidence_truncated": _S,
                "evidence_url": _S,
            },
        },
        (404,),
        {"id": _str(SESSION_ID)},
        {},
    ),
    ("DELETE", "/v1/sessions/{id}"): (
        "org admin",
        None,
        200,
        _obj(["id", "deleted"], id=_S, deleted={"const": True}),
        (404, 409),
        {"id": _str(SESSION_ID)},
        {},
    ),
    ("GET", "/v1/repositories"): (
        "org admin",
        None,
        200,
        _page({"$ref": "#/components/schemas/Repository"}),
        (400,),
        {},
        _PAGE_QUERY,
    ),
    ("PUT", "/v1/repositories/{github_id}"): (
        "org admin",
        _json_body(_obj(project={"anyOf": [_str(PROJECT_NAME), {"type": "null"}]})),
        200,
        {"$ref": "#/components/schemas/Repository"},
        (400, 404),
        {"github_id": _str(GITHUB_ID)},
        {},
    ),
    ("GET", "/v1/installations"): (
        "server admin",
        None,
        200,
        _page({"$ref": "#/components/schemas/Installation"}),
        (400,),
        {},
        _PAGE_QUERY,
    ),
    ("PUT", "/v1/installations/{id}"): (
        "server admin",
        _json_body(_obj(org={"anyOf": [_str(ORG_NAME), {"type": "null"}]})),
        200,
        {"$ref": "#/components/schemas/Installation"},
        (400, 404),
        {"id": _str(GITHUB_ID)},
        {},
    ),
    ("GET", "/v1/dashboard/ai"): (
        "any token",
        None,
        200,
        _obj(
            ["org", "range", "period", "previous_period", "cards", "tokens", "top_users", "model_breakdown", "series"],
            org=_S,
            project=_NS,
            range={"enum": ["24h", "7d", "30d", "3m"]},
            granularity={"enum": ["hour", "day"]},
            period=_PERIOD,
            previous_period=_PERIOD,
            generated_at=_S,
            has_data=_B,
            cards={"type": "object", "additionalProperties": _CARD},
            tokens=_obj(["input", "output", "total"], input=_I, output=_I, total=_I),
            top_users=_ARR,
            model_breakdown=_ARR,
            series=_ARR,
        ),
        (400, 404),
        {},
        {"range": {"enum": ["24h", "7d", "30d", "3m"]}, "project": _str(minLength=1, maxLength=128)},
    ),
    ("POST", "/github/webhook"): (
        "GitHub (X-Hub-Signature-256 HMAC of the body with the App's webhook secret)",
        _json_body(_OBJ),
        202,
        _obj(["outcome"], outcome=_S, detail=_S, execution=_S),
        (400, 401, 413),
        {},
        {},
    ),
}

COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    "schemas": {
        "Error": _obj(["error"], error=_obj(["code", "message"], code=_S, message=_S)),
        "Project": _obj(
            ["name", "org", "created_at", "has_contract", "contract_updated_at"],
            name=_S,
            org=_S,
            created_at=_S,
            has_contract=_B,
            contract_updated_at=_NS,
        ),
        "Token": _obj(
            ["id", "subject", "kind", "role", "scopes", "expires_at", "can_register_keys", "revoked_at"],
            id=_S,
            token=_S,
            subject=_S,
            kind={"enum": ["user", "service"]},
            role={"enum": ["member", "org_admin", "service"]},
            scopes=_SCOPES,
            expires_at=_S,
            can_register_keys=_B,
            revoked_at=_NS,
        ),
        "Key": _obj(
            ["keyid", "pem", "subject", "created_at", "revoked_at"],
            keyid=_S,
            pem=_S,
            subject=_S,
            created_at=_S,
            revoked_at=_NS,
        ),
        "Repository": _obj(
            ["github_id", "full_name", "installation_id", "project", "status"],
            github_id=_I,
            full_name=_S,
            installation_id=_I,
            project=_NS,
            status=_S,
            private={"type": ["boolean", "null"]},
            updated_at=_NS,
        ),
        "Installation": _obj(
            ["id", "account", "status", "org"],
            id=_I,
            account=_NS,
            account_type=_NS,
            status=_S,
            org=_NS,
            repository_selection=_NS,
            created_at=_NS,
            updated_at=_NS,
        ),
    },
}

_PUBLIC = ("/healthz", "/v1/openapi.json", "/github/webhook")
_TRANSIENT = 503  # a dependency failed transiently: retry


def _responses(route: Route, status: int, response: dict[str, Any], errors: Sequence[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {"description": "OK", "content": {"application/json": {"schema": response}}}
    }
    error_statuses = set(errors) | {_TRANSIENT}
    if "{" in route.path:  # no such thing, or a name the router cannot route
        error_statuses.add(404)
    if route.path not in _PUBLIC:
        error_statuses |= {401, 403}
    for code in sorted(error_statuses):
        if 200 <= code < 300:
            responses[str(code)] = {"description": "OK", "content": {"application/json": {"schema": response}}}
        else:
            responses[str(code)] = {"description": "Error", "content": {"application/json": {"schema": _ERROR}}}
    return responses


def openapi_document(routes: Sequence[Route], server_url: str = "") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        who, request, status, response, errors, path_params, query = DETAILS.get(
            (route.method, route.path), ("see summary", None, 200, {}, (), {}, {})
        )
        operation: dict[str, Any] = {
            "summary": route.summary,
            "description": f"Who: {who}.",
            "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{route.method} {route.path}").strip("_").lower(),
            "responses": _responses(route, status, response, errors),
        }
        if route.path not in _PUBLIC:
            operation["security"] = [{"bearer": []}]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": path_params.get(name, _S)}
            for name in re.findall(r"{([^}]+)}", route.path)
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in query.items()
        ]
        if parameters:
            operation["parameters"] = parameters
        if request is not None:
            operation["requestBody"] = request
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Tracemark API", "version": "1"},
        "paths": paths,
        "components": COMPONENTS,
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
