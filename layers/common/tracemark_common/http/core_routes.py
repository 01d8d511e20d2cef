"""Core API routes (SPEC §3.1a): health, OpenAPI, whoami, orgs, projects and contracts, org
policies and settings, tokens, signing keys, attestations, uploads and sessions.

The organisation always comes from the token, never from the path. Handlers parse, authorise,
call the store or a domain function, and return JSON; errors are domain errors.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from tracemark_common import dsse
from tracemark_common.api import MAX_BODY_BYTES, bounded_body, json_response, reject_unknown_parameters
from tracemark_common.auth import (
    SCOPES,
    Principal,
    authenticate,
    issue_jwt,
    new_token_id,
    parse_scopes,
    require_org,
    require_org_admin,
    require_scope,
    require_server_admin,
)
from tracemark_common.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from tracemark_common.http.services import services
from tracemark_common.ingest import (
    MAX_UPLOADED_ENVELOPE_BYTES,
    PROJECT_NAME,
    SESSION_ID,
    SHA256,
    erase_session,
    ingest_attestation,
    iso,
    session_url,
    strict_json,
    transcript_upload_key,
)
from tracemark_common.routes import ROUTES
from tracemark_common.store import load_evidence
from tracemark_common.store.base import AlreadyExists, BlobStore, SessionQuery
from tracemark_common.store.records import (
    AuditRecord,
    KeyRecord,
    OrgRecord,
    PolicyRecord,
    ProjectRecord,
    SessionRecord,
    TokenRecord,
)

router = Router()  # type: ignore[no-untyped-call]

ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._+:-]{0,199}$")
POLICY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
KEYID = re.compile(r"^[0-9a-f]{64}$")
TOKEN_ID = re.compile(r"^tok_[0-9a-f]{32}$")
UPLOAD_ID = re.compile(r"^up_[0-9a-f]{32}$")
DEFAULT_TTL = 90 * 86400
MAX_TTL = 366 * 86400
ORG_ADMIN_TTL = 365 * 86400
MAX_CONTRACT_BYTES = 256 * 1024
MAX_PEM_BYTES = 8192
UPLOAD_EXPIRES = 900
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "3m": timedelta(days=90)}
MAX_LIMIT = 200
MAX_INLINE_EVIDENCE = 4 * 1024 * 1024


# request helpers ----------------------------------------------------------------------------------
def _principal() -> Principal:
    svc = services()
    return authenticate(router.current_event.headers, tokens=svc.store, config=svc.auth_config())


def _raw(limit: int = MAX_BODY_BYTES) -> bytes:
    return bounded_body(router.current_event, limit)


def _json(limit: int = MAX_BODY_BYTES, *, optional: bool = False) -> dict[str, Any]:
    data = _raw(limit)
    if optional and not data.strip():
        return {}
    value = strict_json(data, "the request body")
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object", code="malformed_json")
    return value


def _text_or_field(field: str, limit: int) -> str:
    """A YAML/Rego document sent raw, or as `{"<field>": "<text>"}` in JSON."""
    data = _raw(limit)
    headers = router.current_event.headers or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "") or ""
    if "json" in content_type.lower():
        value = _json(limit).get(field)
        if not isinstance(value, str):
            raise BadRequest(f'expected {{"{field}": "<text>"}}', code="bad_request")
        text = value
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("the body must be UTF-8 text", code="bad_request") from exc
    if not text.strip():
        raise BadRequest(f"the {field} is empty", code="bad_request")
    if "\x00" in text:
        raise BadRequest(f"the {field} contains NUL characters", code="bad_request")
    return text


def _query() -> dict[str, str]:
    return dict(router.current_event.query_string_parameters or {})


def _base_url() -> str:
    configured = services().base_url
    if configured:
        return configured.rstrip("/")
    event = cast(APIGatewayProxyEventV2, router.current_event)
    domain = event.request_context.domain_name
    return f"https://{domain}" if domain else ""


def _string(body: dict[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise BadRequest(f"{name!r} must be {what}", code="bad_request")
    return value


def _now() -> datetime:
    return services().clock()


def _audit(org: str, action: str, actor: str, **detail: Any) -> None:
    services().store.audit(AuditRecord(org=org, at=iso(_now()), action=action, actor=actor, detail=detail))


def _path_name(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise NotFound(f"{what} {value[:80]!r} does not exist", code=f"{what.replace(' ', '_')}_not_found")
    return value


# health, OpenAPI, whoami ----------------------------------------------------------------------------
@router.get("/healthz")
def healthz() -> Response[str]:
    return json_response(200, {"status": "ok"})


@router.get("/v1/openapi.json")
def openapi() -> Response[str]:
    from tracemark_common.http.openapi import openapi_document

    return json_response(200, openapi_document(ROUTES, _base_url()))


@router.get("/v1/whoami")
def whoami() -> Response[str]:
    p = _principal()
    return json_response(
        200,
        {
            "org": p.org,
            "subject": p.sub,
            "role": p.role,
            "scopes": list(p.scopes),
            "kind": p.kind,
            "token_id": p.token_id,
        },
    )


# organisations, tokens ------------------------------------------------------------------------------
def _mint(
    org: str,
    *,
    subject: str,
    kind: str,
    role: str,
    scopes: tuple[str, ...],
    ttl: int,
    created_by: str,
    can_register_keys: bool,
) -> tuple[TokenRecord, str]:
    now = _now()
    record = TokenRecord(
        org=org,
        id=new_token_id(),
        sub=subject,
        kind=kind,
        role=role,
        scopes=list(scopes),
        created_at=iso(now),
        expires_at_epoch=int(now.timestamp()) + ttl,
        created_by=created_by,
        can_register_keys=can_register_keys,
    )
    services().store.put_token(record)
    token = issue_jwt(
        org=org,
        sub=subject,
        role=role,
        scopes=scopes,
        token_id=record.id,
        expires_at=record.expires_at_epoch,
        config=services().auth_config(),
    )
    return record, token


def _token_body(record: TokenRecord, token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "subject": record.sub,
        "kind": record.kind,
        "role": record.role,
        "scopes": record.scopes,
        "expires_at": iso(datetime.fromtimestamp(record.expires_at_epoch, tz=UTC)),
        "can_register_keys": record.can_register_keys,
        "revoked_at": record.revoked_at,
    }
    if token is not None:
        body["token"] = token
    return body


@router.post("/v1/orgs")
def create_org() -> Response[str]:
    p = _principal()
    require_server_admin(p)
    body = _json()
    name = _string(body, "name", ORG_NAME, "1-63 lowercase letters, digits or '-'")
    admin_subject = body.get("admin_subject", "org-admin")
    if not isinstance(admin_subject, str) or not SUBJECT.match(admin_subject):
        raise BadRequest("'admin_subject' must be a short identifier (letters, digits, @._+:-)", code="bad_request")
    try:
        services().store.create_org(OrgRecord(name=name, created_at=iso(_now()), created_by=p.sub))
    except AlreadyExists as exc:
        raise Conflict(f"organisation {name!r} already exists", code="org_exists") from exc
    record, token = _mint(
        name,
        subject=admin_subject,
        kind="user",
        role="org_admin",
        scopes=SCOPES,
        ttl=ORG_ADMIN_TTL,
        created_by=p.sub,
        can_register_keys=True,
    )
    _audit(name, "org.create", p.sub, token_id=record.id)
    return json_response(201, {"org": name, "token": token, "token_id": record.id, "subject": admin_subject})


_DURATION = re.compile(r"^([1-9][0-9]{0,8})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl(body: dict[str, Any]) -> int:
    """`ttl_seconds` (integer), or `ttl` as seconds or a duration like "90d", "12h", "30m"."""
    if "ttl_seconds" in body and "ttl" in body:
        raise BadRequest("give 'ttl_seconds' or 'ttl', not both", code="bad_request")
    value = body.get("ttl_seconds", body.get("ttl", DEFAULT_TTL))
    if isinstance(value, str) and (match := _DURATION.match(value.strip())):
        value = int(match.group(1)) * _UNIT[match.group(2)]
    if isinstance(value, float) and value.is_integer():  # 3600.0 is an integer in JSON
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 60 <= value <= MAX_TTL:
        raise BadRequest(
            f"'ttl_seconds' must be an integer from 60 to {MAX_TTL} (or 'ttl' a duration such as '90d')",
            code="bad_request",
        )
    return value


@router.post("/v1/tokens")
def create_token() -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    body = _json()
    subject = _string(body, "subject", SUBJECT, "a short identifier (letters, digits, @._+:-)")
    kind = body.get("kind", "user")
    if kind not in ("user", "service"):
        raise BadRequest("'kind' must be 'user' or 'service'", code="bad_request")
    ttl = _ttl(body)
    if kind == "service":
        role = "service"
        if body.get("role", "service") != "service":
            raise BadRequest("service tokens have the role 'service'", code="bad_request")
        default_scopes: tuple[str, ...] = ("push",)
    else:
        role = body.get("role", "member")
        if role not in ("member", "org_admin"):
            raise BadRequest("'role' must be 'member' or 'org_admin'", code="bad_request")
        default_scopes = SCOPES if role == "org_admin" else ("push", "read")
    scopes = parse_scopes(body.get("scopes"), default_scopes)
    if "admin" in scopes and role != "org_admin":
        raise BadRequest("only org_admin tokens may carry the 'admin' scope", code="invalid_scopes")
    can_register = body.get("can_register_keys", kind == "user")
    if not isinstance(can_register, bool):
        raise BadRequest("'can_register_keys' must be true or false", code="bad_request")
    record, token = _mint(
        org,
        subject=subject,
        kind=kind,
        role=role,
        scopes=scopes,
        ttl=ttl,
        created_by=p.sub,
        can_register_keys=can_register,
    )
    _audit(org, "token.create", p.sub, token_id=record.id, subject=subject, kind=kind, role=role)
    return json_response(201, _token_body(record, token))


@router.delete("/v1/tokens/<token_id>")
def revoke_token(token_id: str) -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    _path_name(token_id, TOKEN_ID, "token")
    store = services().store
    at = iso(_now())
    record = store.revoke_token(org, token_id, at)
    if record is None:
        raise NotFound(f"token {token_id!r} does not exist", code="token_not_found")
    for key in store.keys_for_token(org, token_id):  # its keys stop verifying from now on
        store.revoke_key(org, key.keyid, at)
    _audit(org, "token.revoke", p.sub, token_id=token_id)
    return json_response(200, _token_body(record))


# projects, contracts, policies, settings --------------------------------------------------------------
def _project_body(project: ProjectRecord) -> dict[str, Any]:
    return {
        "name": project.name,
        "org": project.org,
        "created_at": project.created_at,
        "has_contract": project.contract_yaml is not None,
        "contract_updated_at": project.contract_updated_at,
    }


def _policy_names(org: str) -> list[str]:
    return [p.name for p in services().store.list_policies(org)]


def _check_contract(org: str, text: str) -> None:
    try:
        from tracemark_common.policy import parse_contract
    except ImportError:
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise Unprocessable(f"the contract is not valid YAML: {exc}", code="invalid_contract") from exc
        if not isinstance(document, dict):
            raise Unprocessable("the contract must be a YAML mapping", code="invalid_contract") from None
        return
    parse_contract(text, _policy_names(org))


@router.post("/v1/projects")
def create_project() -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    body = _json()
    name = _string(body, "name", PROJECT_NAME, "1-100 letters, digits, '.', '_' or '-'")
    contract = body.get("contract")
    if contract is not None and (not isinstance(contract, str) or len(contract.encode()) > MAX_CONTRACT_BYTES):
        raise BadRequest("'contract' must be the contract YAML text (at most 256 KB)", code="bad_request")
    if contract is not None:
        _check_contract(org, contract)
    now = iso(_now())
    project = ProjectRecord(
        org=org,
        name=name,
        created_at=now,
        created_by=p.sub,
        contract_yaml=contract,
        contract_updated_at=now if contract is not None else None,
        contract_updated_by=p.sub if contract is not None else None,
    )
    try:
        services().store.create_project(project)
    except AlreadyExists as exc:
        raise Conflict(f"project {name!r} already exists", code="project_exists") from exc
    _audit(org, "project.create", p.sub, project=name)
    return json_response(201, _project_body(project))


def _project(org: str, name: str) -> ProjectRecord:
    project = services().store.get_project(org, name) if PROJECT_NAME.match(name) else None
    if project is None:
        raise NotFound(f"project {name[:100]!r} does not exist", code="unknown_project")
    return project


@router.get("/v1/projects/<name>")
def get_project(name: str) -> Response[str]:
    org = require_org(_principal())
    return json_response(200, _project_body(_project(org, name)))


@router.get("/v1/projects/<name>/contract")
def get_contract(name: str) -> Response[str]:
    org = require_org(_principal())
    project = _project(org, name)
    return json_response(
        200,
        {
            "project": project.name,
            "contract": project.contract_yaml,
            "updated_at": project.contract_updated_at,
            "updated_by": project.contract_updated_by,
        },
    )


@router.put("/v1/projects/<name>/contract")
def put_contract(name: str) -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    _project(org, name)
    text = _text_or_field("contract", MAX_CONTRACT_BYTES)
    _check_contract(org, text)
    project = services().store.set_project_contract(org, name, text, iso(_now()), p.sub)
    _audit(org, "contract.put", p.sub, project=name)
    return json_response(200, {"project": project.name, "updated_at": project.contract_updated_at})


def _check_policy(text: str) -> None:
    try:
        from tracemark_common.policy import check_policy
    except ImportError:  # no policy engine installed: stored unchecked, evaluated as neutral
        return
    check_policy(text)


@router.get("/v1/policies/<name>")
def get_policy(name: str) -> Response[str]:
    org = require_org_admin(_principal())
    policy = services().store.get_policy(org, name) if POLICY_NAME.match(name) else None
    if policy is None:
        raise NotFound(f"policy {name[:100]!r} does not exist", code="policy_not_found")
    return json_response(
        200, {"name": policy.name, "policy": policy.text, "updated_at": policy.updated_at, "ref": f"policy:{name}"}
    )


@router.put("/v1/policies/<name>")
def put_policy(name: str) -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    if not POLICY_NAME.match(name):
        raise BadRequest("policy names are 1-100 lowercase letters, digits, '.', '_' or '-'", code="bad_request")
    text = _text_or_field("policy", MAX_CONTRACT_BYTES)
    _check_policy(text)
    existed = services().store.get_policy(org, name) is not None
    services().store.put_policy(PolicyRecord(org=org, name=name, text=text, updated_at=iso(_now()), updated_by=p.sub))
    _audit(org, "policy.put", p.sub, policy=name)
    return json_response(200 if existed else 201, {"name": name, "ref": f"policy:{name}"})


@router.put("/v1/org/settings")
def put_settings() -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    body = _json()
    unknown = sorted(set(body) - {"gate_default"})
    if unknown:
        raise BadRequest(f"unknown settings {unknown}; known: ['gate_default']", code="bad_request")
    if "gate_default" in body and not isinstance(body["gate_default"], bool):
        raise BadRequest("'gate_default' must be true or false", code="bad_request")
    record = services().store.update_org_settings(org, body)
    _audit(org, "settings.put", p.sub, settings=body)
    return json_response(200, {"org": org, "settings": record.settings})


# signing keys -------------------------------------------------------------------------------------
def _key_body(key: KeyRecord) -> dict[str, Any]:
    return {
        "keyid": key.keyid,
        "pem": key.pem,
        "subject": key.subject,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


@router.post("/v1/keys")
def register_key() -> Response[str]:
    p = _principal()
    org = require_scope(p, "push")
    if p.kind == "service" and not p.can_register_keys:
        raise Forbidden("this service token was not minted with can_register_keys", code="forbidden")
    body = _json()
    pem = body.get("public_key_pem")
    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_PEM_BYTES:
        raise BadRequest("'public_key_pem' must be a PEM public key", code="bad_request")
    try:
        key = dsse.load_public_key_pem(pem)
    except dsse.DsseError as exc:
        raise Unprocessable(f"'public_key_pem': {exc}", code="invalid_key") from exc
    keyid = dsse.keyid(key)
    store = services().store
    record = KeyRecord(
        org=org,
        keyid=keyid,
        pem=dsse.public_key_pem(key),
        subject=p.sub,
        token_id=p.token_id,
        created_at=iso(_now()),
    )
    try:
        store.create_key(record)
    except AlreadyExists:
        existing = store.get_key(org, keyid)
        if existing is None or existing.subject != p.sub:
            raise Conflict("this key is registered to another subject", code="key_exists") from None
        if existing.revoked_at:
            raise Conflict("this key was revoked; generate a new one", code="key_revoked") from None
        return json_response(200, {"keyid": keyid, **_key_body(existing)})
    _audit(org, "key.register", p.sub, keyid=keyid, token_id=p.token_id)
    return json_response(201, {"keyid": keyid, **_key_body(record)})


def _key(org: str, keyid: str) -> KeyRecord:
    key = services().store.get_key(org, keyid) if KEYID.match(keyid) else None
    if key is None:
        raise NotFound(f"key {keyid[:80]!r} does not exist", code="key_not_found")
    return key


@router.get("/v1/keys/<keyid>")
def get_key(keyid: str) -> Response[str]:
    org = require_org(_principal())
    return json_response(200, _key_body(_key(org, keyid)))


@router.delete("/v1/keys/<keyid>")
def revoke_key(keyid: str) -> Response[str]:
    p = _principal()
    org = require_org(p)
    key = _key(org, keyid)
    if key.subject != p.sub and p.role != "org_admin":
        raise Forbidden("only the key's owner or an org admin may revoke it", code="forbidden")
    revoked = services().store.revoke_key(org, keyid, iso(_now())) or key
    _audit(org, "key.revoke", p.sub, keyid=keyid)
    return json_response(200, _key_body(revoked))


# attestations and uploads -------------------------------------------------------------------------
def _upload_key(org: str, upload_id: str) -> str:
    return f"uploads/{org}/{upload_id}"


@router.post("/v1/attestations")
def post_attestation() -> Response[str]:
    p = _principal()
    org = require_scope(p, "push")
    svc = services()
    data = _raw()
    value = strict_json(data, "the request body")
    upload_key = None
    envelope: bytes | dict[str, Any]
    max_bytes = MAX_BODY_BYTES
    if isinstance(value, dict) and "upload_id" in value and "payload" not in value:
        upload_id = value["upload_id"]
        if not isinstance(upload_id, str) or not UPLOAD_ID.match(upload_id):
            raise BadRequest("'upload_id' is not one POST /v1/uploads returned", code="bad_upload")
        upload_key = _upload_key(org, upload_id)
        uploaded = svc.blobs.get(upload_key, max_bytes=MAX_UPLOADED_ENVELOPE_BYTES)
        if uploaded is None:
            raise NotFound(
                f"upload {upload_id!r} has no data; PUT the envelope to its URL first", code="upload_not_found"
            )
        envelope, max_bytes = uploaded, MAX_UPLOADED_ENVELOPE_BYTES
    elif isinstance(value, dict):
        envelope = value
    else:
        raise BadRequest("the request body must be a DSSE envelope (a JSON object)", code="malformed_json")
    result = ingest_attestation(
        p,
        envelope,
        svc.clock(),
        store=svc.store,
        blobs=svc.blobs,
        policy_evaluator=svc.policy_evaluator,
        rollup_writer=svc.rollup_writer,
        base_url=_base_url(),
        max_bytes=max_bytes,
        after_commit=svc.after_ingest,
    )
    if upload_key is not None:
        svc.blobs.delete(upload_key)
    return json_response(result.status, result.body)


@router.post("/v1/uploads")
def create_upload() -> Response[str]:
    p = _principal()
    org = require_scope(p, "push")
    body = _json(64 * 1024, optional=True)
    kind = body.get("kind", "attestation")
    if kind == "attestation":
        upload_id = "up_" + uuid.uuid4().hex
        key, content_type, limit = _upload_key(org, upload_id), "application/json", MAX_UPLOADED_ENVELOPE_BYTES
    elif kind == "transcript":
        sha = body.get("sha256")
        if not isinstance(sha, str) or not SHA256.match(sha):
            raise BadRequest("a transcript upload needs 'sha256' (64 lowercase hex)", code="bad_request")
        upload_id = "tr_" + sha
        key, content_type, limit = transcript_upload_key(org, sha), "application/gzip", 256 * 1024 * 1024
    else:
        raise BadRequest("'kind' must be 'attestation' or 'transcript'", code="bad_request")
    url = services().blobs.presign_put(key, UPLOAD_EXPIRES, content_type)
    return json_response(
        201,
        {
            "upload_id": upload_id,
            "url": url,
            "method": "PUT",
            "headers": {"Content-Type": content_type},
            "expires_in": UPLOAD_EXPIRES,
            "max_bytes": limit,
        },
    )


# sessions -----------------------------------------------------------------------------------------
def _session_summary(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "project": record.project,
        "user": record.user,
        "user_kind": record.user_kind,
        "agent": record.agent,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "at": record.at,
        "received_at": record.received_at,
        "commits": len(record.commits),
        "gated": record.gated,
        "score": (record.score or {}).get("score") if isinstance(record.score, dict) else None,
        "flag": (record.score or {}).get("flag") if isinstance(record.score, dict) else None,
        "prs": len(record.prs),
        **{k: v for k, v in record.summary.items() if k not in ("commit_count",)},
    }


def _redact_raw(evidence: dict[str, Any]) -> dict[str, Any]:
    data = evidence.get("data")
    if isinstance(data, dict) and "raw_session" in data:
        evidence = {**evidence, "data": {k: v for k, v in data.items() if k != "raw_session"}}
    return evidence


def _evidence_view(
    record: SessionRecord, blobs: BlobStore, may_read_raw: bool
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The evidence to return inline, within the Lambda response limit (6 MB). A larger one loses
    its raw transcript lines (`evidence_truncated`); its pusher and admins get a short-lived
    `evidence_url` to the whole document."""
    evidence = load_evidence(record, blobs)
    if not may_read_raw:
        evidence = _redact_raw(evidence)
    if len(json.dumps(evidence, separators=(",", ":"))) <= MAX_INLINE_EVIDENCE:
        return evidence, {}
    extra: dict[str, Any] = {"evidence_truncated": "data.raw_session omitted: the evidence is too large to inline"}
    if may_read_raw and record.evidence_key:
        extra["evidence_url"] = blobs.presign_get(record.evidence_key, UPLOAD_EXPIRES)
    evidence = _redact_raw(evidence)
    if len(json.dumps(evidence, separators=(",", ":"))) > MAX_INLINE_EVIDENCE:
        extra["evidence_truncated"] = "evidence omitted: too large to inline"
        return None, extra
    return evidence, extra


@router.get("/v1/sessions")
def list_sessions() -> Response[str]:
    p = _principal()
    org = require_scope(p, "read")
    params = _query()
    reject_unknown_parameters(params, {"range", "since", "until", "project", "user", "limit", "cursor"})
    since = until = None
    if "range" in params:
        if params["range"] not in RANGES:
            raise BadRequest(f"range must be one of {', '.join(RANGES)}", code="bad_range")
        since = iso(_now() - RANGES[params["range"]])
    for name in ("since", "until"):
        if name in params:
            try:
                moment = datetime.fromisoformat(params[name][:40])
            except ValueError as exc:
                raise BadRequest(f"{name} must be an ISO-8601 time", code="bad_request") from exc
            value = iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
            since, until = (value, until) if name == "since" else (since, value)
    try:
        limit = int(params.get("limit", "50"))
    except ValueError as exc:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", code="bad_request") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", code="bad_request")
    project = params.get("project") or None
    if project is not None and not PROJECT_NAME.match(project):
        raise BadRequest("project is not a valid project name", code="bad_request")
    user = params.get("user") or None
    if user is not None and len(user) > 200:
        raise BadRequest("user is too long", code="bad_request")
    rows, next_cursor = services().store.list_sessions(
        SessionQuery(
            org=org, since=since, until=until, project=project, user=user, limit=limit, cursor=params.get("cursor")
        )
    )
    base = _base_url()
    items = [{**_session_summary(r), "url": session_url(base, r.id)} for r in rows]
    return json_response(200, {"items": items, "next_cursor": next_cursor})


@router.get("/v1/sessions/<session_id>")
def get_session(session_id: str) -> Response[str]:
    p = _principal()
    org = require_scope(p, "read")
    svc = services()
    record = svc.store.get_session(org, session_id) if SESSION_ID.match(session_id) else None
    if record is None:
        raise NotFound(f"session {session_id[:128]!r} does not exist", code="session_not_found")
    may_read_raw = p.sub == record.user or p.role == "org_admin"  # raw transcripts: pusher and admins
    evidence, extra = _evidence_view(record, svc.blobs, may_read_raw)
    body = {
        **_session_summary(record),
        "url": session_url(_base_url(), record.id),
        "last_received_at": record.last_received_at,
        "commit_shas": record.commits,
        "rewritten_from": record.rewritten_from,
        "attestations": record.digests,
        "actor_unverified": record.actor_unverified,
        "transcript": (
            {
                "sha256": record.transcript.get("sha256"),
                "size": record.transcript.get("size"),
                "stored": bool(record.transcript.get("key")),
            }
            if record.transcript
            else None
        ),
        "policy_results": record.policy_results,
        "score": record.score,
        "prs": record.prs,
        "evidence": evidence,
        **extra,
    }
    return json_response(200, body)


@router.delete("/v1/sessions/<session_id>")
def delete_session(session_id: str) -> Response[str]:
    p = _principal()
    org = require_org_admin(p)
    if not SESSION_ID.match(session_id):
        raise NotFound(f"session {session_id[:128]!r} does not exist", code="session_not_found")
    svc = services()
    erase_session(p, session_id, store=svc.store, blobs=svc.blobs, rollup_writer=svc.rollup_writer)
    _audit(org, "session.delete", p.sub, session=session_id)
    return json_response(200, {"id": session_id, "deleted": True})
