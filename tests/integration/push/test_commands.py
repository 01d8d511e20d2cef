"""`tracemark auth login`, `verify`, `sessions inspect` and `push` through the real CLI entry point,
against the loopback test server where a server is needed."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from push_helpers import git
from push_server import PushServer

from tracemark import credentials
from tracemark.main import main
from tracemark_common import dsse
from tracemark_common.evidence import build_statement, sign_statement

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TRANSCRIPT = FIXTURES / "claude" / "claude_transcript_write_create_and_bash.jsonl"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TRACEMARK_SERVER", raising=False)
    monkeypatch.delenv("TRACEMARK_TOKEN", raising=False)
    return tmp_path / "xdg" / "tracemark"


def test_auth_login_registers_key_and_stores_0600(
    server: PushServer, config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the user logs in
    assert main(["auth", "login", "--server", server.url, "--token", server.state.token]) == 0
    # Then the public key is registered and everything secret is 0600
    (keyid,) = server.state.keys
    assert stat.S_IMODE((config_home / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((config_home / "signing-key.pem").stat().st_mode) == 0o600
    stored = json.loads((config_home / "credentials.json").read_text())
    assert stored == {"server": server.url, "token": server.state.token, "keyid": keyid, "organization": "acme"}
    assert keyid in capsys.readouterr().out
    # a second login reuses the same key
    assert main(["auth", "login", "--server", server.url + "/", "--token", server.state.token]) == 0
    assert list(server.state.keys) == [keyid]
    assert main(["auth", "status"]) == 0
    assert main(["auth", "logout"]) == 0
    assert main(["auth", "status"]) == 1


def test_auth_login_with_a_bad_token_stores_nothing(
    server: PushServer, config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "login", "--server", server.url, "--token", "wrong"]) == 1
    assert "refused the token" in capsys.readouterr().err
    assert not (config_home / "credentials.json").exists()


def test_auth_login_server_down(config_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["auth", "login", "--server", f"http://127.0.0.1:{port}", "--token", "t"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_auth_login_refuses_plain_http_to_a_remote_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "login", "--server", "http://tm.example.com", "--token", "t"]) == 1
    assert "plain http" in capsys.readouterr().err


def _signed(tmp_path: Path, key: dsse.PrivateKey) -> Path:
    from tracemark.evidence_builder import evidence_from_transcript
    from tracemark.transcript import parse_claude_session

    evidence = evidence_from_transcript(parse_claude_session(TRANSCRIPT))
    statement = build_statement(evidence, ["a" * 40], project="p", organization="o", cli_version="0.1.0")
    path = tmp_path / "att.json"
    path.write_text(json.dumps(sign_statement(statement, key)))
    return path


def test_verify_ok_and_tampered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = dsse.generate_private_key("ed25519")
    pub = tmp_path / "pub.pem"
    pub.write_text(dsse.public_key_pem(key.public_key()))
    path = _signed(tmp_path, key)
    assert main(["verify", str(path), "--key", str(pub)]) == 0
    assert "OK: signed by key" in capsys.readouterr().out
    envelope = json.loads(path.read_text())
    envelope["payload"] = base64.b64encode(b'{"_type": "x"}').decode()
    path.write_text(json.dumps(envelope))
    assert main(["verify", str(path), "--key", str(pub)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_verify_uses_own_key_by_default_and_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = dsse.generate_private_key()
    credentials.save_key_pair(dsse.private_key_pem(key), dsse.public_key_pem(key.public_key()))
    assert main(["verify", str(_signed(tmp_path, key))]) == 0
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00\x01")
    assert main(["verify", str(junk)]) == 1
    assert main(["verify", str(tmp_path / "missing.json")]) == 1
    assert main(["verify", str(junk), "--key", str(junk)]) == 1
    other = dsse.generate_private_key()
    assert main(["verify", str(_signed(tmp_path, other))]) == 1


def test_sessions_inspect_json_is_the_envelope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "inspect", str(TRANSCRIPT), "--json"]) == 0
    envelope = json.loads(capsys.readouterr().out)
    assert envelope["chainloop.material.evidence.id"] == "CHAINLOOP_AI_CODING_SESSION"
    assert envelope["data"]["usage"]["estimated_cost_usd"] == pytest.approx(0.646449)


def test_sessions_inspect_summary_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "inspect", str(TRANSCRIPT)]) == 0
    out = capsys.readouterr().out
    assert "claude-opus-4-6" in out and "$0.6464" in out
    assert main(["sessions", "inspect", str(tmp_path / "none.jsonl")]) == 1
    cursor = FIXTURES / "cursor" / "cursor_agent_transcript.gitai_fixture.jsonl"
    assert main(["sessions", "inspect", str(cursor)]) == 0
    assert "not reported" in capsys.readouterr().out
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert main(["sessions", "inspect", str(empty), "--json"]) == 0


def test_push_command_with_empty_spool(tmp_path: Path, server: PushServer, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    assert main(["push", "--repo", str(repo)]) == 1  # not logged in
    credentials.save_credentials(server.url, server.state.token, "")
    assert main(["push", "--repo", str(repo)]) == 0
    assert "spool is empty" in capsys.readouterr().err


def test_sessions_inspect_finds_a_session_id_under_claude_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "claude" / "projects" / "-Users-alex-repo"
    project.mkdir(parents=True)
    session = "6da7d497-00e2-460d-a6b4-d280e0314cfd"
    (project / f"{session}.jsonl").write_bytes(TRANSCRIPT.read_bytes())
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    assert main(["sessions", "inspect", session, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["session"]["id"] == session
    assert main(["sessions", "inspect", "no-such-session"]) == 1


def test_verify_accepts_a_spool_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tracemark.spool import Spool, SpoolItem

    key = dsse.generate_private_key()
    pub = tmp_path / "pub.pem"
    pub.write_text(dsse.public_key_pem(key.public_key()))
    envelope = json.loads(_signed(tmp_path, key).read_text())
    path = Spool(tmp_path / "state").add(SpoolItem(session_id="s", server="https://x.example", envelope=envelope))
    assert main(["verify", str(path), "--key", str(pub), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predicateType"] == "https://tracemark.dev/ai-coding-session/v1"
