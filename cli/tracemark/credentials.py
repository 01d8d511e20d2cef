"""Where the CLI keeps its server, token and signing key (SPEC §2.1, §2.6, §4).

`tracemark auth login --server URL --token T` stores `credentials.json` (mode 0600) and an ECDSA
P-256 (or Ed25519) key pair under `$XDG_CONFIG_HOME/tracemark/` (default `~/.config/tracemark/`,
directory 0700, private key 0600). `TRACEMARK_SERVER` with `TRACEMARK_TOKEN` override the stored
pair (for CI). A token is only ever sent to the server it was stored with: `token_for(url)`
returns None for any other origin.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tracemark.capture.state import atomic_write
from tracemark.errors import UserError

CREDENTIALS_FILE = "credentials.json"
PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub.pem"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "tracemark"


def normalize_server(url: str) -> str:
    """`scheme://host[:port]` plus path without a trailing slash; https required except on
    loopback (the local stack). Raises UserError for anything else."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UserError(f"not a server URL: {url!r}", "use e.g. https://tracemark.example.com")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UserError(
            "the server URL must not carry credentials, a query or a fragment", "pass the token with --token"
        )
    host = parts.hostname.lower()
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise UserError(f"refusing to send a token over plain http to {host}", "use an https:// URL")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def same_server(a: str, b: str) -> bool:
    try:
        return normalize_server(a) == normalize_server(b)
    except UserError:
        return False


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str
    keyid: str = ""
    source: str = "file"  # file | env
    organization: str = ""  # the token's organisation, as the server said at login

    def token_for(self, server: str) -> str | None:
        """The token, only for the server it belongs to."""
        return self.token if same_server(server, self.server) else None


def _write_private(path: Path, data: bytes) -> None:
    """Atomic write with mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, data, 0o600, durable=True)


def save_credentials(server: str, token: str, keyid: str, organization: str = "") -> Path:
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        directory.chmod(0o700)
    path = directory / CREDENTIALS_FILE
    body = {"server": normalize_server(server), "token": token, "keyid": keyid}
    if organization:
        body["organization"] = organization
    _write_private(path, (json.dumps(body, indent=2) + "\n").encode())
    return path


def load_credentials(env: dict[str, str] | None = None) -> Credentials | None:
    """Environment pair first (both must be set), then the stored file; None when neither."""
    source = os.environ if env is None else env
    server, token = source.get("TRACEMARK_SERVER", ""), source.get("TRACEMARK_TOKEN", "")
    stored = _load_file()
    if server and token:
        keyid = stored.keyid if stored and same_server(stored.server, server) else ""
        return Credentials(server=normalize_server(server), token=token, keyid=keyid, source="env")
    # the stored organisation belongs to the stored token only
    return stored


def _load_file() -> Credentials | None:
    path = config_dir() / CREDENTIALS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}", "run `tracemark auth login` again") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("server"), str) or not isinstance(raw.get("token"), str):
        raise UserError(f"{path} is not a tracemark credentials file", "run `tracemark auth login` again")
    keyid = raw.get("keyid") if isinstance(raw.get("keyid"), str) else ""
    organization = raw.get("organization") if isinstance(raw.get("organization"), str) else ""
    return Credentials(server=raw["server"], token=raw["token"], keyid=str(keyid), organization=str(organization))


def delete_credentials() -> bool:
    path = config_dir() / CREDENTIALS_FILE
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def private_key_path() -> Path:
    return config_dir() / PRIVATE_KEY_FILE


def public_key_path() -> Path:
    return config_dir() / PUBLIC_KEY_FILE


def save_key_pair(private_pem: bytes, public_pem: str) -> None:
    _write_private(private_key_path(), private_pem)
    _write_private(public_key_path(), public_pem.encode())
    with contextlib.suppress(OSError):
        public_key_path().chmod(0o644)


def load_private_key_pem() -> bytes:
    path = private_key_path()
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UserError("no signing key", "run `tracemark auth login --server URL --token T` first") from exc
    except OSError as exc:
        raise UserError(f"cannot read the signing key {path}: {exc.strerror}") from exc
