"""GitHub App administration routes (SPEC §3.1a):

- `GET /v1/installations`, `PUT /v1/installations/{id}` `{"org": "<name>"|null}` — server admin:
  installations seen in webhooks; bind one to an organisation (null unbinds).
- `GET /v1/repositories`, `PUT /v1/repositories/{github_id}` `{"project": "<name>"|null}` — org
  admin: the repositories of the organisation's installations; link one to a project.

An org admin never sees another organisation's installations or repositories (404, not 403).
Lists take `?limit&cursor` and return `{items, next_cursor}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from tracemark_common.api import body_bytes, json_response, reject_unknown_parameters
from tracemark_common.auth import Principal, authenticate, require_org_admin, require_server_admin
from tracemark_common.errors import BadRequest, NotFound
from tracemark_common.http.services import services
from tracemark_common.prs import runtime
from tracemark_common.prs.records import InstallationRecord, RepositoryRecord
from tracemark_common.store.memory import decode_cursor, encode_cursor

router = Router()  # type: ignore[no-untyped-call]

ID = re.compile(r"^[1-9][0-9]{0,19}$")
_ORG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_LIMIT = 200
MAX_BODY = 4096


def _principal() -> Principal:
    svc = services()
    return authenticate(router.current_event.headers, tokens=svc.store, config=svc.auth_config())


def _id(value: str, what: str) -> int:
    if not ID.fullmatch(value or ""):
        raise BadRequest(f"{what} must be a positive integer", code="bad_request")
    return int(value)


def _body() -> dict[str, Any]:
    data = body_bytes(router.current_event)
    if len(data) > MAX_BODY:
        raise BadRequest(f"the request body is larger than {MAX_BODY} bytes", code="bad_request")
    try:
        value = json.loads(data) if data else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object", code="malformed_json")
    return value


def _page(items: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> Response[str]:
    params = dict(router.current_event.query_string_parameters or {})
    reject_unknown_parameters(params, {"limit", "cursor"})
    try:
        limit = int(params.get("limit", "50"))
    except ValueError as exc:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", code="bad_request") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", code="bad_request")
    ordered = sorted(items, key=key)
    if params.get("cursor"):
        after = decode_cursor(params["cursor"], ("after",))["after"]
        ordered = [item for item in ordered if key(item) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    next_cursor = encode_cursor({"after": key(page[-1])}) if more and page else None
    return json_response(200, {"items": page, "next_cursor": next_cursor})


def installation_json(record: InstallationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "account": record.account,
        "account_type": record.account_type,
        "status": record.status,
        "org": record.org,
        "repository_selection": record.repository_selection,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def repository_json(record: RepositoryRecord) -> dict[str, Any]:
    return {
        "github_id": record.id,
        "full_name": record.full_name,
        "installation_id": record.installation_id,
        "project": record.project,
        "status": record.status,
        "private": record.private,
        "updated_at": record.updated_at,
    }


@router.get("/v1/installations")
def list_installations() -> Response[str]:
    require_server_admin(_principal())
    items = [installation_json(r) for r in runtime.store().list_installations()]
    return _page(items, lambda item: f"{item['id']:020d}")


@router.put("/v1/installations/<installation_id>")
def bind_installation(installation_id: str) -> Response[str]:
    principal = _principal()
    require_server_admin(principal)
    number = _id(installation_id, "the installation id")
    body = _body()
    org = body.get("org")
    if org is not None and (not isinstance(org, str) or not _ORG.fullmatch(org)):
        raise BadRequest('expected {"org": "<organisation name>"} (or null to unbind)', code="bad_request")
    if org is not None and services().store.get_org(org) is None:
        raise NotFound(f"organisation {org!r} does not exist", code="unknown_org")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def change(record: InstallationRecord) -> None:
        record.org = org
        record.updated_at = now

    updated = runtime.store().update_installation(number, change)
    if updated is None:
        raise NotFound(f"installation {number} has not been seen in a webhook", code="unknown_installation")
    return json_response(200, installation_json(updated))


def _org_installations(org: str) -> dict[int, InstallationRecord]:
    return {r.id: r for r in runtime.store().list_installations() if r.org == org}


@router.get("/v1/repositories")
def list_repositories() -> Response[str]:
    org = require_org_admin(_principal())
    store = runtime.store()
    items = [
        repository_json(repo)
        for installation_id in _org_installations(org)
        for repo in store.repositories_of(installation_id)
    ]
    return _page(items, lambda item: f"{item['full_name']}#{item['github_id']}")


@router.put("/v1/repositories/<github_id>")
def link_repository(github_id: str) -> Response[str]:
    org = require_org_admin(_principal())
    number = _id(github_id, "the repository id")
    body = _body()
    project = body.get("project")
    if project is not None and (not isinstance(project, str) or not _PROJECT.fullmatch(project)):
        raise BadRequest('expected {"project": "<project name>"} (or null to unlink)', code="bad_request")
    store = runtime.store()
    repository = store.get_repository(number)
    if repository is None or repository.installation_id not in _org_installations(org):
        raise NotFound(f"repository {number} is not in this organisation's installations", code="unknown_repository")
    if project is not None and services().store.get_project(org, project) is None:
        raise NotFound(f"project {project!r} does not exist", code="unknown_project")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def change(record: RepositoryRecord) -> None:
        record.project = project
        record.updated_at = now

    updated = store.update_repository(number, change)
    if updated is None:  # removed between the two reads
        raise NotFound(f"repository {number} is not known", code="unknown_repository")
    return json_response(200, repository_json(updated))
