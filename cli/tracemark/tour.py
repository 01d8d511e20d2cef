"""The five-minute tour (`tracemark demo`), with real parts only.

Against a running `tracemark serve` (found through `<data dir>/serve.json`, which serve writes
while it runs), the tour: creates an organisation, a project and a developer token through the API;
creates a sample repository with a bare remote; runs `tracemark auth login` and `tracemark init`;
replays a real Claude Code session (`resources/demo/`, see SOURCES.md there) through the hook
commands the installed `.claude/settings.json` holds, applying the session's own edits to the
files; adds a human edit; commits (our commit-msg hook adds the trailer) and `git push`es (our
pre-push hook attests the session); opens a pull request on serve's fake GitHub and delivers the
signed `pull_request` webhook, as GitHub would; waits for the workflow and prints what GitHub
received and what the dashboard counts.

Everything it creates lives in one directory (the credentials and signing key too, through
`XDG_CONFIG_HOME`; git's global config is replaced by a demo one), so the user's own login, keys
and git settings are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import requests

from tracemark.errors import UserError

TRANSCRIPT_RESOURCE = "claude_transcript_edits_structuredpatch.jsonl"
ORIGINAL_CWD = "/Users/gtrrz-victor/wks/cli"  # where the recorded session ran
PROJECT = "sample-app"
BRANCH = "fix-lint"
DEVELOPER = "dev@example.com"
MARKER_FILE = ".tracemark-demo"
HTTP_TIMEOUT_S = 30.0
START_HINT = "start `make serve` in another terminal first (or pass --server URL --token ADMIN_TOKEN)"
SAMPLE_README = """# sample-app

A tiny Go module used by `tracemark demo`: its telemetry package comes from a real Claude Code
session (entireio/cli, MIT), which the demo replays through Tracemark's hooks.
"""
HUMAN_README_EDIT = "\nLint: `golangci-lint run ./...`; the two `ireturn` findings are silenced on purpose.\n"


@dataclass
class Server:
    url: str
    admin_token: str
    webhook_secret: str
    github_url: str


@dataclass
class Layout:
    root: Path
    repo: Path
    remote: Path
    home: Path
    claude: Path

    @property
    def state(self) -> Path:
        return self.repo / ".git" / "tracemark"


class Tour:
    def __init__(self, server: Server, layout: Layout, timeout_s: float, out: Callable[[str], None]) -> None:
        self.server = server
        self.layout = layout
        self.timeout_s = timeout_s
        self.out = out
        self.step_number = 0
        self.env = self._env()

    # -- output ------------------------------------------------------------------------------------

    def step(self, title: str, detail: str = "") -> None:
        self.step_number += 1
        self.out(f"{self.step_number:>2}. {title}" + (f" - {detail}" if detail else ""))

    # -- processes ---------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TRACEMARK_", "CLAUDE_"))}
        gitconfig = self.layout.home / "gitconfig"
        env.update(
            {
                "XDG_CONFIG_HOME": str(self.layout.home / "config"),
                "GIT_CONFIG_GLOBAL": str(gitconfig),
                "GIT_CONFIG_NOSYSTEM": "1",
                "CLAUDE_CONFIG_DIR": str(self.layout.claude),
                "PATH": os.pathsep.join([str(_tracemark_bin(self.layout.home)), env.get("PATH", "/usr/bin:/bin")]),
            }
        )
        return env

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.layout.repo, env=self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise UserError(f"`git {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def tracemark(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "tracemark", *args],
            cwd=self.layout.repo,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise UserError(f"`tracemark {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout + proc.stderr

    # -- HTTP --------------------------------------------------------------------------------------

    def api(self, method: str, path: str, token: str, status: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        try:
            response = requests.request(
                method,
                self.server.url + path,
                headers={"Authorization": f"Bearer {token}"},
                timeout=HTTP_TIMEOUT_S,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise UserError(f"{method} {path}: the server does not answer ({exc})", hint=START_HINT) from exc
        if response.status_code not in status:
            raise UserError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def github(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.server.github_url + path, json=body, timeout=HTTP_TIMEOUT_S)
        if response.status_code >= 300:
            raise UserError(f"fake GitHub {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def deliver(self, event: str, body: dict[str, Any]) -> dict[str, Any]:
        """A webhook delivery signed with serve's webhook secret, exactly as GitHub sends one."""
        from tracemark_common.prs.signature import signature_for

        data = json.dumps(body).encode()
        response = requests.post(
            f"{self.server.url}/github/webhook",
            data=data,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature_for(self.server.webhook_secret, data),
            },
            timeout=HTTP_TIMEOUT_S,
        )
        if response.status_code != 202:
            hint = "is the webhook secret the one serve uses?" if response.status_code == 401 else None
            raise UserError(f"the {event} webhook answered {response.status_code}: {response.text[:300]}", hint=hint)
        result: dict[str, Any] = response.json()
        return result

    def eventually(self, check: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.25)
        raise UserError(f"gave up waiting {self.timeout_s:.0f}s for {what}", hint="see the output of `make serve`")

    # -- the tour ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        org, org_token = self.organisation()
        self.sample_repository()
        self.init(org)
        session_id, replayed = self.replay_session()
        self.step("Claude Code session replayed through the installed hooks", replayed)
        self.human_edit()
        sha = self.commit(session_id)
        self.push(session_id)
        pr = self.pull_request(org, org_token, sha)
        return self.report(org_token, session_id, pr)

    def organisation(self) -> tuple[str, str]:
        org = "demo-" + secrets.token_hex(3)
        admin = self.server.admin_token
        org_token = str(self.api("POST", "/v1/orgs", admin, json={"name": org})["token"])
        self.api("POST", "/v1/projects", org_token, json={"name": PROJECT})
        developer = self.api("POST", "/v1/tokens", org_token, json={"subject": DEVELOPER, "kind": "user"})
        self.developer_token = str(developer["token"])
        self.step("Organisation, project and developer", f"org {org}, project {PROJECT}, token for {DEVELOPER}")
        return org, org_token

    def sample_repository(self) -> None:
        layout = self.layout
        (layout.home / "gitconfig").write_text(
            "[user]\n\tname = Dev\n\temail = dev@example.com\n"
            "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[advice]\n\tdetachedHead = false\n"
        )
        self.git("init", "-q", "--bare", str(layout.remote), cwd=layout.root)
        self.git("init", "-q", str(layout.repo), cwd=layout.root)
        self.git("remote", "add", "origin", str(layout.remote))
        original = _original_file(_transcript_records())
        target = layout.repo / original[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(original[1])
        (layout.repo / "go.mod").write_text("module entire.io/cli\n\ngo 1.24\n")
        (layout.repo / "README.md").write_text(SAMPLE_README)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "Initial import")
        self.git("push", "-q", "-u", "origin", "main")
        self.step("Sample repository", f"{layout.repo} (bare remote {layout.remote.name})")

    def init(self, org: str) -> None:
        self.tracemark("auth", "login", "--server", self.server.url, "--token", self.developer_token)
        self.tracemark("init", "--project", PROJECT, "--org", org, "--claude")
        self.git("add", ".tracemark.yml", ".claude/settings.json")
        self.git("commit", "-q", "-m", "Set up Tracemark")
        self.git("push", "-q", "origin", "main")
        self.git("switch", "-q", "-c", BRANCH)
        self.step(
            "tracemark auth login + tracemark init",
            "signing key registered; .tracemark.yml, Claude Code hooks and git hooks installed",
        )

    def replay_session(self) -> tuple[str, str]:
        """Each record of the real transcript is appended as Claude Code writes it; each hook the
        installed settings ask for runs with Claude Code's payload; Edit/Write change the files."""
        session_id = str(uuid.uuid4())
        records = _retarget(_transcript_records(), session_id, self.layout.repo)
        slug = re.sub(r"[^A-Za-z0-9]", "-", str(self.layout.repo))
        transcript = self.layout.claude / "projects" / slug / f"{session_id}.jsonl"
        transcript.parent.mkdir(parents=True, exist_ok=True)
        transcript.write_text("")
        hooks = _installed_claude_hooks(self.layout.repo)
        common = {"session_id": session_id, "transcript_path": str(transcript), "cwd": str(self.layout.repo)}
        model = next((r["message"]["model"] for r in records if r.get("type") == "assistant"), "")
        calls = {"hooks": 0, "tools": 0, "prompts": 0}

        def fire(event: str, tool: str | None = None, **fields: Any) -> None:
            for command, timeout in _matching(hooks, event, tool):
                payload = {**common, "permission_mode": "default", "hook_event_name": event, **fields}
                self._run_hook(command, timeout, payload)
                calls["hooks"] += 1

        fire("SessionStart", source="startup", model=model)
        pending: dict[str, dict[str, Any]] = {}
        with transcript.open("a") as handle:
            for record in records:
                content = (record.get("message") or {}).get("content")
                if record.get("type") == "user" and isinstance(content, str):
                    fire("UserPromptSubmit", prompt=content)
                    calls["prompts"] += 1
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                for block in content if isinstance(content, list) else []:
                    if block.get("type") == "tool_use" and record.get("type") == "assistant":
                        pending[block["id"]] = block
                        fire("PreToolUse", block["name"], tool_name=block["name"], tool_input=block["input"],
                             tool_use_id=block["id"])  # fmt: skip
                        self._apply(block)
                        calls["tools"] += 1
                    elif block.get("type") == "tool_result" and block.get("tool_use_id") in pending:
                        tool = pending.pop(block["tool_use_id"])
                        fields = {"tool_name": tool["name"], "tool_input": tool["input"], "tool_use_id": tool["id"]}
                        if block.get("is_error"):
                            fire("PostToolUseFailure", tool["name"], error=str(block.get("content")), **fields)
                        else:
                            fire("PostToolUse", tool["name"], tool_response=record.get("toolUseResult"), **fields)
        last: dict[str, Any] = next((r for r in reversed(records) if r.get("type") == "assistant"), {})
        text = [b.get("text", "") for b in (last.get("message") or {}).get("content") or [] if isinstance(b, dict)]
        fire("Stop", stop_hook_active=False, last_assistant_message="".join(text))
        fire("SessionEnd", reason="other")
        detail = (
            f"{calls['prompts']} prompt, {calls['tools']} tool calls (Read, Edit x2, Bash x2 replayed; "
            f"the Edits really change the file), {calls['hooks']} hook runs"
        )
        return session_id, detail

    def _run_hook(self, command: str, timeout: float, payload: dict[str, Any]) -> None:
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=self.layout.repo,
            env={**self.env, "CLAUDE_PROJECT_DIR": str(self.layout.repo)},
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise UserError(f"the hook `{command}` exited {proc.returncode}: {proc.stderr.decode()[:300]}")

    def _apply(self, block: dict[str, Any]) -> None:
        """The tool's effect on the sample repository: file tools are applied for real; shell
        commands of the recorded session (`mise run lint`) are not run here, only their hooks."""
        name, tool_input = block["name"], block["input"]
        if name == "Edit":
            path = Path(tool_input["file_path"])
            text = path.read_text()
            old, new = tool_input["old_string"], tool_input["new_string"]
            if old not in text:
                raise UserError(f"cannot replay the session: {path.name} does not contain the Edit's old text")
            path.write_text(text.replace(old, new) if tool_input.get("replace_all") else text.replace(old, new, 1))
        elif name == "Write":
            path = Path(tool_input["file_path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(tool_input["content"])

    def human_edit(self) -> None:
        with (self.layout.repo / "README.md").open("a") as handle:
            handle.write(HUMAN_README_EDIT)
        self.step("A human edit", "README.md, typed by you (no agent hook sees it)")

    def commit(self, session_id: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "Silence ireturn on the telemetry factories")
        message = self.git("log", "-1", "--format=%B")
        trailer = next((line for line in message.splitlines() if line.startswith("Tracemark-Sessions:")), "")
        if session_id not in trailer:
            raise UserError("the commit-msg hook added no Tracemark-Sessions trailer", hint=_log_hint(self.layout))
        sha = self.git("rev-parse", "HEAD").strip()
        self.step("git commit", f"{sha[:10]}, the commit-msg hook added `{trailer}`")
        return sha

    def push(self, session_id: str) -> None:
        proc = subprocess.run(
            ["git", "push", "-u", "origin", BRANCH],
            cwd=self.layout.repo,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 or f"sessions/{session_id}" not in output:
            raise UserError(f"`git push` did not attest the session:\n{output.strip()}", hint=_log_hint(self.layout))
        self.step("git push", "the pre-push hook signed the session (DSSE) and the server accepted it")

    def pull_request(self, org: str, org_token: str, head: str) -> dict[str, Any]:
        installation_id, repo_id = secrets.randbelow(10**8) + 10**8, secrets.randbelow(10**8) + 10**8
        full_name = f"{org}/{PROJECT}"
        # The GitHub App is installed on the repository: GitHub tells the backend, the server admin
        # binds the installation to the organisation, the org admin links the repository.
        self.github(
            "POST", "/_fake/repos", {"full_name": full_name, "repo_id": repo_id, "installation_id": installation_id}
        )
        installation = {"id": installation_id, "account": {"login": org, "type": "Organization"}}
        self.deliver(
            "installation",
            {
                "action": "created",
                "installation": {**installation, "repository_selection": "selected"},
                "repositories": [{"id": repo_id, "full_name": full_name, "private": True}],
                "sender": {"login": "dev", "type": "User"},
            },
        )
        self.api("PUT", f"/v1/installations/{installation_id}", self.server.admin_token, json={"org": org})
        self.api("PUT", f"/v1/repositories/{repo_id}", org_token, json={"project": PROJECT})
        # A pull request with the branch's real commits, and GitHub's `pull_request` webhook.
        shas = self.git("rev-list", "--reverse", f"main..{BRANCH}").split()
        messages = [self.git("log", "-1", "--format=%B", sha).rstrip("\n") for sha in shas]
        title = messages[-1].splitlines()[0]
        opened = self.github(
            "POST",
            "/_fake/pulls",
            {
                "full_name": full_name,
                "number": 1,
                "messages": messages,
                "shas": shas,
                "title": title,
                "head_ref": BRANCH,
            },
        )
        repository = {"id": repo_id, "full_name": full_name, "name": PROJECT, "private": True}
        outcome = self.deliver(
            "pull_request",
            {
                "action": "opened",
                "number": 1,
                "pull_request": {
                    "number": 1,
                    "title": title,
                    "state": "open",
                    "head": {"sha": opened["head_sha"], "ref": BRANCH},
                    "base": {"ref": "main"},
                },
                "repository": repository,
                "installation": {"id": installation_id},
                "sender": {"login": "dev", "type": "User"},
            },
        )
        if outcome.get("outcome") != "started":
            raise UserError(f"the pull_request webhook did not start the workflow: {outcome}")
        self.step("Pull request #1 opened on the fake GitHub", f"{full_name}, {BRANCH} -> main, webhook delivered")

        def published() -> tuple[dict[str, Any], dict[str, Any]] | None:
            state = self.github("GET", "/_fake/state")
            runs = [r for r in state["check_runs"] if r["head_sha"] == head and r["status"] == "completed"]
            comments = [c for c in state["comments"] if c["issue_url"].endswith(f"/repos/{full_name}/issues/1")]
            return (runs[-1], comments[-1]) if runs and comments else None

        run, comment = self.eventually(published, "the PR comment and the check run")
        self.step("The workflow ran", "Step Functions correlated the PR, then posted a comment and a check run")
        return {"full_name": full_name, "check_run": run, "comment": comment}

    def report(self, org_token: str, session_id: str, pr: dict[str, Any]) -> dict[str, Any]:
        session = self.eventually(
            lambda: (body := self.api("GET", f"/v1/sessions/{session_id}", org_token))["prs"] and body,
            "the session to know its PR",
        )
        cards = self.api("GET", "/v1/dashboard/ai", org_token, params={"range": "7d"})
        run, comment = pr["check_run"], pr["comment"]
        evidence = (session.get("evidence") or {}).get("data") or {}
        usage = evidence.get("usage") or {}
        changes = evidence.get("code_changes") or {}
        score = session.get("score") or {}
        out = self.out
        out("")
        out(f"Session {session_id}")
        out(f"  agent:        {(evidence.get('agent') or {}).get('name', '?')}  model: {session.get('model', '?')}")
        out(
            f"  tokens:       {usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out, "
            f"{usage.get('cache_read_input_tokens', 0)} cache read; estimated cost ${session.get('cost_usd', 0):.4f}"
        )
        out(
            f"  lines:        AI +{changes.get('ai_lines_added', 0)} -{changes.get('ai_lines_removed', 0)}, "
            f"human +{changes.get('human_lines_added', 0)} -{changes.get('human_lines_removed', 0)}"
        )
        out(f"  score:        {score.get('score', '?')}/100 ({score.get('flag', '?')}) {score.get('summary', '')}")
        out(f"  page:         {self.server.url}/#/sessions/{session_id}")
        out("")
        out(f"PR comment, as posted on the fake GitHub ({pr['full_name']}#1):")
        out(_indent(comment["body"]))
        out("")
        output = run.get("output") or {}
        out(f"Check run '{run['name']}' on {run['head_sha'][:10]}: {run['conclusion']} - {output.get('title') or ''}")
        out(_indent(str(output.get("summary") or "")))
        card = cards.get("cards", cards)
        ai_code = (card.get("ai_authored_code") or {}).get("value")
        out("")
        out(
            "Dashboard, last 7 days: "
            f"{_count(card['total_sessions']['value'], 'session')}, "
            f"{_count(card['active_users']['value'], 'active user')}, "
            f"{_count(card['ai_assisted_prs']['value'], 'AI-assisted PR')}, AI-authored code {ai_code}%"
        )
        out("")
        out(f"Open the dashboard: {self.server.url}/")
        out(f'  and paste this token into "API token": {org_token}')
        out(f"Everything the demo made is in {self.layout.root} (remove it when you are done).")
        return {"session": session, "cards": card, "check_run": run, "comment": comment, "org_token": org_token}


# -- helpers -------------------------------------------------------------------------------------------


def _count(value: Any, noun: str) -> str:
    return f"{value} {noun}" + ("" if value == 1 else "s")


def _indent(text: str) -> str:
    return "\n".join(("    " + line) if line else "" for line in text.splitlines())


def _log_hint(layout: Layout) -> str:
    return f"every hook run is logged in {layout.state / 'log.txt'}"


def _tracemark_bin(home: Path) -> Path:
    """The directory whose `tracemark` the agent hooks will find on PATH: this installation's."""
    here = Path(sys.executable).parent
    if (here / "tracemark").is_file():
        return here
    shim_dir = home / "bin"
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "tracemark"
    python = sys.executable.replace("'", "'\\''")
    shim.write_text(f"#!/bin/sh\nexec '{python}' -m tracemark \"$@\"\n")
    shim.chmod(0o755)
    return shim_dir


def _transcript_records() -> list[dict[str, Any]]:
    text = resources.files("tracemark").joinpath("resources", "demo", TRANSCRIPT_RESOURCE).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _original_file(records: list[dict[str, Any]]) -> tuple[str, str]:
    """The file as it was before the session's first Edit (Claude Code records it as `originalFile`)."""
    for record in records:
        result = record.get("toolUseResult")
        if isinstance(result, dict) and isinstance(result.get("originalFile"), str):
            path = str(result["filePath"])
            return path[len(ORIGINAL_CWD) + 1 :], str(result["originalFile"])
    raise UserError("the demo transcript has no Edit with an originalFile")


def _retarget(records: list[dict[str, Any]], session_id: str, repo: Path) -> list[dict[str, Any]]:
    """The recorded session, replayed now in the sample repository: a fresh session id, paths in the
    sample repository, timestamps moved so the session ends a few seconds ago."""
    raw = [json.dumps(r, ensure_ascii=False) for r in records]
    quoted = json.dumps(str(repo))[1:-1]
    moved = [json.loads(line.replace(ORIGINAL_CWD, quoted)) for line in raw]
    stamps = [_parse_time(r["timestamp"]) for r in moved if isinstance(r.get("timestamp"), str)]
    shift = datetime.now(UTC) - max(stamps) if stamps else None
    for record in moved:
        if "sessionId" in record:
            record["sessionId"] = session_id
        for holder in (record, record.get("snapshot")):
            if shift is not None and isinstance(holder, dict) and isinstance(holder.get("timestamp"), str):
                when = _parse_time(holder["timestamp"]) + shift
                holder["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return moved


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _installed_claude_hooks(repo: Path) -> dict[str, list[tuple[str | None, str, float]]]:
    """event -> [(matcher, command, timeout)] from the repository's `.claude/settings.json`."""
    settings = json.loads((repo / ".claude" / "settings.json").read_text())
    hooks: dict[str, list[tuple[str | None, str, float]]] = {}
    for event, groups in (settings.get("hooks") or {}).items():
        for group in groups:
            for hook in group.get("hooks") or []:
                if hook.get("type") == "command":
                    entry = (group.get("matcher"), str(hook["command"]), float(hook.get("timeout") or 60))
                    hooks.setdefault(event, []).append(entry)
    return hooks


def _matching(
    hooks: dict[str, list[tuple[str | None, str, float]]], event: str, tool: str | None
) -> Iterator[tuple[str, float]]:
    """The hooks Claude Code would run: tool events only where the matcher matches the tool name."""
    for matcher, command, timeout in hooks.get(event, []):
        if tool is None or not matcher or matcher == "*" or re.fullmatch(matcher, tool):
            yield command, timeout


def _discover(args: argparse.Namespace) -> Server:
    found: dict[str, Any] = {}
    discovery = Path(args.data_dir).expanduser() / "serve.json"
    if discovery.is_file():
        try:
            found = json.loads(discovery.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {discovery}: {exc}", hint=START_HINT) from exc
    url = args.server or found.get("url")
    if not url:
        raise UserError(f"no Tracemark server is running here (no {discovery})", hint=START_HINT)
    if args.server and str(found.get("url") or "").rstrip("/") != args.server.rstrip("/"):
        found = {}  # serve.json belongs to another server: take nothing from it

    def pick(flag: str | None, key: str, variable: str) -> str:
        return str(flag or found.get(key) or os.environ.get(variable) or "").rstrip("/")

    server = Server(
        url=str(url).rstrip("/"),
        admin_token=pick(args.token, "admin_token", "TRACEMARK_ADMIN_TOKEN"),
        webhook_secret=pick(args.webhook_secret, "webhook_secret", "TRACEMARK_GITHUB_WEBHOOK_SECRET"),
        github_url=pick(args.github_url, "github_api_url", "GITHUB_API_URL"),
    )
    try:
        healthy = requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        healthy = False
    if not healthy:
        raise UserError(f"the Tracemark server at {server.url} does not answer", hint=START_HINT)
    if not server.admin_token:
        raise UserError("the demo needs the server's admin token", hint="pass --token (the one `make serve` printed)")
    if not server.webhook_secret or not server.github_url:
        raise UserError(
            "the demo needs serve's fake GitHub and webhook secret",
            hint="run it next to `make serve` (it reads .tracemark-data/serve.json), or pass --github-url and "
            "--webhook-secret",
        )
    try:
        fake = requests.get(f"{server.github_url}/_fake/state", timeout=5).status_code == 200
    except requests.RequestException:
        fake = False
    if not fake:
        raise UserError(
            f"the demo opens its pull request on serve's fake GitHub, but {server.github_url} is not one",
            hint="start `make serve` without GITHUB_API_URL / TRACEMARK_GITHUB_APP_ID (serve then runs a fake GitHub)",
        )
    return server


def _layout(directory: str | None) -> Layout:
    if directory:
        root = Path(directory).expanduser().resolve()
        if root.exists() and any(root.iterdir()):
            if not (root / MARKER_FILE).is_file():
                raise UserError(f"{root} is not empty and was not made by `tracemark demo`", hint="pick another --dir")
            for child in root.iterdir():  # an earlier demo's directory: start again from scratch
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="tracemark-demo-"))
    (root / MARKER_FILE).write_text("made by `tracemark demo`; the next demo with --dir here empties it\n")
    home = root / "home"
    (home / "config").mkdir(parents=True, mode=0o700)
    return Layout(root=root, repo=root / PROJECT, remote=root / "remote.git", home=home, claude=home / "claude")


def run_tour(args: argparse.Namespace) -> int:
    started = time.monotonic()
    server = _discover(args)
    layout = _layout(args.dir)

    def out(line: str) -> None:
        print(line, flush=True)

    out(f"Tracemark demo against {server.url}")
    Tour(server, layout, float(args.timeout), out).run()
    out(f"Done in {time.monotonic() - started:.0f}s.")
    return 0
