"""Hooks fed bad input: exit 0, the right output for the agent, one log line, nothing else disturbed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from capture_workspace import PYTHON, Workspace, make_repo
from test_install import tree_bytes

BAD_PAYLOADS: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"   \n",
    "truncated": b'{"session_id": "s1", "hook_event_name": "PreToolUse", "tool_na',
    "not-json": b"hello, I am not JSON",
    "array": b"[1, 2, 3]",
    "nested-bomb": b"[" * 100_000,
    "invalid-session-id": json.dumps({"session_id": "../../etc/passwd", "hook_event_name": "SessionStart"}).encode(),
    "missing-session-id": json.dumps({"hook_event_name": "SessionStart"}).encode(),
    "wrong-types": json.dumps({"session_id": "s1", "tool_name": 7, "tool_input": "x", "cwd": 3}).encode(),
    "binary-garbage": bytes(range(256)) * 10,
}


def _snapshot(ws: Workspace) -> tuple[dict[str, bytes], str]:
    return tree_bytes(ws.root), ws.git("status", "--porcelain")


@pytest.fixture(scope="module")
def shared_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One initialised repository for the read-only bad-input cases (init is the slow part)."""
    ws = make_repo(tmp_path_factory.mktemp("bad-input"))
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    ws.commit("tracemark init")
    return ws


@pytest.mark.parametrize("source", ["claude", "cursor"])
@pytest.mark.parametrize("name", sorted(BAD_PAYLOADS))
def test_malformed_stdin_is_logged_and_harmless(shared_ws: Workspace, source: str, name: str) -> None:
    ws = shared_ws
    before = _snapshot(ws)
    lines = len(ws.log_lines())
    event = "PreToolUse" if source == "claude" else "afterFileEdit"
    ws.hook(source, event, BAD_PAYLOADS[name])  # asserts exit 0 and the stdout contract
    log = ws.log_lines()
    assert len(log) == lines + 1
    assert "result=bad-input" in log[-1] or "result=ignored" in log[-1]
    assert _snapshot(ws) == before


def test_twenty_megabyte_payload(ws: Workspace) -> None:
    before = _snapshot(ws)
    payload = json.dumps({"session_id": "s1", "hook_event_name": "PostToolUse", "blob": "x" * (20 * 1024 * 1024)})
    ws.hook("claude", "PostToolUse", payload.encode())
    assert "larger than" in ws.log_lines()[-1]
    assert _snapshot(ws) == before


def test_unknown_events_are_ignored(ws: Workspace) -> None:
    ws.hook("claude", "Notification", {"session_id": "s1", "hook_event_name": "Notification", "message": "hi"})
    ws.hook("cursor", "beforeTabFileRead", {"conversation_id": "c1", "hook_event_name": "beforeTabFileRead"})
    ws.hook("claude", "NoSuchEvent", {"session_id": "s1"})
    assert [line.split(" result=")[1].split()[0] for line in ws.log_lines()[-3:]] == ["ignored"] * 3
    assert not (ws.state / "sessions" / "s1.jsonl").exists()


def test_missing_transcript_is_not_an_error(ws: Workspace) -> None:
    ws.claude("SessionStart", "s1", source="startup", transcript_path="/does/not/exist.jsonl")
    ws.claude("Stop", "s1", transcript_path="/does/not/exist.jsonl")
    ws.claude("SessionEnd", "s1", reason="other")
    assert all("result=ok" in line for line in ws.log_lines()[-3:])


def test_file_deleted_between_pre_and_post(ws: Workspace) -> None:
    ws.human_write("gone.txt", "a\nb\n")
    ws.commit("gone")
    tool_input = {"file_path": str(ws.root / "gone.txt"), "old_string": "a", "new_string": "A"}
    ws.claude("PreToolUse", "s1", tool_name="Edit", tool_input=tool_input, tool_use_id="t1")
    (ws.root / "gone.txt").unlink()
    ws.claude("PostToolUse", "s1", tool_name="Edit", tool_input=tool_input, tool_use_id="t1")
    assert "result=ok" in ws.log_lines()[-1]
    ws.git("rm", "-q", "gone.txt")
    sha = ws.commit("delete")
    record = ws.record(sha)
    assert record is not None
    assert record["files"][0]["sessions"]["s1"]["removed"] == 2


def test_binary_file_is_skipped(ws: Workspace) -> None:
    target = ws.root / "image.bin"
    tool_input = {"file_path": str(target), "content": "x"}
    target.write_bytes(b"\x89PNG\x00\x01\x02")
    ws.claude("PreToolUse", "s1", tool_name="Write", tool_input=tool_input, tool_use_id="t1")
    target.write_bytes(b"\x89PNG\x00\x03\x04")
    ws.claude("PostToolUse", "s1", tool_name="Write", tool_input=tool_input, tool_use_id="t1")
    assert "binary" in ws.log_lines()[-1]
    sha = ws.commit("binary", "image.bin")
    assert ws.record(sha) is None


def test_paths_outside_the_repository_are_ignored(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.txt"
    for path in (str(outside), str(ws.root / ".." / "x.txt"), str(ws.root / ".git" / "config"), "/etc/passwd"):
        tool_input = {"file_path": path, "content": "x"}
        ws.claude("PreToolUse", "s1", tool_name="Write", tool_input=tool_input, tool_use_id="t-out")
        assert "path outside the repository" in ws.log_lines()[-1]
    assert not (ws.state / "files").exists() or not list((ws.state / "files").glob("*.json"))


def test_git_hooks_survive_garbage(ws: Workspace) -> None:
    for args, stdin in (
        (["hook", "git", "post-rewrite", "rebase"], b"not a sha line\n\x00\xff"),
        (["hook", "git", "pre-push", "origin", "/x"], b"garbage\n"),
        (["hook", "git", "commit-msg"], b""),
        (["hook", "git", "no-such-hook"], b""),
        (["hook", "git", "commit-msg", str(ws.root / "missing-file")], b""),
        (["hook"], b""),
        (["hook", "claude"], b""),
    ):
        proc = ws.tracemark(*args, stdin=stdin)
        assert proc.returncode == 0, (args, proc.stderr)


def test_hook_outside_any_repository_is_silent(tmp_path: Path, ws: Workspace) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    env = {k: v for k, v in ws.env.items() if k != "CLAUDE_PROJECT_DIR"}
    payload = json.dumps({"session_id": "s1", "cwd": str(plain), "hook_event_name": "SessionStart"}).encode()
    proc = subprocess.run(
        [PYTHON, "-m", "tracemark", "hook", "claude", "SessionStart"],
        cwd=plain,
        env=env,
        input=payload,
        capture_output=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, b"")
    assert list(plain.iterdir()) == []


def test_corrupt_state_files_do_not_break_hooks(ws: Workspace) -> None:
    ws.ai_write("s1", "a.txt", "a\n")
    for state_file in (ws.state / "files").glob("*.json"):
        state_file.write_text("{corrupt")
    ws.ai_write("s1", "a.txt", "a\nb\n", tool="Edit")
    sha = ws.commit("after corruption", "a.txt")
    # The state was lost, so only the edit made after it is known to be the agent's
    assert ws.ranges(sha) == {"a.txt": {"s1": [[2, 2]]}}


def test_log_is_rotated(ws: Workspace) -> None:
    log = ws.state / "log.txt"
    log.write_text("x" * 1_100_000)
    ws.claude("Stop", "s1")
    assert (ws.state / "log.txt.1").stat().st_size == 1_100_000
    assert len(log.read_text().splitlines()) == 1


HEAVY = (
    "pydantic",
    "yaml",
    "ruamel",
    "requests",
    "boto3",
    "botocore",
    "pynamodb",
    "regopy",
    "cryptography",
    "jsonschema",
)


@pytest.mark.parametrize(
    ("argv", "payload"),
    [
        (["hook", "claude", "PreToolUse"], {"session_id": "s1", "tool_name": "Edit", "tool_input": {"file_path": "x"}}),
        (["hook", "cursor", "afterFileEdit"], {"conversation_id": "c1", "file_path": "x", "edits": []}),
        (["hook", "git", "post-commit"], {}),
    ],
)
def test_hook_path_imports_nothing_heavy(ws: Workspace, argv: list[str], payload: dict[str, object]) -> None:
    script = (
        "import io, json, sys\n"
        f"sys.stdin = io.TextIOWrapper(io.BytesIO({json.dumps(payload).encode()!r}))\n"
        "from tracemark.main import main\n"
        f"main({argv!r})\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps(loaded), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [PYTHON, "-c", script],
        cwd=ws.root,
        env={**ws.env, "CLAUDE_PROJECT_DIR": str(ws.root)},
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.decode().strip().splitlines()[-1]) == []
