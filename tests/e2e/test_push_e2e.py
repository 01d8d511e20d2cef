"""`git push` end to end: `tracemark init`, `tracemark auth login`, Claude Code hooks fed real
payloads, a commit through our commit-msg hook, then a real `git push` to a bare remote whose
pre-push hook attests the session to a real HTTP server on 127.0.0.1 (subprocesses throughout)."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helper in (TESTS / "integration" / "capture", TESTS / "integration" / "push"):
    if str(helper) not in sys.path:
        sys.path.insert(0, str(helper))

from capture_workspace import Workspace, make_repo  # noqa: E402
from push_server import PushServer  # noqa: E402

TRANSCRIPT = TESTS / "fixtures" / "claude" / "claude_transcript_write_create_and_bash.jsonl"
SESSION = "6da7d497-00e2-460d-a6b4-d280e0314cfd"

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[PushServer]:
    srv = PushServer().start()
    try:
        yield srv
    finally:
        srv.close()


def _ai_write(ws: Workspace, transcript: Path, path: str, content: str) -> None:
    full = ws.root / path
    tool_use_id = ws.tool_id()
    common = {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(ws.root)}
    tool_input = {"file_path": str(full), "content": content}
    ws.hook(
        "claude",
        "PreToolUse",
        {
            **common,
            "hook_event_name": "PreToolUse",
            "tool_name": "Write",
            "tool_input": tool_input,
            "tool_use_id": tool_use_id,
        },
    )
    full.write_text(content)
    ws.hook(
        "claude",
        "PostToolUse",
        {
            **common,
            "hook_event_name": "PostToolUse",
            "tool_name": "Write",
            "tool_input": tool_input,
            "tool_use_id": tool_use_id,
            "tool_response": {"filePath": str(full)},
        },
    )


def _setup(tmp_path: Path, server: PushServer) -> tuple[Workspace, Path]:
    ws = make_repo(tmp_path)
    init = ws.tracemark("init", "--project", "demo", "--org", "acme", "--offline")
    assert init.returncode == 0, init.stderr
    ws.git("add", "-A")
    ws.git("commit", "-q", "-m", "tracemark init")
    login = ws.tracemark("auth", "login", "--server", server.url, "--token", server.state.token)
    assert login.returncode == 0, login.stderr
    remote = tmp_path / "remote.git"
    ws.git("init", "-q", "--bare", str(remote))
    ws.git("remote", "add", "origin", str(remote))
    transcript = tmp_path / "claude" / f"{SESSION}.jsonl"
    transcript.parent.mkdir()
    shutil.copy(TRANSCRIPT, transcript)
    ws.hook(
        "claude",
        "SessionStart",
        {
            "session_id": SESSION,
            "transcript_path": str(transcript),
            "cwd": str(ws.root),
            "hook_event_name": "SessionStart",
            "source": "startup",
            "model": "claude-opus-4-6",
        },
    )
    return ws, transcript


def _push(ws: Workspace) -> Any:
    return subprocess.run(
        ["git", "push", "-q", "origin", "main"], cwd=ws.root, env=ws.env, capture_output=True, text=True, check=False
    )


def test_git_push_attests_the_session(tmp_path: Path, server: PushServer) -> None:
    # Given an initialised repository, a logged-in user and an AI-written file committed
    ws, transcript = _setup(tmp_path, server)
    _ai_write(ws, transcript, "geese.md", "".join(f"goose {i}\n" for i in range(22)))
    sha = ws.commit("docs: geese")
    assert SESSION in ws.message()
    # When the developer pushes
    result = _push(ws)
    # Then the push succeeds and the session is attested, signed, with the real numbers
    assert result.returncode == 0, result.stderr
    (post,) = server.state.attestation_posts()
    envelope = json.loads(post.body)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"] == [{"name": sha, "digest": {"gitCommit": sha}}]
    assert envelope["signatures"][0]["keyid"] in server.state.keys
    data = statement["predicate"]["evidence"]["data"]
    assert data["usage"]["main_thread"]["output_tokens"] == 471
    assert data["code_changes"]["ai_lines_added"] == 22
    assert data["code_changes"]["files"][0]["line_ranges"] == [{"start": 1, "end": 22}]
    (blob,) = server.state.uploads.values()
    assert gzip.decompress(blob).count(b"\n") >= 31
    assert f"sessions/{SESSION}" in result.stderr
    # and pushing again with nothing new sends nothing
    assert _push(ws).returncode == 0
    assert len(server.state.attestation_posts()) == 1


def test_gated_violation_interrupts_git_push(tmp_path: Path, server: PushServer) -> None:
    ws, transcript = _setup(tmp_path, server)
    _ai_write(ws, transcript, "a.txt", "x\n")
    ws.commit("a")
    server.state.mode = "gated"
    result = _push(ws)
    assert result.returncode != 0
    assert "too many tokens" in result.stderr
    assert ws.git("ls-remote", "origin").strip() == ""  # nothing reached the remote


def test_server_down_spools_and_tracemark_push_delivers(tmp_path: Path, server: PushServer) -> None:
    ws, transcript = _setup(tmp_path, server)
    _ai_write(ws, transcript, "a.txt", "x\n")
    ws.commit("a")
    server.state.mode = "500"
    result = _push(ws)
    assert result.returncode == 0, result.stderr  # not requireTrace: a warning, the push goes on
    assert "spooled" in result.stderr
    assert list((ws.state / "spool").glob("*.json"))
    server.state.mode = "ok"
    delivered = ws.tracemark("push")
    assert delivered.returncode == 0, delivered.stderr
    assert not list((ws.state / "spool").glob("*.json"))
    assert len(server.state.stored) == 1
