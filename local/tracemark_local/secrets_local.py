"""Secret material for the local stack: from the environment, else from the data dir, else made
once and kept there (mode 0600). `tracemark serve` puts these into moto's Secrets Manager and
passes their ARNs as the template parameters, so handlers read secrets exactly as on AWS."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MIN_ADMIN_TOKEN_LENGTH = 32


class SecretError(ValueError):
    pass


def _read_or_make(path: Path | None, make: str) -> str:
    if path is not None and path.exists():
        return path.read_text().strip()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make + "\n")
    return make


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def local_secrets(data_dir: Path | None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Template parameter name -> secret value."""
    env = os.environ if env is None else env
    folder = data_dir / "secrets" if data_dir is not None else None

    def at(name: str) -> Path | None:
        return folder / name if folder is not None else None

    admin = env.get("TRACEMARK_ADMIN_TOKEN") or _read_or_make(at("admin-token"), secrets.token_urlsafe(32))
    if len(admin) < MIN_ADMIN_TOKEN_LENGTH:
        raise SecretError(f"TRACEMARK_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LENGTH} characters")
    private_key = env.get("TRACEMARK_GITHUB_PRIVATE_KEY", "")
    if private_key and "-----BEGIN" not in private_key:
        key_path = Path(private_key).expanduser()
        if not key_path.is_file():
            raise SecretError(f"TRACEMARK_GITHUB_PRIVATE_KEY: {key_path} is neither a PEM key nor a readable file")
        private_key = key_path.read_text()
    if not private_key:
        private_key = _read_or_make(at("github-app-key.pem"), _rsa_pem())
    return {
        "AdminTokenSecretArn": admin,
        "JwtSigningKeySecretArn": _read_or_make(at("jwt-signing-key"), secrets.token_urlsafe(48)),
        "GitHubWebhookSecretArn": env.get("TRACEMARK_GITHUB_WEBHOOK_SECRET")
        or _read_or_make(at("github-webhook-secret"), secrets.token_urlsafe(32)),
        "GitHubPrivateKeySecretArn": private_key,
    }
