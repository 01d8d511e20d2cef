"""Evidence envelope (validated with jsonschema against the real 0.1 schema), code_changes totals,
the in-toto statement, and its DSSE envelope checked by a from-the-spec verifier written here."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from evidence_fixtures import CLAUDE, FIXTURES, TRANSCRIPTS

from tracemark.evidence_builder import (
    CommitFacts,
    FileLines,
    compute_code_changes,
    evidence_from_transcript,
    git_context,
    merge_ranges,
)
from tracemark.transcript import parse_claude_session, parse_cursor_session
from tracemark_common import dsse
from tracemark_common.evidence import (
    PREDICATE_TYPE,
    EvidenceError,
    build_statement,
    check_statement,
    sign_statement,
    validate_envelope,
    verify_attestation,
)

SCHEMA = json.loads((FIXTURES / "chainloop" / "ai-coding-session-0.1.schema.json").read_text())
SHA1 = "a" * 40
SHA2 = "b" * 40


def _schema_errors(data: dict[str, Any]) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(data)]


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_each_real_transcript_yields_schema_valid_evidence(name: str, expected: dict[str, Any]) -> None:
    envelope = evidence_from_transcript(parse_claude_session(CLAUDE / name))
    assert envelope["chainloop.material.evidence.id"] == "CHAINLOOP_AI_CODING_SESSION"
    assert envelope["schema"] == SCHEMA["$id"]
    assert _schema_errors(envelope["data"]) == []
    usage = envelope["data"]["usage"]
    want = expected[name]["usage_dedup_last_record_per_message_id"]
    assert usage["main_thread"]["output_tokens"] == want["output_tokens"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["pricing_version"]
    assert sum(m["output_tokens"] for m in usage["by_model"].values()) == usage["output_tokens"]
    assert envelope["data"]["schema_version"] == "v1"


def test_chainloop_examples_validate_with_our_validator() -> None:
    for name in ("ai-coding-session.json", "ai-coding-session-minimal.json", "ai-coding-session-with-attribution.json"):
        validate_envelope(json.loads((FIXTURES / "chainloop" / name).read_text()))


def test_invalid_evidence_lists_problems() -> None:
    with pytest.raises(EvidenceError) as caught:
        validate_envelope({"chainloop.material.evidence.id": "X", "schema": "y", "data": {"agent": {}, "extra": 1}})
    text = " ".join(caught.value.problems)
    assert "evidence.id" in text and "schema must be" in text and "session" in text and "extra" in text
    with pytest.raises(EvidenceError):
        validate_envelope([1, 2])


def test_cursor_evidence_is_valid_without_usage() -> None:
    summary = parse_cursor_session(FIXTURES / "cursor" / "cursor_agent_transcript.gitai_fixture.jsonl", session_id="c1")
    envelope = evidence_from_transcript(summary, fallback_started_at="2026-03-01T10:00:00.000Z")
    assert _schema_errors(envelope["data"]) == []
    assert envelope["data"]["usage"]["available"] is False
    assert envelope["data"]["usage"]["estimated_cost_usd"] is None


def test_secrets_in_shell_commands_are_redacted_and_counted(tmp_path: Path) -> None:
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    use = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": f"GITHUB_TOKEN={secret} gh pr list"}}
    record = {
        "type": "assistant",
        "sessionId": "s",
        "timestamp": "2026-01-01T00:00:00Z",
        "message": {"id": "m", "model": "claude-opus-4-6", "content": [use], "usage": {"output_tokens": 1}},
    }
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(record) + "\n")
    envelope = evidence_from_transcript(parse_claude_session(path))
    assert envelope["data"]["tools_used"]["tracemark_shell_commands"] == [
        {
            "command": "GITHUB_TOKEN=[REDACTED:github-token] gh pr list",
            "tool": "Bash",
            "exit_code": None,
            "after_last_edit": None,
        }
    ]
    assert envelope["tracemark"]["redaction"]["rules"] == {"github-token": 1}
    assert secret not in json.dumps(envelope)


def _file(
    path: str, added: int, removed: int = 0, status: str = "modified", **ranges: list[tuple[int, int]]
) -> FileLines:
    return FileLines(path=path, status=status, lines_added=added, lines_removed=removed, ai_ranges=dict(ranges))


def test_code_changes_totals_add_up() -> None:
    # Given two commits of session s1, one file shared with session s2 and one human file
    commits = [
        CommitFacts(
            sha=SHA1,
            timestamp="1",
            files=[
                _file("a.py", 10, 2, "created", s1=[(1, 6)]),
                _file("b.py", 5, 1, s1=[(1, 2)], s2=[(3, 4)]),
                _file("README.md", 3, 0),
            ],
        ),
        CommitFacts(sha=SHA2, timestamp="2", files=[_file("a.py", 4, 1, s1=[(8, 9), (9, 10)])]),
    ]
    changes = compute_code_changes("s1", commits)
    # Then ai + human + other = totals, for added and for removed
    assert changes.lines_added == 22 and changes.lines_removed == 4
    assert changes.ai_lines_added + changes.human_lines_added + changes.tracemark_other_ai_lines_added == 22
    assert changes.ai_lines_removed + changes.human_lines_removed + changes.tracemark_other_ai_lines_removed == 4
    files = {f.path: f for f in changes.files}
    assert files["a.py"].attribution == "ai" and files["a.py"].tracemark_attribution == "mixed"
    assert files["a.py"].tracemark_ai_lines_added == 6 + 3
    assert [(r.start, r.end) for r in files["a.py"].line_ranges or []] == [(1, 6), (8, 10)]
    assert files["b.py"].tracemark_other_ai_lines_added == 2
    assert files["README.md"].attribution == "human" and files["README.md"].session_ids is None
    assert changes.files_created == 1 and changes.files_modified == 2


def test_ranges_never_exceed_git_counts() -> None:
    changes = compute_code_changes("s1", [CommitFacts(sha=SHA1, files=[_file("x", 2, 0, s1=[(1, 50)], s2=[(1, 50)])])])
    assert changes.ai_lines_added == 2 and changes.human_lines_added == 0
    assert changes.tracemark_other_ai_lines_added == 0


def test_merge_ranges() -> None:
    assert merge_ranges([(5, 6), (1, 2), (3, 3), (10, 9), (0, 1)]) == [(1, 3), (5, 6)]


def test_git_context_strips_credentials_and_lists_commits() -> None:
    commits = [
        CommitFacts(
            sha=SHA2,
            subject="second",
            timestamp="2",
            signature="G",
            rewritten_from=["c" * 40],
            files=[_file("a", 1, s1=[(1, 1)])],
        ),
        CommitFacts(sha=SHA1, subject="first", timestamp="1"),
    ]
    context = git_context(
        summary=None,
        commits=commits,
        repository="https://bob:tok@github.com/o/r.git",
        branch="main",
        remotes={"origin": "https://bob:tok@github.com/o/r.git"},
        session_id="s1",
    )
    assert context["repository"] == "https://github.com/o/r.git"
    assert "tok" not in json.dumps(context)
    assert context["commit_start"] == SHA1 and context["commit_end"] == SHA2
    assert context["commits"] == [f"{SHA1} first", f"{SHA2} second"]
    tm = context["tracemark_commits"][1]
    assert (
        tm["signature"] == "G"
        and tm["rewritten_from"] == ["c" * 40]
        and tm["line_ranges"] == {"a": [{"start": 1, "end": 1}]}
    )
    # per-commit counts, so the server counts each commit's lines once
    assert (tm["lines_added"], tm["ai_lines_added"], tm["other_ai_lines_added"]) == (1, 1, 0)
    assert context["tracemark_commits"][0]["lines_added"] == 0


# --- statement + DSSE -----------------------------------------------------------------------
def _pae_from_spec(payload_type: str, payload: bytes) -> bytes:
    # DSSE v1: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimals
    t = payload_type.encode("utf-8")
    return b" ".join([b"DSSEv1", str(len(t)).encode(), t, str(len(payload)).encode(), payload])


def _statement() -> dict[str, Any]:
    envelope = evidence_from_transcript(parse_claude_session(CLAUDE / TRANSCRIPTS[0]))
    from tracemark_common.evidence import TranscriptRef

    return build_statement(
        envelope,
        [SHA1, SHA2, SHA1],
        project="p",
        organization="acme",
        cli_version="0.1.0",
        transcript=TranscriptRef(sha256="0" * 64, size=10),
    )


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ed25519"])
def test_dsse_envelope_verifies_independently(kind: str) -> None:
    key = dsse.generate_private_key(kind)
    statement = _statement()
    envelope = sign_statement(statement, key)
    # an independent check from the DSSE spec, using only base64/hashlib/cryptography
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"], validate=True)
    (signature,) = envelope["signatures"]
    public = key.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert signature["keyid"] == hashlib.sha256(der).hexdigest()
    message = _pae_from_spec(envelope["payloadType"], payload)
    sig = base64.b64decode(signature["sig"], validate=True)
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(sig, message)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(sig, message, ec.ECDSA(hashes.SHA256()))  # DER-encoded ECDSA signature
    decoded = json.loads(payload)
    assert decoded["_type"] == "https://in-toto.io/Statement/v1"
    assert decoded["predicateType"] == PREDICATE_TYPE
    assert decoded["subject"] == [
        {"name": SHA1, "digest": {"gitCommit": SHA1}},
        {"name": SHA2, "digest": {"gitCommit": SHA2}},
    ]
    assert set(decoded["predicate"]) == {"evidence", "project", "organization", "cli_version", "transcript"}
    # and our own verifier agrees
    verified = verify_attestation(envelope, {dsse.keyid(public): public})
    assert verified.statement == decoded


def test_tampered_payload_fails_verification() -> None:
    key = dsse.generate_private_key()
    envelope = sign_statement(_statement(), key)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["project"] = "other"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(dsse.DsseError):
        verify_attestation(envelope, {dsse.keyid(key.public_key()): key.public_key()})


def test_wrong_key_fails_verification() -> None:
    envelope = sign_statement(_statement(), dsse.generate_private_key())
    other = dsse.generate_private_key().public_key()
    with pytest.raises(dsse.DsseError):
        verify_attestation(envelope, {dsse.keyid(other): other})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update({"_type": "x"}),
        lambda s: s.update({"predicateType": "chainloop.dev/attestation/v0.2"}),
        lambda s: s.update({"subject": []}),
        lambda s: s["subject"][0].update({"name": "other"}),
        lambda s: s["predicate"].update({"transcript": {"sha256": "nothex", "size": 1}}),
        lambda s: s["predicate"]["evidence"]["data"].update({"extra": 1}),
        lambda s: s["predicate"].pop("project"),
    ],
)
def test_statement_checks(mutate: Any) -> None:
    statement = _statement()
    mutate(statement)
    with pytest.raises(EvidenceError):
        check_statement(statement)


def test_build_statement_rejects_bad_commits() -> None:
    with pytest.raises(EvidenceError):
        build_statement({}, [], project="p", organization=None, cli_version="1")
    with pytest.raises(EvidenceError):
        build_statement({}, ["HEAD"], project="p", organization=None, cli_version="1")
