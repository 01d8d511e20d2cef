"""Real git repositories in temp dirs, driven the way agents and developers drive them.

`Workspace` runs `python -m tracemark` subprocesses (hooks get JSON on stdin with
CLAUDE_PROJECT_DIR set, exactly as Claude Code runs them) and real `git` with our installed hooks.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PYTHON = sys.executable
VENV_BIN = str(Path(PYTHON).parent)


def hermetic_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TRACEMARK_", "CLAUDE_"))}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "Dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
            "PATH": VENV_BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        }
    )
    return env


class Workspace:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self._counter = itertools.count(1)

    # -- processes ----------------------------------------------------------------------------
    def git(self, *args: str, check: bool = True, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {args} failed: {proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def tracemark(self, *args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [PYTHON, "-m", "tracemark", *args],
            cwd=cwd or self.root,
            env={**self.env, "CLAUDE_PROJECT_DIR": str(self.root)},
            input=stdin,
            capture_output=True,
            check=False,
        )

    def hook(self, source: str, event: str, payload: dict[str, Any] | bytes) -> subprocess.CompletedProcess[bytes]:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        proc = self.tracemark("hook", source, event, stdin=raw)
        assert proc.returncode == 0, proc.stderr
        if source == "claude":
            assert proc.stdout == b"", proc.stdout
        else:
            assert proc.stdout == b"{}", proc.stdout
        return proc

    # -- a scripted Claude Code session ---------------------------------------------------------
    def claude(self, event: str, session: str, **fields: Any) -> None:
        payload = {
            "session_id": session,
            "transcript_path": f"/nonexistent/{session}.jsonl",
            "cwd": str(self.root),
            "hook_event_name": event,
            **fields,
        }
        self.hook("claude", event, payload)

    def tool_id(self) -> str:
        return f"toolu_{next(self._counter):04d}"

    def ai_write(self, session: str, path: str, content: str, tool: str = "Write", agent_id: str | None = None) -> None:
        """An agent file tool: PreToolUse, the write, PostToolUse."""
        full = self.root / path
        tool_use_id = self.tool_id()
        extra: dict[str, Any] = {"agent_id": agent_id, "agent_type": "general-purpose"} if agent_id else {}
        tool_input = {"file_path": str(full), "content": content}
        self.claude("PreToolUse", session, tool_name=tool, tool_input=tool_input, tool_use_id=tool_use_id, **extra)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content)
        self.claude(
            "PostToolUse",
            session,
            tool_name=tool,
            tool_input=tool_input,
            tool_use_id=tool_use_id,
            tool_response={"filePath": str(full)},
            **extra,
        )

    def ai_bash(self, session: str, command: str) -> None:
        tool_use_id = self.tool_id()
        tool_input = {"command": command}
        self.claude("PreToolUse", session, tool_name="Bash", tool_input=tool_input, tool_use_id=tool_use_id)
        subprocess.run(["sh", "-c", command], cwd=self.root, check=True, env=self.env)
        self.claude(
            "PostToolUse",
            session,
            tool_name="Bash",
            tool_input=tool_input,
            tool_use_id=tool_use_id,
            tool_response={"stdout": "", "stderr": "", "interrupted": False},
        )

    def human_write(self, path: str, content: str) -> None:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content)

    # -- reading results ------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        return self.root / ".git" / "tracemark"

    def commit(self, message: str, *paths: str) -> str:
        self.git("add", *(paths or ("-A",)))
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def message(self, rev: str = "HEAD") -> str:
        return self.git("log", "-1", "--format=%B", rev)

    def trailers(self, rev: str = "HEAD") -> str:
        return self.git("interpret-trailers", "--parse", stdin=self.message(rev))

    def record(self, sha: str) -> dict[str, Any] | None:
        path = self.state / "commits" / f"{sha}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def ranges(self, sha: str) -> dict[str, dict[str, list[list[int]]]]:
        """{path: {session: ranges}} of a commit record."""
        record = self.record(sha) or {"files": []}
        return {f["path"]: {sid: d["ranges"] for sid, d in f["sessions"].items()} for f in record["files"]}

    def log_lines(self) -> list[str]:
        path = self.state / "log.txt"
        return path.read_text().splitlines() if path.exists() else []


def make_repo(tmp_path: Path, name: str = "repo") -> Workspace:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    root = tmp_path / name
    root.mkdir()
    ws = Workspace(root.resolve(), hermetic_env(home))
    ws.git("init", "-q", "-b", "main")
    ws.human_write("README.md", "# demo\n")
    ws.commit("initial")
    return ws
