"""Bearer-token authentication: JWT checks, revocation, the server-admin token, role helpers."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from attest_builders import ADMIN_TOKEN, AUTH, ISSUER, JWT_SECRET
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tracemark_common.auth import (
    AuthConfig,
    Principal,
    authenticate,
    issue_jwt,
    parse_scopes,
    require_org,
    require_org_admin,
    require_scope,
    require_server_admin,
)
from tracemark_common.errors import BadRequest, Forbidden, Unauthorized
from tracemark_common.store.memory import MemoryStore
from tracemark_common.store.records import TokenRecord


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.put_token(
        TokenRecord(
            org="acme",
            id="tok_1",
            sub="alice",
            kind="user",
            role="member",
            scopes=["push", "read"],
            created_at="2026-01-01T00:00:00.000Z",
            expires_at_epoch=int(time.time()) + 3600,
        )
    )
    return s


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "alice",
        "org": "acme",
        "role": "member",
        "scope": "push read",
        "jti": "tok_1",
        "exp": int(time.time()) + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth(store: MemoryStore, token: str) -> Principal:
    return authenticate(bearer(token), tokens=store, config=AUTH)


def test_a_valid_token_gives_its_principal(store: MemoryStore) -> None:
    token = issue_jwt(
        org="acme", sub="alice", role="member", scopes=["push", "read"], token_id="tok_1", expires_at=2**33, config=AUTH
    )
    p = authenticate({"authorization": f"bearer {token}"}, tokens=store, config=AUTH)
    assert (p.org, p.sub, p.role, p.scopes, p.token_id, p.kind) == (
        "acme",
        "alice",
        "member",
        ("push", "read"),
        "tok_1",
        "user",
    )


def test_role_and_scopes_come_from_the_token_item_not_the_claims(store: MemoryStore) -> None:
    # A token whose claims were minted as org_admin but whose item says member stays member
    token = jwt.encode(claims(role="org_admin", scope="push read admin"), JWT_SECRET, algorithm="HS256")
    p = auth(store, token)
    assert p.role == "member" and "admin" not in p.scopes


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"X-Token": "abc"}],
)
def test_missing_or_malformed_authorization_is_401(store: MemoryStore, headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as err:
        authenticate(headers, tokens=store, config=AUTH)
    assert err.value.code == "missing_token"


def test_expired_token_is_401_token_expired(store: MemoryStore) -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 3600), JWT_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized) as err:
        auth(store, token)
    assert err.value.code == "token_expired"


def test_forged_signature_is_401(store: MemoryStore) -> None:
    token = jwt.encode(claims(), "another-secret-" + "x" * 40, algorithm="HS256")
    with pytest.raises(Unauthorized) as err:
        auth(store, token)
    assert err.value.code == "invalid_token"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused(store: MemoryStore) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."
    with pytest.raises(Unauthorized):
        auth(store, token)


def test_rs256_token_is_refused_even_when_signed_with_a_real_key(store: MemoryStore) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), private, algorithm="RS256")
    with pytest.raises(Unauthorized):
        auth(store, token)


def test_hs256_signed_with_a_public_key_text_is_refused(store: MemoryStore) -> None:
    # The classic RS/HS confusion: the attacker HMACs with a public key as the secret.
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(claims())
    import hashlib
    import hmac

    sig = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(Unauthorized):
        auth(store, token)


@pytest.mark.parametrize("missing", ["exp", "iss", "sub", "org", "role", "scope", "jti"])
def test_every_required_claim_is_required(store: MemoryStore, missing: str) -> None:
    token = jwt.encode(claims(**{missing: None}), JWT_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        auth(store, token)


@pytest.mark.parametrize(
    "override",
    [{"iss": "someone-else"}, {"role": "server_admin"}, {"org": ""}, {"sub": 5}, {"jti": "tok_unknown"}],
)
def test_wrong_claims_are_refused(store: MemoryStore, override: dict[str, Any]) -> None:
    token = jwt.encode(claims(**override), JWT_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        auth(store, token)


def test_token_of_another_org_with_the_same_jti_is_refused(store: MemoryStore) -> None:
    token = jwt.encode(claims(org="other"), JWT_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        auth(store, token)


def test_subject_must_match_the_token_item(store: MemoryStore) -> None:
    token = jwt.encode(claims(sub="mallory"), JWT_SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        auth(store, token)


def test_revoked_token_is_401(store: MemoryStore) -> None:
    token = jwt.encode(claims(), JWT_SECRET, algorithm="HS256")
    assert auth(store, token).sub == "alice"
    store.revoke_token("acme", "tok_1", "2026-11-20T00:00:00.000Z")
    with pytest.raises(Unauthorized) as err:
        auth(store, token)
    assert err.value.code == "token_revoked"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a" * 9000, ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x"])
def test_garbage_and_near_miss_admin_tokens_are_401(store: MemoryStore, token: str) -> None:
    with pytest.raises(Unauthorized):
        auth(store, token)


def test_server_admin_token(store: MemoryStore) -> None:
    p = auth(store, ADMIN_TOKEN)
    assert p.role == "server_admin" and p.org is None
    require_server_admin(p)
    with pytest.raises(Forbidden):
        require_org(p)
    with pytest.raises(Forbidden):
        require_org_admin(p)


def test_a_short_admin_secret_is_never_accepted(store: MemoryStore) -> None:
    config = AuthConfig(jwt_secret=JWT_SECRET, admin_token="short", issuer=ISSUER)
    with pytest.raises(Unauthorized):
        authenticate(bearer("short"), tokens=store, config=config)


def test_role_helpers() -> None:
    member = Principal(org="acme", sub="a", role="member", scopes=("push", "read"), token_id="t", kind="user")
    admin = Principal(
        org="acme", sub="b", role="org_admin", scopes=("push", "read", "admin"), token_id="t", kind="user"
    )
    service = Principal(org="acme", sub="ci", role="service", scopes=("push",), token_id="t", kind="service")
    assert require_org_admin(admin) == "acme"
    assert require_scope(service, "push") == "acme"
    with pytest.raises(Forbidden):
        require_org_admin(member)
    with pytest.raises(Forbidden):
        require_scope(service, "read")
    with pytest.raises(Forbidden):
        require_server_admin(admin)


def test_parse_scopes() -> None:
    assert parse_scopes(None, ("push",)) == ("push",)
    assert parse_scopes(["read", "push"], ()) == ("push", "read")
    assert parse_scopes("read admin", ()) == ("read", "admin")
    with pytest.raises(BadRequest):
        parse_scopes(["root"], ())
    with pytest.raises(BadRequest):
        parse_scopes(5, ())
