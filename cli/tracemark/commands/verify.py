"""`tracemark verify FILE [--key PUB]`: check an attestation offline (DSSE signature + statement)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tracemark.errors import UserError

NAME = "verify"
HELP = "verify a signed attestation (DSSE envelope) offline: signature, statement and evidence"
MAX_FILE_BYTES = 64 * 1024 * 1024


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a DSSE envelope (JSON), or a spool item holding one")
    parser.add_argument("--key", type=Path, help="public key PEM (default: your own signing key)")
    parser.add_argument("--json", action="store_true", help="print the verified statement as JSON")


def _load(path: Path) -> object:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        data = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise UserError(f"no such file: {path}") from exc
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a JSON file: {exc}") from exc
    if isinstance(data, dict) and "envelope" in data and "payloadType" not in data:
        return data["envelope"]  # a spool item
    return data


def run(args: argparse.Namespace) -> int:
    from tracemark import credentials
    from tracemark_common import dsse
    from tracemark_common.evidence import EvidenceError, verify_attestation

    key_path: Path = args.key or credentials.public_key_path()
    try:
        public = dsse.load_public_key_pem(key_path.read_bytes())
    except FileNotFoundError as exc:
        raise UserError(f"no public key at {key_path}", "pass --key PUB.pem") from exc
    except dsse.DsseError as exc:
        raise UserError(f"{key_path}: {exc}") from exc
    envelope = _load(args.file)
    try:
        verified = verify_attestation(envelope, {dsse.keyid(public): public})
    except (dsse.DsseError, EvidenceError) as exc:
        print(f"INVALID: {exc}")
        return 1
    statement = verified.statement
    if args.json:
        print(json.dumps(statement, indent=2))
        return 0
    predicate = statement["predicate"]
    data = predicate["evidence"]["data"]
    print(f"OK: signed by key {verified.keyid}")
    print(f"  session:  {data['session']['id']} ({data['agent']['name']} {data['agent'].get('version', '')})".rstrip())
    print(f"  project:  {predicate['project']}  organization: {predicate.get('organization') or '-'}")
    print(f"  commits:  {', '.join(s['name'][:12] for s in statement['subject'])}")
    transcript = predicate.get("transcript")
    if transcript:
        print(f"  transcript: sha256 {transcript['sha256']} ({transcript['size']} bytes)")
    return 0
