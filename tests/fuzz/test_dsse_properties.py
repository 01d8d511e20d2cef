"""Property tests of DSSE v1 (tracemark_common.dsse, used by the CLI to sign and by the server and
`tracemark verify` to verify): PAE as the DSSE spec defines it, sign -> verify round trips for both
key types (and for statements signed the way the CLI signs them), and tamper evidence: any
single-byte change of the payload, the signature or the payloadType fails verification, and so
does any change of a character of the envelope's base64 fields."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fuzzkit import fuzz
from hypothesis import given
from hypothesis import strategies as st

from tracemark_common import dsse
from tracemark_common.evidence.statement import sign_statement, statement_bytes

KEYS: dict[str, dsse.PrivateKey] = {kind: dsse.generate_private_key(kind) for kind in ("ecdsa-p256", "ed25519")}
TRUSTED = {dsse.keyid(k.public_key()): k.public_key() for k in KEYS.values()}
key_kinds = st.sampled_from(sorted(KEYS))
payload_types = st.one_of(st.just(dsse.INTOTO_PAYLOAD_TYPE), st.text(min_size=1, max_size=40))
payloads = st.binary(max_size=2048)
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def test_pae_matches_the_dsse_spec_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md (test vector)
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@given(payload_types, payloads)
@fuzz(300)
def test_pae_is_the_spec_encoding(payload_type: str, payload: bytes) -> None:
    type_bytes = payload_type.encode("utf-8")
    expected = b" ".join([b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload])
    assert dsse.pae(payload_type, payload) == expected


@given(key_kinds, payload_types, payloads)
@fuzz(100)
def test_sign_then_verify(kind: str, payload_type: str, payload: bytes) -> None:
    envelope = dsse.sign(payload, KEYS[kind], payload_type)
    # the envelope survives JSON, as it travels
    verified = dsse.verify(json.loads(json.dumps(envelope)), TRUSTED)
    assert verified.payload == payload
    assert verified.payload_type == payload_type
    assert verified.keyid == dsse.keyid(KEYS[kind].public_key())
    assert base64.b64decode(envelope["payload"]) == payload


@given(key_kinds, st.dictionaries(st.text(max_size=10), json_values, max_size=6))
@fuzz(50)
def test_statements_signed_like_the_cli_verify(kind: str, statement: dict[str, Any]) -> None:
    envelope = sign_statement(statement, KEYS[kind])
    verified = dsse.verify(envelope, TRUSTED)
    assert verified.payload_type == dsse.INTOTO_PAYLOAD_TYPE
    assert json.loads(verified.payload) == json.loads(statement_bytes(statement))


def _flip(data: bytes, index: int, delta: int) -> bytes:
    position = index % len(data)
    return data[:position] + bytes([(data[position] + delta) % 256]) + data[position + 1 :]


def _refused(envelope: dict[str, Any]) -> bool:
    try:
        dsse.verify(envelope, TRUSTED)
    except dsse.DsseError:
        return True
    return False


@given(key_kinds, payloads.filter(bool), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
@fuzz(150)
def test_any_byte_of_the_payload_changed_fails(kind: str, payload: bytes, index: int, delta: int) -> None:
    envelope = dsse.sign(payload, KEYS[kind])
    envelope["payload"] = base64.b64encode(_flip(payload, index, delta)).decode()
    assert _refused(envelope)


@given(key_kinds, payloads, st.integers(min_value=0), st.integers(min_value=1, max_value=255))
@fuzz(150)
def test_any_byte_of_the_signature_changed_fails(kind: str, payload: bytes, index: int, delta: int) -> None:
    envelope = dsse.sign(payload, KEYS[kind])
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    envelope["signatures"][0]["sig"] = base64.b64encode(_flip(signature, index, delta)).decode()
    assert _refused(envelope)


@given(key_kinds, payloads, st.integers(min_value=0), st.integers(min_value=1, max_value=127))
@fuzz(150)
def test_any_byte_of_the_payload_type_changed_fails(kind: str, payload: bytes, index: int, delta: int) -> None:
    envelope = dsse.sign(payload, KEYS[kind])
    mutated = _flip(envelope["payloadType"].encode(), index, delta)
    envelope["payloadType"] = mutated.decode("utf-8", "replace")
    assert _refused(envelope)


@given(
    key_kinds,
    payloads,
    st.sampled_from(["payload", "sig"]),
    st.integers(min_value=0),
    st.sampled_from(B64_ALPHABET + " \n.!é"),
)
@fuzz(300)
def test_any_character_of_the_base64_fields_changed_fails(
    kind: str, payload: bytes, field: str, index: int, replacement: str
) -> None:
    """The envelope is content-addressed (its digest identifies an attestation), so one signed
    content must have one accepted encoding: a changed character either changes the bytes (and
    the signature fails) or is refused as a non-canonical encoding."""
    envelope = dsse.sign(payload, KEYS[kind])
    holder = envelope if field == "payload" else envelope["signatures"][0]
    text: str = holder[field]
    if not text:
        return
    position = index % len(text)
    if text[position] == replacement:
        return
    mutated = text[:position] + replacement + text[position + 1 :]
    holder[field] = mutated
    if replacement in "-_" and mutated == base64.urlsafe_b64encode(base64.b64decode(text)).decode():
        return  # the URL-safe spelling of the same bytes, which DSSE allows
    assert _refused(envelope), (field, text, mutated)


@given(json_values)
@fuzz(300)
def test_verify_refuses_anything_with_a_dsse_error(value: object) -> None:
    with pytest.raises(dsse.DsseError):
        dsse.verify(value, TRUSTED)


@given(
    st.fixed_dictionaries(
        {
            "payloadType": st.one_of(st.text(max_size=10), st.integers(), st.none()),
            "payload": st.one_of(st.text(B64_ALPHABET, max_size=40), st.text(max_size=10), st.integers()),
            "signatures": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "keyid": st.one_of(st.text(max_size=10), st.integers()),
                            "sig": st.text(B64_ALPHABET, max_size=90),
                        }
                    ),
                    max_size=3,
                ),
                json_values,
            ),
        }
    )
)
@fuzz(300)
def test_verify_refuses_envelope_shaped_garbage_with_a_dsse_error(envelope: dict[str, Any]) -> None:
    with pytest.raises(dsse.DsseError):
        dsse.verify(envelope, TRUSTED)
