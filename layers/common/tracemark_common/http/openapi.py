"""The OpenAPI 3.1 document of `GET /v1/openapi.json`: every route of `tracemark_common.routes`,
plus request and response schemas for the core routes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tracemark_common.routes import Route

_ERROR = {"$ref": "#/components/schemas/Error"}


def _obj(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


_S = {"type": "string"}
_B = {"type": "boolean"}
_I = {"type": "integer"}
_SCOPES = {"type": "array", "items": {"enum": ["push", "read", "admin"]}}

# (method, path) -> (who may call it, request body schema or None, success status, response schema)
DETAILS: dict[tuple[str, str], tuple[str, dict[str, Any] | None, int, dict[str, Any]]] = {
    ("GET", "/healthz"): ("anyone", None, 200, _obj(["status"], status=_S)),
    ("GET", "/v1/whoami"): (
        "any token",
        None,
        200,
        _obj(["org", "subject", "role", "scopes"], org=_S, subject=_S, role=_S, scopes=_SCOPES, kind=_S, token_id=_S),
    ),
    ("POST", "/v1/orgs"): (
        "server admin",
        _obj(["name"], name=_S, admin_subject=_S),
        201,
        _obj(["org", "token"], org=_S, token=_S, token_id=_S, subject=_S),
    ),
    ("POST", "/v1/projects"): (
        "org admin",
        _obj(["name"], name=_S, contract=_S),
        201,
        {"$ref": "#/components/schemas/Project"},
    ),
    ("GET", "/v1/projects/{name}"): ("any token", None, 200, {"$ref": "#/components/schemas/Project"}),
    ("GET", "/v1/projects/{name}/contract"): (
        "any token",
        None,
        200,
        _obj(["project", "contract"], project=_S, contract={"type": ["string", "null"]}, updated_at=_S),
    ),
    ("PUT", "/v1/projects/{name}/contract"): (
        "org admin",
        {"description": 'Contract YAML as the raw body, or JSON {"contract": "<yaml>"}', **_obj(contract=_S)},
        200,
        _obj(project=_S, updated_at=_S),
    ),
    ("GET", "/v1/policies/{name}"): ("org admin", None, 200, _obj(name=_S, policy=_S, ref=_S, updated_at=_S)),
    ("PUT", "/v1/policies/{name}"): (
        "org admin",
        {"description": 'Policy YAML or Rego as the raw body, or JSON {"policy": "<text>"}', **_obj(policy=_S)},
        201,
        _obj(name=_S, ref=_S),
    ),
    ("PUT", "/v1/org/settings"): ("org admin", _obj(gate_default=_B), 200, _obj(org=_S, settings={"type": "object"})),
    ("POST", "/v1/tokens"): (
        "org admin",
        _obj(
            ["subject"],
            subject=_S,
            kind={"enum": ["user", "service"]},
            ttl_seconds=_I,
            role={"enum": ["member", "org_admin", "service"]},
            scopes=_SCOPES,
            can_register_keys=_B,
        ),
        201,
        {"$ref": "#/components/schemas/Token"},
    ),
    ("DELETE", "/v1/tokens/{id}"): ("org admin", None, 200, {"$ref": "#/components/schemas/Token"}),
    ("POST", "/v1/keys"): (
        "any token with push (service tokens need can_register_keys)",
        _obj(["public_key_pem"], public_key_pem=_S),
        201,
        {"$ref": "#/components/schemas/Key"},
    ),
    ("GET", "/v1/keys/{keyid}"): ("any token", None, 200, {"$ref": "#/components/schemas/Key"}),
    ("DELETE", "/v1/keys/{keyid}"): ("owner or org admin", None, 200, {"$ref": "#/components/schemas/Key"}),
    ("POST", "/v1/attestations"): (
        "any token with push",
        {
            "oneOf": [
                _obj(
                    ["payloadType", "payload", "signatures"], payloadType=_S, payload=_S, signatures={"type": "array"}
                ),
                _obj(["upload_id"], upload_id=_S),
            ]
        },
        201,
        _obj(
            ["digest", "sessions", "policy_results", "gated"],
            digest=_S,
            sessions={"type": "array", "items": _obj(["id", "url"], id=_S, url=_S)},
            policy_results={"type": "array", "items": {"type": "object"}},
            gated=_B,
        ),
    ),
    ("POST", "/v1/uploads"): (
        "any token with push",
        _obj(kind={"enum": ["attestation", "transcript"]}, sha256=_S, size=_I),
        201,
        _obj(["upload_id", "url"], upload_id=_S, url=_S, method=_S, headers={"type": "object"}, expires_in=_I),
    ),
    ("GET", "/v1/sessions"): (
        "any token with read",
        None,
        200,
        _obj(["items", "next_cursor"], items={"type": "array"}, next_cursor={"type": ["string", "null"]}),
    ),
    ("GET", "/v1/sessions/{id}"): ("any token with read", None, 200, {"type": "object"}),
    ("DELETE", "/v1/sessions/{id}"): ("org admin", None, 200, _obj(id=_S, deleted=_B)),
}

COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    "schemas": {
        "Error": _obj(["error"], error=_obj(["code", "message"], code=_S, message=_S)),
        "Project": _obj(["name"], name=_S, org=_S, created_at=_S, has_contract=_B, contract_updated_at=_S),
        "Token": _obj(
            ["id"], id=_S, token=_S, subject=_S, kind=_S, role=_S, scopes=_SCOPES, expires_at=_S, revoked_at=_S
        ),
        "Key": _obj(["keyid"], keyid=_S, pem=_S, subject=_S, created_at=_S, revoked_at={"type": ["string", "null"]}),
    },
}

_QUERY = {
    ("GET", "/v1/sessions"): ["range", "since", "until", "project", "user", "limit", "cursor"],
    ("GET", "/v1/dashboard/ai"): ["range", "project"],
}


def openapi_document(routes: Sequence[Route], server_url: str = "") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        who, request, status, response = DETAILS.get((route.method, route.path), ("see summary", None, 200, {}))
        operation: dict[str, Any] = {
            "summary": route.summary,
            "description": f"Who: {who}.",
            "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{route.method} {route.path}").strip("_").lower(),
            "responses": {
                str(status): {"description": "OK", "content": {"application/json": {"schema": response}}},
                "default": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
            },
        }
        if route.path not in ("/healthz", "/v1/openapi.json", "/github/webhook"):
            operation["security"] = [{"bearer": []}]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": _S}
            for name in re.findall(r"{([^}]+)}", route.path)
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": _S}
            for name in _QUERY.get((route.method, route.path), [])
        ]
        if parameters:
            operation["parameters"] = parameters
        if request is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
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
