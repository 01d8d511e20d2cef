"""Who can push what: tokens, roles and scopes, organisation isolation, identities, keys, revocation
(docs/security.md §T1-T3). Every request goes through the HTTP API emulator into the real handlers
on moto; keys and envelopes are generated here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from attest_builders import public_pem, sign

from conftest import Tenant, call, ok
from tracemark_common import dsse

pytestmark = pytest.mark.usefixtures("stack")


def _jwt_secret(stack: Any) -> str:
    return str(stack.secret_value("JwtSigningKeySecretArn"))


def test_forged_tokens_are_refused(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T1.1: alg none, HS256 with another key, and a token signed right but unknown to the store."""
    tenant = new_tenant()
    claims = {
        "iss": stack.settings.issuer,
        "sub": "mallory",
        "org": tenant.org,
        "role": "org_admin",
        "scope": "push read admin",
        "jti": "tok_" + "0" * 32,
        "exp": int(time.time()) + 600,
    }
    unsigned = jwt.encode(claims, "", algorithm="none")
    other_key = jwt.encode(claims, "not-the-server-key-" + "x" * 32, algorithm="HS256")
    unknown = jwt.encode(claims, _jwt_secret(stack), algorithm="HS256")  # signed right, never minted
    for token in (unsigned, other_key, unknown, "garbage", "a.b.c", "x" * 9000):
        status, body = call(stack, "GET", "/v1/whoami", token)
        assert status == 401, (token[:20], body)
        assert body["error"]["code"] in {"invalid_token", "missing_token"}
    assert call(stack, "GET", "/v1/whoami")[0] == 401


def test_role_and_scopes_come_from_the_token_record_not_the_claims(
    stack: Any, new_tenant: Callable[[], Tenant]
) -> None:
    """T1.2: even a holder of the JWT key cannot raise a member token to org admin by editing claims."""
    tenant = new_tenant()
    member = tenant.member("dev")
    claims = jwt.decode(member.token, options={"verify_signature": False})
    claims.update(role="org_admin", scope="push read admin")
    escalated = jwt.encode(claims, _jwt_secret(stack), algorithm="HS256")
    assert ok(stack, "GET", "/v1/whoami", escalated)["role"] == "member"
    status, body = call(stack, "POST", "/v1/tokens", escalated, json_body={"subject": "x", "kind": "user"})
    assert (status, body["error"]["code"]) == (403, "forbidden")


def test_scopes_and_roles_gate_every_route(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T1.3: service tokens push only; members cannot administer; the server admin has no org."""
    tenant = new_tenant()
    service = tenant.member("ci-bot", kind="service", register_key=False)
    assert call(stack, "GET", "/v1/sessions", service.token)[1]["error"]["code"] == "missing_scope"
    status, body = call(stack, "POST", "/v1/keys", service.token, json_body={"public_key_pem": public_pem(service.key)})
    assert (status, body["error"]["code"]) == (403, "forbidden")  # not minted with can_register_keys
    member = tenant.member("dev")
    for method, path, payload in (
        ("POST", "/v1/tokens", {"subject": "x", "kind": "user"}),
        ("POST", "/v1/projects", {"name": "p2"}),
        ("PUT", "/v1/org/settings", {"gate_default": False}),
    ):
        assert call(stack, method, path, member.token, json_body=payload)[0] == 403
    assert call(stack, "DELETE", "/v1/sessions/s-1", member.token)[0] == 403
    status, body = call(stack, "POST", "/v1/attestations", stack.admin_token, json_body={"payload": "x"})
    assert (status, body["error"]["code"]) == (403, "no_org")
    # only org admins may mint tokens with the admin scope
    status, _ = call(
        stack, "POST", "/v1/tokens", tenant.admin, json_body={"subject": "y", "kind": "service", "scopes": ["admin"]}
    )
    assert status in {400, 403}


def test_another_orgs_data_is_not_found(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T1.4: org B sees nothing of org A — not sessions, keys, projects, nor tokens (404, not 403)."""
    a, b = new_tenant(), new_tenant()
    alice = a.member("alice")
    ok(stack, "POST", "/v1/attestations", alice.token, 201, json_body=a.envelope(alice, "sess-a"))
    bob = b.member("bob")
    keyid = dsse.keyid(alice.key.public_key())
    assert call(stack, "GET", "/v1/sessions/sess-a", bob.token)[0] == 404
    assert call(stack, "GET", f"/v1/keys/{keyid}", bob.token)[0] == 404
    assert call(stack, "DELETE", f"/v1/tokens/{alice.token_id}", b.admin)[0] == 404
    assert call(stack, "DELETE", "/v1/sessions/sess-a", b.admin)[0] == 404
    assert ok(stack, "GET", "/v1/sessions", bob.token)["items"] == []
    assert ok(stack, "GET", "/v1/sessions/sess-a", alice.token)["user"] == "alice"  # untouched


def test_pushing_into_another_org_or_replaying_its_attestation_fails(
    stack: Any, new_tenant: Callable[[], Tenant]
) -> None:
    """T1.5: the org is the token's; another org's signed envelope does not verify for us."""
    a, b = new_tenant(), new_tenant()
    alice, bob = a.member("alice"), b.member("bob")
    stolen = a.envelope(alice, "sess-a")
    ok(stack, "POST", "/v1/attestations", alice.token, 201, json_body=stolen)
    status, body = call(stack, "POST", "/v1/attestations", bob.token, json_body=stolen)
    assert (status, body["error"]["code"]) == (422, "unknown_key")
    # bob signs with his own key but names org A in the predicate
    status, body = call(stack, "POST", "/v1/attestations", bob.token, json_body=b.envelope(bob, "s-b", org=a.org))
    assert (status, body["error"]["code"]) == (409, "org_mismatch")
    assert call(stack, "GET", "/v1/sessions/sess-a", bob.token)[0] == 404
    assert ok(stack, "GET", "/v1/sessions", bob.token)["items"] == []


def test_a_member_cannot_push_as_another_member(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T1.6: keys are bound to the sub that registered them; sessions to their first pusher; the
    git e-mail in the predicate is display-only."""
    tenant = new_tenant()
    alice, mallory = tenant.member("alice"), tenant.member("mallory")
    alices = tenant.envelope(alice, "sess-alice")
    # replaying alice's envelope with mallory's token: alice's key is not mallory's
    status, body = call(stack, "POST", "/v1/attestations", mallory.token, json_body=alices)
    assert (status, body["error"]["code"]) == (422, "unknown_key")
    # registering alice's public key as mallory's is refused
    ok(stack, "POST", "/v1/attestations", alice.token, 201, json_body=alices)
    status, body = call(stack, "POST", "/v1/keys", mallory.token, json_body={"public_key_pem": public_pem(alice.key)})
    assert (status, body["error"]["code"]) == (409, "key_exists")
    # mallory signs her own attestation of alice's session id: refused, alice's session unchanged
    status, body = call(
        stack, "POST", "/v1/attestations", mallory.token, json_body=tenant.envelope(mallory, "sess-alice", 2)
    )
    assert (status, body["error"]["code"]) == (409, "session_owner_mismatch")
    # claiming to be someone else in the predicate changes nothing about who pushed
    spoof = tenant.envelope(mallory, "sess-m", 3, actor_unverified="ceo@example.test")
    ok(stack, "POST", "/v1/attestations", mallory.token, 201, json_body=spoof)
    stored = ok(stack, "GET", "/v1/sessions/sess-m", tenant.admin)
    assert (stored["user"], stored["actor_unverified"]) == ("mallory", "ceo@example.test")
    assert ok(stack, "GET", "/v1/sessions/sess-alice", tenant.admin)["commits"] == 1


def test_revoking_a_token_revokes_it_and_its_keys_but_keeps_history(
    stack: Any, new_tenant: Callable[[], Tenant]
) -> None:
    """T2: a stolen token is revoked by an org admin; keys it registered stop verifying at once."""
    tenant = new_tenant()
    alice = tenant.member("alice")
    ok(stack, "POST", "/v1/attestations", alice.token, 201, json_body=tenant.envelope(alice, "before"))
    ok(stack, "DELETE", f"/v1/tokens/{alice.token_id}", tenant.admin)
    status, body = call(stack, "GET", "/v1/whoami", alice.token)
    assert (status, body["error"]["code"]) == (401, "token_revoked")
    # a thief who also holds alice's signing key and a fresh token for "alice" still cannot use that key
    fresh = ok(stack, "POST", "/v1/tokens", tenant.admin, 201, json_body={"subject": "alice", "kind": "user"})
    status, body = call(stack, "POST", "/v1/attestations", fresh["token"], json_body=tenant.envelope(alice, "after", 2))
    assert (status, body["error"]["code"]) == (422, "key_revoked")
    assert ok(stack, "GET", "/v1/sessions/before", tenant.admin)["id"] == "before"  # history stays


def test_revoked_signing_key_is_refused_and_cannot_be_re_registered(
    stack: Any, new_tenant: Callable[[], Tenant]
) -> None:
    """T3: a stolen signing key is revoked by its owner (or an admin); rotation = a new key."""
    tenant = new_tenant()
    alice = tenant.member("alice")
    keyid = dsse.keyid(alice.key.public_key())
    other = tenant.member("bob")
    assert call(stack, "DELETE", f"/v1/keys/{keyid}", other.token)[0] == 403  # not bob's key
    ok(stack, "DELETE", f"/v1/keys/{keyid}", alice.token)
    status, body = call(stack, "POST", "/v1/attestations", alice.token, json_body=tenant.envelope(alice, "s"))
    assert (status, body["error"]["code"]) == (422, "key_revoked")
    status, body = call(stack, "POST", "/v1/keys", alice.token, json_body={"public_key_pem": public_pem(alice.key)})
    assert (status, body["error"]["code"]) == (409, "key_revoked")
    # rotation: a new key works
    alice.key = dsse.generate_private_key()
    ok(stack, "POST", "/v1/keys", alice.token, 201, json_body={"public_key_pem": public_pem(alice.key)})
    ok(stack, "POST", "/v1/attestations", alice.token, 201, json_body=tenant.envelope(alice, "s"))


def test_a_signing_key_alone_is_not_enough_and_a_bad_signature_is_refused(
    stack: Any, new_tenant: Callable[[], Tenant]
) -> None:
    """T3.2: the server trusts a signature only together with the token of the key's subject; a
    tampered payload or an unregistered key never verifies."""
    tenant = new_tenant()
    alice = tenant.member("alice")
    envelope = tenant.envelope(alice, "s-1")
    assert call(stack, "POST", "/v1/attestations", None, json_body=envelope)[0] == 401
    tampered = dict(envelope, payload=sign(b'{"_type": "x"}', alice.key)["payload"])
    status, body = call(stack, "POST", "/v1/attestations", alice.token, json_body=tampered)
    assert (status, body["error"]["code"]) == (422, "bad_signature")
    stranger = dsse.generate_private_key()
    status, body = call(stack, "POST", "/v1/attestations", alice.token, json_body=sign(b"{}", stranger))
    assert (status, body["error"]["code"]) == (422, "unknown_key")
    assert call(stack, "GET", "/v1/sessions/s-1", tenant.admin)[0] == 404


def test_server_admin_token_is_long_and_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """T1.7: the admin token is compared with hmac.compare_digest, and one under 32 characters is
    never accepted (a misconfigured short secret disables it rather than making it guessable)."""
    import hmac

    from tracemark_common import auth
    from tracemark_common.errors import Unauthorized

    seen: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append(a)
        return bool(real(a, b))

    monkeypatch.setattr("tracemark_common.auth.hmac.compare_digest", spy)
    good = "adm-" + "z" * 40
    config = auth.AuthConfig(jwt_secret="j" * 48, admin_token=good, issuer="t")
    assert auth.authenticate({"Authorization": f"Bearer {good}"}, config=config).role == "server_admin"
    assert seen == [good.encode()]
    short = auth.AuthConfig(jwt_secret="j" * 48, admin_token="short-admin", issuer="t")
    with pytest.raises(Unauthorized):
        auth.authenticate({"Authorization": "Bearer short-admin"}, config=short, tokens=None)


def test_token_and_key_changes_are_audited(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T2.2: minting and revoking tokens and registering and revoking keys leave audit items in the
    org's audit partition (what an admin reviews after a theft)."""
    tenant = new_tenant()
    alice = tenant.member("alice")
    ok(stack, "DELETE", f"/v1/keys/{dsse.keyid(alice.key.public_key())}", alice.token)
    ok(stack, "DELETE", f"/v1/tokens/{alice.token_id}", tenant.admin)
    client = stack.boto3_client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(
        TableName=stack.tables["AppTable"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"ORG#{tenant.org}#AUDIT"}},
    ):
        items.extend(page["Items"])
    text = str(items)
    for action in ("token.create", "key.register", "key.revoke", "token.revoke"):
        assert action in text, action
    assert alice.token_id in text and alice.token not in text
