"""Transcript privacy (docs/security.md §T4): what leaves the laptop is redacted by the real
redaction on realistic secrets; the raw transcript is never in the signed payload; on the server,
raw transcript data is readable only by its pusher and org admins. The secret-looking strings are
synthetic and built by concatenation so secret scanners do not flag this file."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attest_builders import commit_entry, evidence, sign, statement
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Tenant, call, ok
from tracemark.evidence_builder import evidence_from_transcript
from tracemark.push import write_redacted_transcript
from tracemark.redact import Redaction, redact_text
from tracemark.transcript import parse_claude_session

SESSION = "5ec0e1d2-aaaa-4bbb-8ccc-0123456789ab"


def _synthetic_secrets() -> dict[str, str]:
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    return {
        "aws-access-key-id": "AKIA" + "Q7ZTESTSYNTHETIC",
        "aws-secret-access-key": "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCYSYNTHETIC1",
        "github-token": "ghp_" + "R4nd0mSynth3t1cT0k3nF0rT3st1ng012345",
        "github-pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzSYNTHETIC0123456789abcdefghij",
        "jwt": "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiJzeW50aGV0aWMifQ" + ".c2lnbmF0dXJlLXN5bnRoZXRpYy1ub3QtcmVhbA",
        "private-key": rsa_pem,
        "db-password": "S3cr3t-" + "Synth3tic-Passw0rd!",
        "url-password": "hunter" + "2-synthetic-99",
        "stripe": "sk_live_" + "51SynTheTicKeyNotReal0123456789",
    }


def _line(record: dict[str, Any]) -> str:
    base = {"sessionId": SESSION, "cwd": "/home/dev/acme", "version": "2.1.33", "timestamp": "2026-11-20T10:00:00Z"}
    return json.dumps({**base, **record})


def _transcript(path: Path, s: dict[str, str]) -> Path:
    env_file = (
        f"AWS_ACCESS_KEY_ID={s['aws-access-key-id']}\n"
        f"AWS_SECRET_ACCESS_KEY={s['aws-secret-access-key']}\n"
        f'DATABASE_PASSWORD="{s["db-password"]}"\n'
        f"STRIPE_KEY={s['stripe']}\n"
    )
    lines = [
        _line(
            {
                "type": "user",
                "uuid": "u1",
                "message": {
                    "role": "user",
                    "content": (f"deploy with token {s['github-token']} and this key:\n{s['private-key']}"),
                },
            }
        ),
        _line(
            {
                "type": "assistant",
                "uuid": "a1",
                "message": {
                    "id": "msg_1",
                    "model": "claude-opus-4-6",
                    "role": "assistant",
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "Bash",
                            "input": {
                                "command": f"curl -H 'Authorization: Bearer {s['jwt']}' "
                                f"https://deploy:{s['url-password']}@git.example.test/repo.git"
                                f" && GH_TOKEN={s['github-pat']} gh pr list"
                            },
                        }
                    ],
                },
            }
        ),
        _line(
            {
                "type": "user",
                "uuid": "u2",
                "message": {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "cat .env\n" + env_file}],
                },
            }
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def secrets_and_transcript(tmp_path: Path) -> tuple[dict[str, str], Path]:
    s = _synthetic_secrets()
    return s, _transcript(tmp_path / f"{SESSION}.jsonl", s)


def _leaks(text: str, s: dict[str, str]) -> list[str]:
    found = [name for name, value in s.items() if name != "private-key" and value in text]
    if "private-key" in s:
        body = s["private-key"].splitlines()[3]  # a line from the middle of the key block
        if body in text or body in text.replace("\\n", "\n"):
            found.append("private-key")
    return found


def test_redaction_rules_catch_realistic_secrets(secrets_and_transcript: tuple[dict[str, str], Path]) -> None:
    """T4.1: each kind of secret, alone in a line of prose, becomes `[REDACTED:<rule>]`."""
    s, _ = secrets_and_transcript
    lines = {
        "aws-access-key-id": f"the key id is {s['aws-access-key-id']}",
        "aws-secret-access-key": f"aws_secret_access_key = {s['aws-secret-access-key']}",
        "github-token": f"export GH={s['github-token']}",
        "github-pat": f"token {s['github-pat']}",
        "jwt": f"Authorization: Bearer {s['jwt']}",
        "private-key": s["private-key"],
        "db-password": f'password = "{s["db-password"]}"',
        "url-password": f"git clone https://deploy:{s['url-password']}@git.example.test/r.git",
        "stripe": f"STRIPE={s['stripe']}",
    }
    for name, text in lines.items():
        redacted, found = redact_text(text)
        assert _leaks(redacted, {name: s[name]}) == [], (name, redacted)
        assert "[REDACTED:" in redacted and found.total >= 1, name
    # false-positive guards: digests, shas, uuids and references stay
    keep = f"commit {'a' * 40} sha256:{'b' * 64} id {SESSION} token=$GITHUB_TOKEN"
    assert redact_text(keep) == (keep, Redaction())


def test_what_leaves_the_laptop_is_redacted(
    secrets_and_transcript: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """T4.2: the uploaded transcript (gzip) and the signed evidence carry no secret, stay valid JSON,
    count what was redacted, and the evidence never embeds the raw transcript."""
    s, path = secrets_and_transcript
    redaction = Redaction()
    target = tmp_path / "upload.jsonl.gz"
    sha, size = write_redacted_transcript([path], target, redaction)
    uploaded = gzip.decompress(target.read_bytes()).decode()
    assert _leaks(uploaded, s) == []
    assert all(json.loads(line) for line in uploaded.splitlines())  # still JSONL
    assert "[REDACTED:" in uploaded and redaction.total >= len(s) - 1
    assert size == target.stat().st_size and len(sha) == 64

    summary = parse_claude_session(path)
    envelope = evidence_from_transcript(summary, session_id=SESSION, redaction=redaction)
    signed_text = json.dumps(envelope)
    assert _leaks(signed_text, s) == []
    assert "raw_session" not in envelope["data"]
    assert envelope["tracemark"]["redaction"]["total"] == redaction.total
    commands = envelope["data"]["tools_used"]["tracemark_shell_commands"]
    assert commands and "[REDACTED:" in commands[0]["command"]


def test_raw_transcript_data_is_readable_only_by_its_pusher_and_admins(
    stack: Any, new_tenant: Callable[[], Tenant]
) -> None:
    """T4.3: `data.raw_session` (when a client sends it) is stripped for other members; the
    transcript binding is checked by sha256 and size, and transcripts are per organisation."""
    tenant = new_tenant()
    alice, bob = tenant.member("alice"), tenant.member("bob")
    ev = evidence("priv-1", commits=[commit_entry(1)])
    assert ev["data"].get("raw_session")  # the fixture carries raw lines
    ok(stack, "POST", "/v1/attestations", alice.token, 201, json_body=sign(statement(ev, org=tenant.org), alice.key))
    assert "raw_session" in ok(stack, "GET", "/v1/sessions/priv-1", alice.token)["evidence"]["data"]
    assert "raw_session" in ok(stack, "GET", "/v1/sessions/priv-1", tenant.admin)["evidence"]["data"]
    assert "raw_session" not in ok(stack, "GET", "/v1/sessions/priv-1", bob.token)["evidence"]["data"]
    # a transcript whose bytes do not match the signed sha256/size is refused, nothing stored
    upload = ok(stack, "POST", "/v1/uploads", alice.token, 201, json_body={"kind": "transcript", "sha256": "ab" * 32})
    assert upload["upload_id"] == "tr_" + "ab" * 32
    from tracemark_common.ingest import transcript_upload_key
    from tracemark_common.store import default_blobs

    default_blobs().put(transcript_upload_key(tenant.org, "ab" * 32), b"not the transcript", "application/gzip")
    stmt = statement(
        evidence("priv-2", commits=[commit_entry(2)]), org=tenant.org, transcript={"sha256": "ab" * 32, "size": 18}
    )
    status, body = call(stack, "POST", "/v1/attestations", alice.token, json_body=sign(stmt, alice.key))
    assert (status, body["error"]["code"]) == (422, "transcript_mismatch")
    assert call(stack, "GET", "/v1/sessions/priv-2", alice.token)[0] == 404
