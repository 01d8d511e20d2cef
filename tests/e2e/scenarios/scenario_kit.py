"""The scenario suite's parts: organisations on the real `tracemark serve`, developers with their own
HOME (credentials, signing key) and clone of a shared bare remote, and agent sessions replayed
through the hook commands that `tracemark init` wrote into `.claude/settings.json` and
`.cursor/hooks.json` (run with `sh -c`, the payload on stdin, exactly as the agents run them).

Payloads are the real ones of `tests/fixtures/capture/` with their placeholders filled in; tool
payloads the fixtures do not hold (Write, Edit) follow the same shape. Claude transcripts are the
real ones of `tests/fixtures/claude/`, copied with their timestamps moved to just before now (so
the dashboard's 24h range sees them); token counts and everything else are left as they are.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

TESTS = Path(__file__).resolve().parents[2]
FIXTURES = TESTS / "fixtures"
PYTHON = sys.executable
VENV_BIN = str(Path(PYTHON).parent)
SESSION_RE = re.compile(r"^(?:Tracemark-Sessions|Chainloop-Trace-Sessions):\s*(.*)$", re.IGNORECASE | re.MULTILINE)


def _payloads(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / "capture" / name).read_text().splitlines() if line.strip()]


CLAUDE_TEMPLATES = _payloads("claude_hook_payloads.real_redacted.jsonl")
CURSOR_TEMPLATES = _payloads("cursor_hook_payloads.real_redacted_2026-07.jsonl")
CURSOR_EDIT_TEMPLATE = next(
    p for p in _payloads("cursor_hook_payloads.real_2026-03.jsonl") if p["hook_event_name"] == "afterFileEdit"
)


def expected_usage(transcript: str) -> dict[str, int]:
    """Main-thread token counts of a fixture transcript, as computed independently in the fixtures."""
    table = json.loads((FIXTURES / "claude" / "claude_transcripts.expected.json").read_text())
    usage: dict[str, int] = table[transcript]["usage_dedup_last_record_per_message_id"]
    return usage


def expected_cost(transcript: str) -> float:
    """Main-thread cost of a fixture transcript at list prices, computed independently in the fixtures."""
    table = json.loads((FIXTURES / "claude" / "claude_transcripts.expected.json").read_text())
    return float(table[transcript]["estimated_cost_usd_main_thread"])


# -- the server side ---------------------------------------------------------------------------------


def api(served: Any, method: str, path: str, token: str, status: int = 200, **kwargs: Any) -> Any:
    response = requests.request(
        method, served.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


@dataclass
class Tenant:
    """An organisation of its own (the served stack is shared by every test), with one project."""

    served: Any
    org: str
    admin: str
    project: str = "web"
    users: dict[str, str] = field(default_factory=dict)

    def user_token(self, subject: str) -> str:
        if subject not in self.users:
            minted = api(self.served, "POST", "/v1/tokens", self.admin, 201, json={"subject": subject, "kind": "user"})
            self.users[subject] = minted["token"]
        return self.users[subject]

    def get(self, path: str, **params: str) -> Any:
        return api(self.served, "GET", path, self.admin, 200, params=params)

    def sessions(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/v1/sessions", limit="100")["items"]
        return items

    def session(self, session_id: str) -> dict[str, Any]:
        detail: dict[str, Any] = self.get(f"/v1/sessions/{session_id}")
        return detail

    def dashboard(self, range_: str = "24h") -> dict[str, Any]:
        cards: dict[str, Any] = self.get("/v1/dashboard/ai", range=range_)
        return cards


def new_tenant(served: Any, prefix: str) -> Tenant:
    org = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = api(served, "POST", "/v1/orgs", served.admin_token, 201, json={"name": org})["token"]
    api(served, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    return Tenant(served, org, admin)


class Link:
    """The developer's network path to the server: a TCP relay on 127.0.0.1 that can be cut (the
    laptop goes offline, the VPN drops: connections are refused) and restored on the same port,
    while `tracemark serve` itself keeps running for GitHub's webhooks. Bytes pass unchanged."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").rsplit(":", 1)
        self._target = (host, int(port))
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        for sock in [*([listener] if listener else []), *conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = down

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=30)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


# -- developers and their clones ----------------------------------------------------------------------


def hermetic_env(home: Path, name: str, email: str, path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TRACEMARK_", "CLAUDE_", "AWS_", "MOTO_"))}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "PATH": path if path is not None else VENV_BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        }
    )
    return env


def run(
    args: list[str], cwd: Path, env: dict[str, str], stdin: bytes = b"", *, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, check=False, timeout=timeout)
    result = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_remote(base: Path, files: dict[str, str]) -> Path:
    """A bare remote whose `main` holds `files` (one initial commit, no hooks involved)."""
    remote = base / "remote.git"
    seed = base / "seed"
    env = hermetic_env(base / "seed-home", "Seed", "seed@example.com")
    (base / "seed-home").mkdir(parents=True)
    run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], base, env)
    run(["git", "init", "-q", "-b", "main", str(seed)], base, env)
    for path, content in files.items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(content)
    run(["git", "add", "-A"], seed, env)
    run(["git", "commit", "-q", "-m", "initial"], seed, env)
    run(["git", "push", "-q", str(remote), "main"], seed, env)
    return remote


class Dev:
    """A developer: own HOME, own clone of `remote`, the CLI on PATH (unless `with_cli` is false)."""

    def __init__(self, base: Path, name: str, remote: Path, *, with_cli: bool = True) -> None:
        self.name = name
        self.email = f"{name}@example.com"
        self.home = base / f"{name}-home"
        self.home.mkdir(parents=True)
        path = None if with_cli else "/usr/bin:/bin"
        self.env = hermetic_env(self.home, name.title(), self.email, path)
        self.root = base / name
        run(["git", "clone", "-q", str(remote), str(self.root)], base, self.env)
        self._ids = itertools.count(1)

    # -- processes --------------------------------------------------------------------------------
    def git(self, *args: str, check: bool = True, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run(["git", *args], self.root, self.env, stdin.encode(), check=check)

    def out(self, *args: str) -> str:
        return self.git(*args).stdout.strip()

    def tracemark(self, *args: str, check: bool = False, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run([PYTHON, "-m", "tracemark", *args], self.root, self.env, stdin.encode(), check=check)

    def login(self, served: Any, token: str, *, via: Link | None = None) -> None:
        server = via.url if via is not None else served.url
        self.tracemark("auth", "login", "--server", server, "--token", token, check=True)

    def push(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`git push` as typed (its pre-push hook attests); never raises."""
        return self.git("push", *(args or ("-q", "origin", "HEAD")), check=False)

    def write(self, path: str, content: str) -> None:
        """A human edit (an editor saving the file)."""
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content)

    def commit(self, message: str, *paths: str, amend: bool = False, signoff: bool = False) -> str:
        self.git("add", *(paths or ("-A",)))
        self.git("commit", "-q", *(["--amend"] if amend else []), *(["--signoff"] if signoff else []), "-m", message)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.out("rev-parse", rev)

    def message(self, rev: str = "HEAD") -> str:
        return self.git("log", "-1", "--format=%B", rev).stdout

    def trailer_sessions(self, rev: str = "HEAD") -> list[str]:
        """Session ids of the trailer as `git interpret-trailers --parse` reads it back."""
        parsed = self.git("interpret-trailers", "--parse", stdin=self.message(rev)).stdout
        ids: list[str] = []
        for match in SESSION_RE.finditer(parsed):
            ids += [part.strip() for part in match.group(1).split(",") if part.strip()]
        return ids

    def message_sessions(self, rev: str = "HEAD") -> list[str]:
        """Session ids as the readers take them (SPEC §2.4): every matching line of the whole message."""
        ids: list[str] = []
        for match in SESSION_RE.finditer(self.message(rev)):
            ids += [part.strip() for part in match.group(1).split(",") if part.strip()]
        return ids

    def worktree(self, name: str, branch: str) -> Dev:
        """A linked worktree of this clone (`git worktree add`), worked in by the same developer."""
        path = self.root.parent / name
        self.git("worktree", "add", "-q", "-b", branch, str(path))
        other = copy.copy(self)
        other.root = path
        return other

    @property
    def state(self) -> Path:
        common = self.out("rev-parse", "--path-format=absolute", "--git-common-dir")
        return Path(common) / "tracemark"

    def spool(self) -> list[Path]:
        return sorted((self.state / "spool").glob("*.json"))

    def rejected(self) -> list[Path]:
        return sorted((self.state / "spool" / "rejected").glob("*.json"))

    def remote_head(self, branch: str = "main") -> str:
        line = self.out("ls-remote", "origin", f"refs/heads/{branch}")
        return line.split()[0] if line else ""

    def tool_id(self) -> str:
        return f"toolu_{self.name}_{next(self._ids):04d}"

    # -- the installed agent hooks ------------------------------------------------------------------
    def agent_hook(self, agent: str, event: str, payload: dict[str, Any]) -> list[str]:
        """Run every command the committed agent config installs for `event` (matcher checked), with
        `payload` on stdin; the agent's contract: exit 0, Claude prints nothing, Cursor prints `{}`.
        Returns the commands run (none when the clone has no such config)."""
        if agent == "claude":
            config = self.root / ".claude" / "settings.json"
            if not config.exists():
                return []
            groups = json.loads(config.read_text()).get("hooks", {}).get(event, [])
            tool = str(payload.get("tool_name", ""))
            entries = [
                hook
                for group in groups
                if not group.get("matcher") or re.fullmatch(group["matcher"], tool)
                for hook in group.get("hooks", [])
            ]
        else:
            config = self.root / ".cursor" / "hooks.json"
            if not config.exists():
                return []
            entries = json.loads(config.read_text()).get("hooks", {}).get(event, [])
        ran: list[str] = []
        raw = json.dumps(payload).encode()
        for entry in entries:
            command = entry["command"]
            env = {**self.env, "CLAUDE_PROJECT_DIR": str(self.root)} if agent == "claude" else dict(self.env)
            proc = run(["sh", "-c", command], self.root, env, raw, check=False, timeout=float(entry.get("timeout", 60)))
            assert proc.returncode == 0, (command, proc.stderr)
            if agent == "claude":
                assert proc.stdout == "", (command, proc.stdout)
            else:
                assert proc.stdout == "{}", (command, proc.stdout)
            assert "Traceback" not in proc.stderr, proc.stderr
            ran.append(command)
        return ran


def shifted_transcript(fixture: str, target: Path, end: datetime | None = None) -> Path:
    """Copy a fixture transcript with every `timestamp` moved so the last one is `end` (default: a
    minute ago), keeping the gaps; nothing else changes."""
    lines = (FIXTURES / "claude" / fixture).read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    stamps = [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in records if r.get("timestamp")]
    delta = (end or datetime.now(UTC) - timedelta(minutes=1)) - max(stamps)
    out = []
    for record in records:
        if record.get("timestamp"):
            moved = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")) + delta
            record["timestamp"] = moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out.append(json.dumps(record))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(out) + "\n")
    return target


# -- agent sessions -------------------------------------------------------------------------------------


class ClaudeSession:
    """One Claude Code session replayed through the installed hooks (payloads of the real fixture)."""

    def __init__(self, dev: Dev, fixture: str | None, *, model: str = "claude-opus-4-6") -> None:
        self.dev = dev
        self.id = str(uuid.uuid4())
        self.model = model
        if fixture:
            target = dev.home / ".claude" / "projects" / "-work" / f"{self.id}.jsonl"
            self.transcript = str(shifted_transcript(fixture, target))
        else:
            self.transcript = str(dev.home / ".claude" / "projects" / "-work" / f"{self.id}.jsonl")

    def _payload(self, event: str, **fields: Any) -> dict[str, Any]:
        template = next((t for t in CLAUDE_TEMPLATES if t["hook_event_name"] == event), {"hook_event_name": event})
        payload = {k: v for k, v in template.items() if k not in ("tool_name", "tool_input", "tool_use_id")}
        payload.update(session_id=self.id, transcript_path=self.transcript, cwd=str(self.dev.root))
        payload.update(fields)
        return payload

    def hook(self, event: str, **fields: Any) -> list[str]:
        return self.dev.agent_hook("claude", event, self._payload(event, **fields))

    def start(self) -> list[str]:
        ran = self.hook("SessionStart", model=self.model)
        self.hook("UserPromptSubmit", prompt="Please do the work described in the issue.")
        return ran

    def _tool(self, tool: str, tool_input: dict[str, Any], act: Any, response: dict[str, Any]) -> None:
        tool_use_id = self.dev.tool_id()
        self.hook("PreToolUse", tool_name=tool, tool_input=tool_input, tool_use_id=tool_use_id)
        act()
        self.hook("PostToolUse", tool_name=tool, tool_input=tool_input, tool_use_id=tool_use_id, tool_response=response)

    def write(self, path: str, content: str) -> None:
        full = self.dev.root / path
        existed = full.exists()

        def act() -> None:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(content)

        response = {"type": "update" if existed else "create", "filePath": str(full), "content": content}
        self._tool("Write", {"file_path": str(full), "content": content}, act, response)

    def edit(self, path: str, old: str, new: str) -> None:
        full = self.dev.root / path
        before = full.read_text()
        assert before.count(old) == 1, f"{old!r} must occur once in {path}"

        def act() -> None:
            full.write_text(before.replace(old, new))

        tool_input = {"file_path": str(full), "old_string": old, "new_string": new, "replace_all": False}
        response = {"filePath": str(full), "oldString": old, "newString": new, "originalFile": before}
        self._tool("Edit", tool_input, act, response)

    def bash(self, command: str) -> None:
        def act() -> None:
            run(["sh", "-c", command], self.dev.root, self.dev.env)

        response = {"stdout": "", "stderr": "", "interrupted": False}
        self._tool("Bash", {"command": command, "description": "run"}, act, response)

    def end(self) -> None:
        self.hook("Stop", stop_hook_active=False, last_assistant_message="Done.")
        self.hook("SessionEnd", reason="other")


class CursorSession:
    """One Cursor agent session replayed through the installed Cursor hooks (real payload shapes)."""

    def __init__(self, dev: Dev, *, model: str = "cursor-composer-2") -> None:
        self.dev = dev
        self.id = str(uuid.uuid4())
        self.model = model

    def _payload(self, event: str, **fields: Any) -> dict[str, Any]:
        if event == "afterFileEdit":
            payload = dict(CURSOR_EDIT_TEMPLATE)
        else:
            payload = dict(next(t for t in CURSOR_TEMPLATES if t["hook_event_name"] == event))
        payload.update(
            conversation_id=self.id,
            session_id=self.id,
            generation_id=self.id,
            model=self.model,
            workspace_roots=[str(self.dev.root)],
            user_email=self.dev.email,
            transcript_path=None,
        )
        payload.update(fields)
        return payload

    def hook(self, event: str, **fields: Any) -> list[str]:
        return self.dev.agent_hook("cursor", event, self._payload(event, **fields))

    def start(self) -> list[str]:
        ran = self.hook("sessionStart")
        self.hook("beforeSubmitPrompt", prompt="Refactor the helper.", attachments=[])
        return ran

    def edit(self, path: str, old: str, new: str) -> None:
        """Cursor's agent edits the file, then reports it with `afterFileEdit` (old/new strings)."""
        full = self.dev.root / path
        before = full.read_text()
        assert before.count(old) == 1
        full.write_text(before.replace(old, new))
        self.hook("afterFileEdit", file_path=str(full), edits=[{"old_string": old, "new_string": new}])

    def stop(self, input_tokens: int, output_tokens: int) -> None:
        self.hook("stop", input_tokens=input_tokens, output_tokens=output_tokens, status="completed", loop_count=0)

    def end(self) -> None:
        self.hook("sessionEnd", reason="completed", duration_ms=1000, final_status="completed")

    def relay_through_claude_hooks(self, event: str, **fields: Any) -> list[str]:
        """Cursor also runs the project's Claude Code hooks, with Claude-format payloads that carry
        `cursor_version` (SPEC §2.3: such payloads MUST NOT be captured twice)."""
        template = next((t for t in CLAUDE_TEMPLATES if t["hook_event_name"] == event), {"hook_event_name": event})
        payload = {k: v for k, v in template.items() if k not in ("tool_name", "tool_input", "tool_use_id")}
        payload.update(
            session_id=self.id,
            conversation_id=self.id,
            transcript_path=None,
            cwd=str(self.dev.root),
            cursor_version=CURSOR_TEMPLATES[0]["cursor_version"],
            workspace_roots=[str(self.dev.root)],
            model=self.model,
        )
        payload.update(fields)
        return self.dev.agent_hook("claude", event, payload)


# -- GitHub --------------------------------------------------------------------------------------------


@dataclass
class LinkedRepo:
    full_name: str
    repo_id: int
    installation_id: int


def link_github_repo(served: Any, tenant: Tenant, deliver: Any, name: str = "app") -> LinkedRepo:
    """The App is installed on `<org>/<name>`; the server admin binds the installation to the org and
    the org admin links the repository to the project (SPEC §3.1a)."""
    number = int(uuid.uuid4().int % 900_000) + 100_000
    linked = LinkedRepo(f"{tenant.org}/{name}", 5_000_000 + number, 7_000_000 + number)
    created = json.loads((FIXTURES / "github" / "github_webhook_installation.created.json").read_text())
    created["installation"]["id"] = linked.installation_id
    created["repositories"] = [{"id": linked.repo_id, "full_name": linked.full_name, "private": True}]
    assert deliver(served, "installation", created).status_code == 202
    api(served, "PUT", f"/v1/installations/{linked.installation_id}", served.admin_token, json={"org": tenant.org})
    api(served, "PUT", f"/v1/repositories/{linked.repo_id}", tenant.admin, json={"project": tenant.project})
    served.github.add_repo(linked.full_name, repo_id=linked.repo_id, installation_id=linked.installation_id)
    return linked


def pr_event(linked: LinkedRepo, number: int, action: str, label: str | None = None) -> dict[str, Any]:
    name = "labeled" if label else "opened"
    body: dict[str, Any] = json.loads((FIXTURES / "github" / f"github_webhook_pull_request.{name}.json").read_text())
    body.update(action=action, number=number)
    body["repository"]["id"] = linked.repo_id
    body["installation"]["id"] = linked.installation_id
    if label:
        body["label"]["name"] = label
    return body


def commits_between(dev: Dev, base: str, head: str) -> list[tuple[str, str]]:
    """(sha, full message) of the commits base..head, oldest first (what GitHub lists for a PR)."""
    shas = dev.out("rev-list", "--reverse", f"{base}..{head}").split()
    return [(sha, dev.message(sha)) for sha in shas]


def numstat_lines(dev: Dev, sha: str) -> int:
    """Lines added + removed by one commit, from git itself."""
    total = 0
    for line in dev.out("show", "--numstat", "--format=", sha).splitlines():
        added, removed, _ = line.split("\t", 2)
        total += int(added) + int(removed)
    return total
