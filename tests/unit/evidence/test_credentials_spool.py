"""Credentials (0600, XDG_CONFIG_HOME, token bound to its server) and the spool (atomic items,
tamper checks), without sockets."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from tracemark import credentials
from tracemark.errors import UserError
from tracemark.spool import Spool, SpoolItem, TamperedError
from tracemark_common import dsse


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TRACEMARK_SERVER", raising=False)
    monkeypatch.delenv("TRACEMARK_TOKEN", raising=False)
    return tmp_path / "xdg"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_stored_0600_under_xdg_config_home(config_home: Path) -> None:
    path = credentials.save_credentials("https://tm.example.com/", "tok-1", "kid")
    assert path == config_home / "tracemark" / "credentials.json"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    loaded = credentials.load_credentials()
    assert loaded is not None
    assert (loaded.server, loaded.token, loaded.keyid) == ("https://tm.example.com", "tok-1", "kid")


def test_private_key_is_0600(config_home: Path) -> None:
    key = dsse.generate_private_key()
    credentials.save_key_pair(dsse.private_key_pem(key), dsse.public_key_pem(key.public_key()))
    assert _mode(credentials.private_key_path()) == 0o600
    assert dsse.load_private_key_pem(credentials.load_private_key_pem())


def test_token_is_only_for_its_own_server() -> None:
    creds = credentials.Credentials(server="https://tm.example.com", token="t")
    assert creds.token_for("https://TM.example.com/") == "t"
    assert creds.token_for("https://tm.example.com:443") is None  # a different origin string is refused
    assert creds.token_for("https://evil.example.com") is None
    assert creds.token_for("http://tm.example.com") is None
    assert creds.token_for("not a url") is None


def test_environment_pair_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.save_credentials("https://a.example.com", "file-token", "kid")
    monkeypatch.setenv("TRACEMARK_SERVER", "https://b.example.com")
    # only one of the pair set: the stored file wins
    loaded = credentials.load_credentials()
    assert loaded is not None and loaded.token == "file-token"
    monkeypatch.setenv("TRACEMARK_TOKEN", "env-token")
    loaded = credentials.load_credentials()
    assert loaded is not None and (loaded.server, loaded.token, loaded.source) == (
        "https://b.example.com",
        "env-token",
        "env",
    )


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "https://", "http://tm.example.com", "https://user:pw@tm.example.com", "https://x/?token=1", ""],
)
def test_bad_server_urls_are_refused(url: str) -> None:
    with pytest.raises(UserError):
        credentials.normalize_server(url)


def test_http_is_allowed_on_loopback_only() -> None:
    assert credentials.normalize_server("http://127.0.0.1:8787/") == "http://127.0.0.1:8787"
    assert credentials.normalize_server("http://localhost:1") == "http://localhost:1"


def test_corrupt_credentials_file_is_a_clear_error(config_home: Path) -> None:
    (config_home / "tracemark").mkdir(parents=True)
    (config_home / "tracemark" / "credentials.json").write_text("{nope")
    with pytest.raises(UserError, match="cannot read") as caught:
        credentials.load_credentials()
    assert "auth login" in (caught.value.hint or "")


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="no signing key"):
        credentials.load_private_key_pem()


# --- spool ------------------------------------------------------------------------------------
def _item(key: dsse.PrivateKey, transcript: dict[str, object] | None = None) -> SpoolItem:
    statement = {"_type": "x", "predicate": {"project": "p", **({"transcript": transcript} if transcript else {})}}
    envelope = dsse.sign(json.dumps(statement).encode(), key)
    return SpoolItem(session_id="s1", server="https://tm.example.com", envelope=envelope)


def test_spool_round_trip_and_check(tmp_path: Path) -> None:
    key = dsse.generate_private_key()
    spool = Spool(tmp_path)
    path = spool.add(_item(key))
    assert path.parent == tmp_path / "spool" and spool.has_pending()
    item = spool.load(path)
    spool.check(item, {dsse.keyid(key.public_key()): key.public_key()})
    spool.remove(item)
    assert not spool.has_pending()


def test_spool_detects_a_changed_payload_even_with_a_new_digest(tmp_path: Path) -> None:
    key = dsse.generate_private_key()
    spool = Spool(tmp_path)
    path = spool.add(_item(key))
    raw = json.loads(path.read_text())
    raw["envelope"]["payload"] = base64.b64encode(b'{"predicate": {}}').decode()
    raw["envelope_sha256"] = dsse.envelope_digest(raw["envelope"])
    path.write_text(json.dumps(raw))
    with pytest.raises(TamperedError, match="signature"):
        spool.check(spool.load(path), {dsse.keyid(key.public_key()): key.public_key()})


def test_spool_detects_a_changed_digest(tmp_path: Path) -> None:
    key = dsse.generate_private_key()
    spool = Spool(tmp_path)
    path = spool.add(_item(key))
    raw = json.loads(path.read_text())
    raw["envelope"]["signatures"][0]["keyid"] = "other"
    path.write_text(json.dumps(raw))
    with pytest.raises(TamperedError, match="digest"):
        spool.check(spool.load(path), None)


def test_spool_transcript_must_match_the_signed_hash(tmp_path: Path) -> None:
    key = dsse.generate_private_key()
    spool = Spool(tmp_path)
    staged = spool.staging_path("s1.jsonl.gz")
    staged.write_bytes(b"abc")
    import hashlib

    item = _item(key, {"sha256": hashlib.sha256(b"abc").hexdigest(), "size": 3})
    item.transcript_file = "../../../etc/passwd"  # names never leave the spool directory
    path = spool.add(item)
    with pytest.raises(TamperedError, match="missing"):
        spool.check(spool.load(path), None)
    item.transcript_file = "s1.jsonl.gz"
    spool.add(item)
    spool.check(spool.load(path), None)
    staged.write_bytes(b"abd")
    with pytest.raises(TamperedError, match="does not match"):
        spool.check(spool.load(path), None)


@pytest.mark.parametrize("content", [b"", b"[]", b'{"format": 2}', b'{"format": 1, "envelope": {}}', b"\xff\x00"])
def test_garbage_spool_files_are_tampered(tmp_path: Path, content: bytes) -> None:
    spool = Spool(tmp_path)
    (tmp_path / "spool").mkdir()
    path = tmp_path / "spool" / "x.json"
    path.write_bytes(content)
    with pytest.raises(TamperedError):
        spool.check(spool.load(path), None)


def test_reject_moves_item_and_keeps_the_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    path = spool.add(_item(dsse.generate_private_key()))
    target = spool.reject(path, "HTTP 422: schema violation")
    assert not path.exists() and target.exists()
    assert "schema violation" in target.with_name(target.stem + ".reason.txt").read_text()
