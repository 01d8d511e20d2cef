"""`tracemark auth login|status|logout`: the server, the token and the signing key (SPEC §2.1, §2.6)."""

from __future__ import annotations

import argparse
import os
import sys

from tracemark.errors import UserError

NAME = "auth"
HELP = "log in to a Tracemark server: store the token and register a signing key"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    login = sub.add_parser("login", help="store server + token (0600) and register this machine's signing key")
    login.add_argument("--server", required=True, help="the server's base URL (https, or http on loopback)")
    login.add_argument("--token", help="API token (default: $TRACEMARK_TOKEN, or - to read it from stdin)")
    login.add_argument(
        "--key-type", choices=("ecdsa-p256", "ed25519"), default="ecdsa-p256", help="signing key type for a new key"
    )
    login.add_argument("--new-key", action="store_true", help="make a new key pair even if one exists")
    sub.add_parser("status", help="show the stored server, token source and key id")
    sub.add_parser("logout", help="forget the stored token (the key pair stays)")


def _token(args: argparse.Namespace) -> str:
    token = args.token if args.token is not None else os.environ.get("TRACEMARK_TOKEN", "")
    if token == "-":  # noqa: S105 - "-" means: read the token from stdin
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UserError("no token given", "pass --token T (or - to read it from stdin, or set TRACEMARK_TOKEN)")
    if len(token) > 8192 or any(c.isspace() for c in token):
        raise UserError("that does not look like a token (whitespace or too long)")
    return token


def _login(args: argparse.Namespace) -> int:
    from tracemark import credentials
    from tracemark.client import ApiClient, TransportError
    from tracemark_common import dsse

    server = credentials.normalize_server(args.server)
    token = _token(args)
    key: dsse.PrivateKey | None = None
    if not args.new_key and credentials.private_key_path().is_file():
        try:
            key = dsse.load_private_key_pem(credentials.load_private_key_pem())
        except (ValueError, TypeError, dsse.DsseError):
            key = None  # unreadable or foreign: replaced below
    if key is None:
        key = dsse.generate_private_key(args.key_type)
        credentials.save_key_pair(dsse.private_key_pem(key), dsse.public_key_pem(key.public_key()))
    public_pem = dsse.public_key_pem(key.public_key())
    keyid = dsse.keyid(key.public_key())
    client = ApiClient(server, token, retries=2)
    try:
        response = client.request("POST", "/v1/keys", json_body={"public_key_pem": public_pem})
    except TransportError as exc:
        raise UserError(f"cannot reach {server}: {exc}", "check the URL and that the server is running") from exc
    if response.status in (401, 403):
        raise UserError(f"the server refused the token: {response.message}", "ask an org admin for a new token")
    if not response.ok and response.status != 409:
        raise UserError(f"registering the signing key failed: HTTP {response.status}: {response.message}")
    returned = response.body.get("keyid") if isinstance(response.body, dict) else None
    if isinstance(returned, str) and returned and returned != keyid:
        print(f"tracemark: warning: the server computed key id {returned}, expected {keyid}", file=sys.stderr)
    organization = ""
    try:
        who = client.request("GET", "/v1/whoami")
        if who.ok and isinstance(who.body, dict) and isinstance(who.body.get("org"), str):
            organization = who.body["org"]
    except TransportError:
        organization = ""
    path = credentials.save_credentials(server, token, keyid, organization)
    print(f"Logged in to {server}" + (f" (organization {organization})." if organization else "."))
    print(f"Signing key {keyid} registered ({credentials.private_key_path()}).")
    print(f"Credentials stored in {path} (mode 0600).")
    return 0


def _status() -> int:
    from tracemark import credentials

    creds = credentials.load_credentials()
    if creds is None:
        print("Not logged in. Run `tracemark auth login --server URL --token T`.")
        return 1
    print(f"server: {creds.server}")
    print(f"token:  from {'TRACEMARK_TOKEN' if creds.source == 'env' else credentials.CREDENTIALS_FILE}")
    print(f"key id: {creds.keyid or '(none registered)'}")
    print(f"org:    {creds.organization or '(unknown)'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.auth_command == "login":
        return _login(args)
    if args.auth_command == "status":
        return _status()
    from tracemark import credentials

    removed = credentials.delete_credentials()
    print("Logged out." if removed else "Not logged in.")
    return 0
