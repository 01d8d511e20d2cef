"""Bearer-token authentication and authorisation (SPEC §3.1).

Two kinds of bearer token:
- the server-admin token: an opaque secret (>= 32 characters) from `ADMIN_TOKEN_SECRET_ID`,
  compared in constant time; it belongs to no organisation;
- JWTs minted by this server: HS256 only (the algorithm is pinned, so `none` and RS/HS confusion
  are refused), signed with the secret from `JWT_SECRET_ID`; `exp`, `iss`, `sub`, `org`, `role`,
  `scope` and `jti` are required and the token item must exist and not be revoked.

`authenticate(headers)` returns a `Principal`; the `require_*` helpers raise `Forbidden`.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from tracemark_common.errors import BadRequest, Forbidden, Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iss", "sub", "org", "role", "scope", "jti")
ROLES = ("org_admin", "member", "service")
SCOPES = ("push", "read", "admin")
MIN_ADMIN_TOKEN_LENGTH = 32
MAX_TOKEN_LENGTH = 8192
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    org: str | None  # None only for the server admin
    sub: str
    role: str  # "server_admin" | "org_admin" | "member" | "service"
    scopes: tuple[str, ...]
    token_id: str
    kind: str  # "admin" | "user" | "service"
    can_register_keys: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role in ("org_admin", "server_admin")


SERVER_ADMIN_SUB = "server-admin"


class TokenLookup(Protocol):
    def get_token(self, org: str, token_id: str) -> Any: ...  # a TokenRecord-like object or None


@dataclass(frozen=True)
class AuthConfig:
    jwt_secret: str
    admin_token: str
    issuer: str


def default_config() -> AuthConfig:
    from tracemark_common.secrets import get_secret
    from tracemark_common.settings import get_settings

    settings = get_settings()
    return AuthConfig(
        jwt_secret=get_secret(settings.jwt_secret_id),
        admin_token=get_secret(settings.admin_token_secret_id),
        issuer=settings.issuer,
    )


def bearer_token(headers: Mapping[str, str] | None) -> str:
    value = ""
    for name, header in (headers or {}).items():
        if name.lower() == "authorization":
            value = header or ""
            break
    if not value:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'", code="missing_token")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", code="missing_token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("the bearer token is too long", code="invalid_token")
    return token


def authenticate(
    headers: Mapping[str, str] | None,
    *,
    tokens: TokenLookup | None = None,
    config: AuthConfig | None = None,
) -> Principal:
    """The caller behind the request's bearer token, or `Unauthorized`."""
    token = bearer_token(headers)
    config = config or default_config()
    if len(config.admin_token) >= MIN_ADMIN_TOKEN_LENGTH and hmac.compare_digest(
        token.encode(), config.admin_token.encode()
    ):
        return Principal(
            org=None,
            sub=SERVER_ADMIN_SUB,
            role="server_admin",
            scopes=SCOPES,
            token_id="server-admin",  # noqa: S106 - an id, not a secret
            kind="admin",
        )
    claims = decode_jwt(token, config)
    if tokens is None:
        from tracemark_common.store import default_store

        tokens = default_store()
    record = tokens.get_token(claims["org"], claims["jti"])
    if record is None or record.sub != claims["sub"]:
        raise Unauthorized("the token is not known to this server", code="invalid_token")
    if record.revoked_at:
        raise Unauthorized("the token has been revoked", code="token_revoked")
    return Principal(
        org=claims["org"],
        sub=claims["sub"],
        role=record.role,
        scopes=tuple(record.scopes),
        token_id=claims["jti"],
        kind=record.kind,
        can_register_keys=bool(record.can_register_keys),
    )


def decode_jwt(token: str, config: AuthConfig) -> dict[str, Any]:
    if token.count(".") != 2:
        raise Unauthorized("the bearer token is not valid", code="invalid_token")
    if len(config.jwt_secret) < 32:
        raise Unauthorized("the server's token signing key is not configured", code="invalid_token")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(f"tokens must be signed with {ALGORITHM}", code="invalid_token")
        claims: dict[str, Any] = jwt.decode(
            token,
            config.jwt_secret,
            algorithms=[ALGORITHM],
            issuer=config.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False, "verify_iat": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the bearer token is not valid: {exc}", code="invalid_token") from exc
    for name in ("sub", "org", "role", "scope", "jti"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise Unauthorized(f"the token's {name!r} claim is not valid", code="invalid_token")
    if claims["role"] not in ROLES:
        raise Unauthorized("the token's role is not valid", code="invalid_token")
    return claims


def issue_jwt(
    *, org: str, sub: str, role: str, scopes: Iterable[str], token_id: str, expires_at: int, config: AuthConfig
) -> str:
    claims = {
        "iss": config.issuer,
        "sub": sub,
        "org": org,
        "role": role,
        "scope": " ".join(scopes),
        "jti": token_id,
        "iat": int(time.time()),
        "exp": int(expires_at),
    }
    return jwt.encode(claims, config.jwt_secret, algorithm=ALGORITHM)


def new_token_id() -> str:
    return "tok_" + uuid.uuid4().hex


# authorisation ----------------------------------------------------------------------------------
def require_org(p: Principal) -> str:
    """The caller's organisation; the server admin has none."""
    if p.org is None:
        raise Forbidden("the server admin token belongs to no organisation; use an organisation token", code="no_org")
    return p.org


def require_server_admin(p: Principal) -> None:
    if p.role != "server_admin":
        raise Forbidden("this needs the server admin token", code="forbidden")


def require_org_admin(p: Principal) -> str:
    org = require_org(p)
    if p.role != "org_admin" or "admin" not in p.scopes:
        raise Forbidden("this needs an organisation admin token", code="forbidden")
    return org


def require_scope(p: Principal, scope: str) -> str:
    org = require_org(p)
    if scope not in p.scopes:
        raise Forbidden(f"the token lacks the {scope!r} scope", code="missing_scope")
    return org


def parse_scopes(value: object, default: Iterable[str]) -> tuple[str, ...]:
    if value is None:
        return tuple(default)
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise BadRequest("scopes must be a list of strings", code="invalid_scopes")
    unknown = sorted(set(items) - set(SCOPES))
    if unknown:
        raise BadRequest(f"unknown scopes {unknown}; use {list(SCOPES)}", code="invalid_scopes")
    return tuple(s for s in SCOPES if s in items)
