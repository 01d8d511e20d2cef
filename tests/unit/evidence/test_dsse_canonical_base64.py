"""Regression (found by tests/fuzz/test_dsse_properties.py): a DSSE envelope whose base64 had
non-zero padding bits ("Ah==" for "Ag==") verified, so one signed attestation had many accepted
envelopes, each with its own content address."""

from __future__ import annotations

import base64

import pytest

from tracemark_common import dsse


@pytest.fixture(scope="module")
def key() -> dsse.PrivateKey:
    return dsse.generate_private_key("ed25519")


def _trusted(key: dsse.PrivateKey) -> dict[str, dsse.PublicKey]:
    return {dsse.keyid(key.public_key()): key.public_key()}


def test_stray_padding_bits_are_refused(key: dsse.PrivateKey) -> None:
    envelope = dsse.sign(b"\x02", key)
    assert envelope["payload"] == "Ag=="
    assert dsse.verify(envelope, _trusted(key)).payload == b"\x02"
    with pytest.raises(dsse.DsseError, match="canonical"):
        dsse.verify({**envelope, "payload": "Ah=="}, _trusted(key))


@pytest.mark.parametrize("spoil", [lambda s: s.rstrip("="), lambda s: s[:4] + "\n" + s[4:], lambda s: s + "=="])
def test_unpadded_wrapped_or_overpadded_base64_is_refused(key: dsse.PrivateKey, spoil: object) -> None:
    envelope = dsse.sign(b"hello world", key)
    assert callable(spoil)
    with pytest.raises(dsse.DsseError):
        dsse.verify({**envelope, "payload": spoil(envelope["payload"])}, _trusted(key))


def test_url_safe_base64_is_still_accepted(key: dsse.PrivateKey) -> None:
    payload = bytes(range(256))
    envelope = dsse.sign(payload, key)
    signature = envelope["signatures"][0]
    url_safe = {
        **envelope,
        "payload": base64.urlsafe_b64encode(payload).decode(),
        "signatures": [{**signature, "sig": base64.urlsafe_b64encode(base64.b64decode(signature["sig"])).decode()}],
    }
    assert "-" in url_safe["payload"] or "_" in url_safe["payload"]
    assert dsse.verify(url_safe, _trusted(key)).payload == payload
