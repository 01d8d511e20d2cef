"""Scenario 7, `tracemark uninstall` (SPEC §2.2; docs/cli.md): after a real day of use — chained
foreign git hooks that ran with our hooks, a foreign Claude Code config we merged into, a Cursor
config we created, a push — uninstall restores every foreign hook and config byte for byte (and
mode), and leaves no Tracemark file behind, in the work tree or in `.git`."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from scenario_kit import ClaudeSession, CursorSession, Dev, Link, make_remote, new_tenant

pytestmark = pytest.mark.slow

# A foreign Claude Code config: 4-space indent, non-ASCII, a hook of another tool, no final newline
FOREIGN_SETTINGS = (
    '{\n    "permissions": {\n        "allow": ["Bash(npm test)"]\n    },\n'
    '    "env": {"GREETING": "héllo"},\n'
    '    "hooks": {\n        "PreToolUse": [\n            {\n                "matcher": "Bash",\n'
    '                "hooks": [{"type": "command", "command": "./scripts/guard.sh"}]\n            }\n        ]\n'
    "    }\n}"
)


def foreign_hooks(record: Path) -> dict[str, tuple[str, int]]:
    """Foreign git hooks: they record their name, arguments and standard input in `record`."""
    return {
        "pre-push": (f'#!/bin/sh\necho "pre-push $*" >> {record}\ncat >> {record}\nexit 0\n', 0o755),
        "commit-msg": (f'#!/bin/sh\necho "commit-msg" >> {record}\nexit 0\n', 0o755),
        "post-commit": (
            f"#!/usr/bin/env python3\nwith open({str(record)!r}, 'a') as f:\n    f.write('post-commit\\n')\n",
            0o700,
        ),
    }


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the work tree and of `.git` except the object store and git's own logs/index."""
    skipped = (".git/objects/", ".git/logs/", ".git/refs/", ".git/index", ".git/ORIG_HEAD", ".git/COMMIT_EDITMSG")
    files: dict[str, tuple[bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(skipped) and rel not in (".git/FETCH_HEAD", ".git/packed-refs"):
            files[rel] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return files


def test_uninstall_restores_everything_byte_for_byte(served_stack: Any, tmp_path: Path, link: Link) -> None:
    served = served_stack
    tenant = new_tenant(served, "uninst")
    remote = make_remote(tmp_path, {"README.md": "# app\n", ".claude/settings.json": FOREIGN_SETTINGS})
    dev = Dev(tmp_path, "dana", remote)
    dev.login(served, tenant.user_token("dana@example.com"), via=link)
    record = tmp_path / "foreign-hooks.log"
    for name, (text, mode) in foreign_hooks(record).items():
        hook = dev.root / ".git" / "hooks" / name
        hook.write_text(text)
        hook.chmod(mode)
    before = snapshot(dev.root)
    status_before = dev.out("status", "--porcelain", "--untracked-files=all")

    # Given Tracemark was initialised over the foreign hooks and config
    init = dev.tracemark("init", "--project", "web", "--org", tenant.org, "--claude", "--cursor")
    assert init.returncode == 0, init.stderr
    settings = json.loads((dev.root / ".claude" / "settings.json").read_text())
    assert settings["permissions"] == {"allow": ["Bash(npm test)"]}
    assert any("./scripts/guard.sh" in json.dumps(group) for group in settings["hooks"]["PreToolUse"])
    # And a day of use: an AI commit (both commit hooks ran, ours added the trailer), a push
    s1 = ClaudeSession(dev, "claude_transcript_write_create_and_bash.jsonl")
    s1.start()
    s1.write("src/a.py", "a = 1\n")
    s1.end()
    sha = dev.commit("feat: a", "src/a.py")
    assert dev.trailer_sessions(sha) == [s1.id]
    pushed = dev.push("-q", "origin", "main")
    assert pushed.returncode == 0, pushed.stderr
    assert [s["id"] for s in tenant.sessions()] == [s1.id]
    log = record.read_text()
    assert "commit-msg" in log and "post-commit" in log
    # the foreign pre-push saw git's arguments and the same refs on stdin as ours
    assert f"pre-push origin {remote}" in log
    assert f"refs/heads/main {sha} refs/heads/main" in log

    # and a second session whose push found the server unreachable (still in the spool)
    s2 = ClaudeSession(dev, "claude_transcript_rejected_then_created_write.jsonl")
    s2.start()
    s2.write("src/c.py", "c = 1\n")
    s2.end()
    dev.commit("feat: c", "src/c.py")
    link.down()
    offline = dev.push("-q", "origin", "main")
    assert offline.returncode == 0, offline.stderr
    assert len(dev.spool()) == 1

    # When the developer uninstalls
    removed = dev.tracemark("uninstall", "--yes")
    assert removed.returncode == 0, removed.stderr
    # Then it warns that an attestation was still pending
    assert "warning: deleting 1 attestation(s) not yet delivered" in removed.stderr

    # Then every foreign hook and config is back byte for byte, with its mode
    after = snapshot(dev.root)
    after.pop("src/a.py")  # the committed work stays
    after.pop("src/c.py")
    assert after.keys() == before.keys()
    for rel, (content, mode) in before.items():
        assert after[rel] == (content, mode), rel
    # And nothing of Tracemark is left: no state, no chained copies, no config, no Cursor file
    assert not (dev.root / ".git" / "tracemark").exists()
    assert not (dev.root / ".tracemark.yml").exists()
    assert not (dev.root / ".cursor").exists()
    leftovers = [
        p
        for p in dev.root.rglob("*")
        if ".git/objects" not in p.as_posix() and ("tracemark" in p.name.lower() or p.name.startswith(".cursor"))
    ]
    assert leftovers == []
    assert dev.out("status", "--porcelain", "--untracked-files=all") == status_before

    # And the foreign hooks still run on their own; commits get no trailer any more
    record.write_text("")
    dev.write("src/b.py", "b = 1\n")
    plain = dev.commit("feat: b", "src/b.py")
    assert dev.trailer_sessions(plain) == []
    assert record.read_text() == "commit-msg\npost-commit\n"


def test_uninstall_keeps_later_edits_of_a_merged_config(tmp_path: Path) -> None:
    # Given a foreign Claude config that init merged into, edited by the user afterwards
    remote = make_remote(tmp_path, {"README.md": "# app\n", ".claude/settings.json": FOREIGN_SETTINGS})
    dev = Dev(tmp_path, "erin", remote)
    assert dev.tracemark("init", "--project", "web", "--claude", "--offline").returncode == 0
    path = dev.root / ".claude" / "settings.json"
    edited = json.loads(path.read_text())
    edited["model"] = "opus"
    path.write_text(json.dumps(edited, indent=2))
    # When uninstalling
    assert dev.tracemark("uninstall", "--yes").returncode == 0
    # Then only our entries are gone: the foreign config plus the user's edit
    expected = json.loads(FOREIGN_SETTINGS)
    expected["model"] = "opus"
    assert json.loads(path.read_text()) == expected
    assert "tracemark" not in path.read_text()


def test_uninstall_restores_a_foreign_cursor_config_and_a_python_hook(tmp_path: Path) -> None:
    # Given a committed Cursor config of another tool (2-space indent, CRLF line ends)
    foreign = (
        '{\r\n  "version": 1,\r\n  "hooks": {\r\n    "afterFileEdit": [{"command": "./format.sh"}]\r\n  }\r\n}\r\n'
    )
    remote = make_remote(tmp_path, {"README.md": "# app\n", ".cursor/hooks.json": foreign})
    dev = Dev(tmp_path, "finn", remote)
    # and a foreign pre-push hook written in another language, not executable by others
    hook = dev.root / ".git" / "hooks" / "pre-push"
    hook.write_bytes(b"#!/usr/bin/env python3\nimport sys\nsys.exit(0)\n")
    hook.chmod(0o700)
    before = snapshot(dev.root)
    # When Tracemark is set up for Cursor, used, and uninstalled
    assert dev.tracemark("init", "--project", "web", "--cursor", "--offline").returncode == 0
    merged = json.loads((dev.root / ".cursor" / "hooks.json").read_text())
    assert merged["hooks"]["afterFileEdit"][0] == {"command": "./format.sh"}
    assert len(merged["hooks"]["afterFileEdit"]) == 2
    session = CursorSession(dev)
    session.start()
    session.end()
    assert dev.tracemark("uninstall", "--yes").returncode == 0
    # Then the work tree and .git are exactly as before
    assert snapshot(dev.root) == before
    assert dev.out("status", "--porcelain", "--untracked-files=all") == ""
