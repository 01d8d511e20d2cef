"""DSSE v1 envelopes (https://github.com/secure-systems-lab/dsse), signed with ECDSA P-256
(DER signatures over SHA-256) or Ed25519. `keyid` is the hex SHA-256 of the DER
SubjectPublicKeyInfo. Used by the CLI to sign and by the server and `tracemark verify` to verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class DsseError(ValueError):
    """The envelope is malformed, or no trusted key verifies it."""


@dataclass(frozen=True)
class Verified:
    payload: bytes
    payload_type: str
    keyid: str


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: what is actually signed."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def generate_private_key(kind: str = "ecdsa-p256") -> PrivateKey:
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise DsseError(f"unsupported key type {kind!r}; use ecdsa-p256 or ed25519")


def _check_public_key(key: object) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise DsseError("unsupported public key: only ECDSA P-256 and Ed25519 keys are accepted")


def load_public_key_pem(pem: str | bytes) -> PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise DsseError(f"not a PEM public key: {exc}") from exc
    return _check_public_key(key)


def load_private_key_pem(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise DsseError("unsupported private key: only ECDSA P-256 and Ed25519 keys are supported")


def public_key_pem(key: PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def keyid(key: PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign(payload: bytes, key: PrivateKey, payload_type: str = INTOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    message = pae(payload_type, payload)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(message)
    else:
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }


def _b64decode(value: object, what: str) -> bytes:
    """Standard or URL-safe base64 (DSSE allows both), in its canonical spelling only: the unused
    low bits of the last character must be zero and the padding present, so one byte string has
    exactly one encoding per alphabet and a changed character never decodes to the same bytes
    (envelopes are content-addressed by their JSON)."""
    if not isinstance(value, str):
        raise DsseError(f"{what} must be a base64 string")
    standard = value.replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DsseError(f"{what} is not valid base64") from exc
    if value not in (base64.b64encode(decoded).decode(), base64.urlsafe_b64encode(decoded).decode()):
        raise DsseError(f"{what} is not canonical base64 (standard or URL-safe, padded, no stray bits)")
    return decoded


def _verify_one(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def parse_envelope(envelope: object) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """Check the envelope's shape: (payloadType, payload bytes, [(keyid, signature bytes)])."""
    if not isinstance(envelope, Mapping):
        raise DsseError("a DSSE envelope must be a JSON object")
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise DsseError("payloadType is missing")
    payload = _b64decode(envelope.get("payload"), "payload")
    raw_signatures = envelope.get("signatures")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise DsseError("signatures must be a non-empty list")
    signatures: list[tuple[str, bytes]] = []
    for item in raw_signatures:
        if not isinstance(item, Mapping):
            raise DsseError("each signature must be an object")
        kid = item.get("keyid", "")
        signatures.append((kid if isinstance(kid, str) else "", _b64decode(item.get("sig"), "sig")))
    return payload_type, payload, signatures


def verify(envelope: object, trusted: Mapping[str, PublicKey]) -> Verified:
    """Verify against trusted keys (keyid -> key). Signatures with an unknown or empty keyid are
    tried against every trusted key, as the DSSE protocol allows."""
    payload_type, payload, signatures = parse_envelope(envelope)
    message = pae(payload_type, payload)
    for kid, signature in signatures:
        candidates = [(kid, trusted[kid])] if kid in trusted else list(trusted.items())
        for candidate_id, key in candidates:
            if _verify_one(key, signature, message):
                return Verified(payload=payload, payload_type=payload_type, keyid=candidate_id)
    raise DsseError("no signature verifies against a trusted key")


def envelope_digest(envelope: Mapping[str, Any]) -> str:
    """Content address of an envelope: sha256 of its canonical JSON."""
    canonical = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()
