"""Claude Code and Cursor hook handlers: append an event, snapshot or diff a file, nothing more.

`handle(source, event, raw)` never raises for bad input: it returns an Outcome that the hook
command writes to `log.txt`. Heavy work (transcripts, evidence) happens at push time.
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH109, PTH112, PTH117, PTH118, PTH120, PTH123

from __future__ import annotations

import json
import os

from tracemark import gitutil
from tracemark.capture import filestate
from tracemark.capture.state import StateDir, is_traced, now_iso, safe_key, sha256_hex, valid_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tracemark.gitutil import Repo

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_COMMAND_CHARS = 4000

FILE_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit", "StrReplace", "Delete"})
SHELL_TOOLS = frozenset({"Bash", "PowerShell", "Shell"})
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})
PATH_KEYS = ("file_path", "notebook_path", "path", "filePath")

CLAUDE_EVENTS = frozenset(
    {
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "Stop",
        "SubagentStop",
        "PreCompact",
        "SessionEnd",
    }
)
CURSOR_EVENTS = frozenset(
    {
        "sessionStart",
        "sessionEnd",
        "beforeSubmitPrompt",
        "afterFileEdit",
        "beforeShellExecution",
        "afterShellExecution",
        "preToolUse",
        "postToolUse",
        "postToolUseFailure",
        "stop",
    }
)
# Claude-format payloads relayed by Cursor use Claude's names; map them to Cursor's.
_CLAUDE_TO_CURSOR = {
    "SessionStart": "sessionStart",
    "SessionEnd": "sessionEnd",
    "UserPromptSubmit": "beforeSubmitPrompt",
    "PreToolUse": "preToolUse",
    "PostToolUse": "postToolUse",
    "PostToolUseFailure": "postToolUseFailure",
    "Stop": "stop",
}


class Outcome:
    __slots__ = ("detail", "result", "sd", "session")

    def __init__(self, result: str, session: str = "", detail: str = "", sd: StateDir | None = None) -> None:
        self.result = result
        self.session = session
        self.detail = detail
        self.sd = sd


def parse_payload(raw: bytes) -> dict[str, Any] | str:
    """The payload object, or a short reason why it is unusable."""
    if not raw.strip():
        return "empty stdin"
    if len(raw) > MAX_PAYLOAD_BYTES:
        return f"payload larger than {MAX_PAYLOAD_BYTES} bytes"
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeError:
            return "undecodable UTF-16 stdin"
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return f"not JSON ({type(exc).__name__})"
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    return payload


def _str(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def locate_repo(payload: dict[str, Any] | None, cursor: bool) -> Repo | None:
    """The repository the agent works in: the first traced one of Cursor's first workspace root,
    the payload's `cwd` (it follows `cd` into worktrees), CLAUDE_PROJECT_DIR, the process cwd; else
    the first repository found at all."""
    candidates: list[str] = []
    if payload is not None:
        roots = payload.get("workspace_roots")
        if cursor and isinstance(roots, list) and roots and isinstance(roots[0], str):
            candidates.append(roots[0])
        if _str(payload, "cwd"):
            candidates.append(_str(payload, "cwd"))
    project = os.environ.get("CLAUDE_PROJECT_DIR")
    if project:
        candidates.append(project)
    candidates.append(os.getcwd())
    first: Repo | None = None
    for candidate in candidates:
        if os.path.isabs(candidate) and os.path.isdir(candidate):
            repo = gitutil.discover(candidate)
            if repo is not None:
                if is_traced(repo):
                    return repo
                first = first or repo
    return first


def _cursor_hooks_installed(repo: Repo) -> bool:
    try:
        with open(os.path.join(repo.root, ".cursor", "hooks.json"), encoding="utf-8") as handle:
            return "tracemark hook cursor" in handle.read()
    except OSError:
        return False


def handle(source: str, event: str, raw: bytes) -> Outcome:
    cursor = source == "cursor"
    parsed = parse_payload(raw)
    payload = parsed if isinstance(parsed, dict) else None
    repo = locate_repo(payload, cursor)
    if repo is None:
        return Outcome("skipped", detail="not in a git repository")
    if not is_traced(repo):
        return Outcome("skipped", detail="tracemark is not set up in this repository")
    sd = StateDir(repo.state_dir)
    sd.ensure()
    if payload is None:
        return Outcome("bad-input", detail=str(parsed), sd=sd)
    session = _str(payload, "conversation_id") if cursor else ""
    session = session or _str(payload, "session_id")
    if not valid_id(session):
        return Outcome("bad-input", detail="missing or invalid session id", sd=sd)
    agent_name = "cursor" if cursor else "claude-code"
    if not cursor and "cursor_version" in payload:
        if _cursor_hooks_installed(repo):
            return Outcome("ignored", session, "payload relayed by Cursor; captured by the Cursor hooks", sd)
        cursor, agent_name = True, "cursor"
        event = _CLAUDE_TO_CURSOR.get(event, event)
    known = CURSOR_EVENTS if cursor else CLAUDE_EVENTS
    if event not in known:
        return Outcome("ignored", session, f"unknown event {event[:60]!r}", sd)
    payload_event = _str(payload, "hook_event_name")
    if payload_event and payload_event not in (event, _CLAUDE_TO_CURSOR.get(payload_event)):
        return Outcome("bad-input", session, f"payload is for {payload_event[:60]!r}", sd)
    ctx = _Context(repo, sd, session, agent_name, payload)
    result, detail = (_cursor if cursor else _claude)(ctx, event)
    return Outcome(result, session, detail, sd)


class _Context:
    __slots__ = ("agent", "agent_id", "owner", "payload", "repo", "sd", "session")

    def __init__(self, repo: Repo, sd: StateDir, session: str, agent: str, payload: dict[str, Any]) -> None:
        self.repo = repo
        self.sd = sd
        self.session = session
        self.agent = agent
        self.payload = payload
        agent_id = payload.get("agent_id")
        self.agent_id = agent_id if valid_id(agent_id) else ""
        self.owner = f"{session}/{self.agent_id}" if self.agent_id else session

    def append(self, kind: str, **fields: object) -> None:
        record: dict[str, object] = {"e": kind, "t": now_iso()}
        if self.agent_id:
            record["agent_id"] = self.agent_id
        record.update({k: v for k, v in fields.items() if v not in (None, "")})
        self.sd.append_jsonl(f"sessions/{self.session}.jsonl", record)

    def get(self, key: str) -> str:
        return _str(self.payload, key)

    def tool_key(self) -> str:
        tool_use_id = self.get("tool_use_id")
        if tool_use_id:
            return safe_key(f"{self.session}-{tool_use_id}")
        basis = json.dumps(self.payload.get("tool_input"), sort_keys=True, default=str)
        return safe_key(f"{self.session}-{self.get('tool_name')}-{sha256_hex(basis.encode())[:16]}")

    def locate(self, path: str) -> tuple[Repo, str] | None:
        """The traced work tree holding `path` (a nested or linked worktree is its own) and the
        path relative to it; None for paths outside any traced repository or inside `.git`."""
        if not path:
            return None
        if not os.path.isabs(path):
            path = os.path.join(self.get("cwd") or self.repo.root, path)
        path = os.path.normpath(path)
        repo = self.repo
        rel = repo.relpath(path)
        owner = gitutil.discover(os.path.dirname(path))
        if owner is not None and owner.root != repo.root and is_traced(owner):
            repo, rel = owner, owner.relpath(path)
        return None if rel is None else (repo, rel)


def _tool_path(tool_input: object) -> str:
    if isinstance(tool_input, dict):
        for key in PATH_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                return value
    return ""


def _ensure_git_hooks(ctx: _Context) -> str:
    from tracemark import installer

    try:
        return installer.ensure_git_hooks(ctx.repo)
    except Exception as exc:  # never break the agent; say it in the log
        return f"git hooks not installed: {exc}"


def _start(ctx: _Context) -> tuple[str, str]:
    p = ctx.payload
    ctx.append(
        "start",
        agent=ctx.agent,
        source=ctx.get("source"),
        model=ctx.get("model"),
        transcript_path=ctx.get("transcript_path"),
        cwd=ctx.get("cwd") or ctx.repo.root,
        permission_mode=ctx.get("permission_mode"),
        agent_type=ctx.get("agent_type"),
        cursor_version=ctx.get("cursor_version"),
        background=p.get("is_background_agent") if isinstance(p.get("is_background_agent"), bool) else None,
    )
    return "ok", _ensure_git_hooks(ctx)


def _prompt(ctx: _Context) -> tuple[str, str]:
    prompt = ctx.payload.get("prompt")
    ctx.append(
        "prompt",
        chars=len(prompt) if isinstance(prompt, str) else 0,
        prompt_id=ctx.get("prompt_id") or ctx.get("generation_id"),
        permission_mode=ctx.get("permission_mode"),
        model=ctx.get("model"),
        transcript_path=ctx.get("transcript_path"),
    )
    return "ok", _ensure_git_hooks(ctx)


def _pre_tool(ctx: _Context, tool: str, tool_input: object) -> tuple[str, str]:
    key = ctx.tool_key()
    if tool in FILE_TOOLS:
        found = ctx.locate(_tool_path(tool_input))
        if found is None:
            return "ignored", "path outside the repository"
        repo, rel = found
        try:
            return filestate.begin_tool(StateDir(repo.state_dir), repo, rel, key, ctx.owner), rel
        except filestate.SkipFile as exc:
            return "skipped", f"{rel}: {exc}"
    if tool in SHELL_TOOLS:
        from tracemark.capture import shell

        command = tool_input.get("command") if isinstance(tool_input, dict) else ""
        return shell.begin_shell(ctx.sd, ctx.repo, key, ctx.owner, str(command or "")[:MAX_COMMAND_CHARS]), ""
    return "ignored", f"tool {tool[:60]}"


def _post_tool(ctx: _Context, tool: str, tool_input: object, ok: bool) -> tuple[str, str]:
    key = ctx.tool_key()
    files: list[str] = []
    result, detail = "ignored", f"tool {tool[:60]}"
    command = ""
    if tool in FILE_TOOLS:
        found = ctx.locate(_tool_path(tool_input))
        if found is None:
            result, detail = "ignored", "path outside the repository"
        else:
            repo, rel = found
            try:
                outcome, count = filestate.end_tool(
                    StateDir(repo.state_dir), repo, rel, key, ctx.owner, fallback_pre=_fallback_pre(ctx)
                )
                result, detail = outcome, f"{rel} +{count}"
                files.append(rel)
            except filestate.SkipFile as exc:
                result, detail = "skipped", f"{rel}: {exc}"
    elif tool in SHELL_TOOLS:
        from tracemark.capture import shell

        command = str(tool_input.get("command") or "") if isinstance(tool_input, dict) else ""
        result, files, before = shell.end_shell(ctx.sd, ctx.repo, key, ctx.owner)
        command = command or before
        detail = f"{len(files)} file(s) changed"
    elif tool in SUBAGENT_TOOLS:
        response = ctx.payload.get("tool_response")
        agent_id = response.get("agentId") if isinstance(response, dict) else None
        ctx.append(
            "subagent",
            subagent_id=agent_id if valid_id(agent_id) else None,
            agent_type=tool_input.get("subagent_type") if isinstance(tool_input, dict) else None,
            status=response.get("status") if isinstance(response, dict) else None,
        )
        result, detail = "ok", "subagent"
    ctx.append(
        "tool",
        tool=tool[:100],
        id=ctx.get("tool_use_id") or None,
        ok=ok,
        files=files or None,
        command=command[:MAX_COMMAND_CHARS] or None,
        duration_ms=ctx.payload.get("duration_ms") or ctx.payload.get("duration"),
        result=result if result != "ok" else None,
    )
    return result, detail


def _fallback_pre(ctx: _Context) -> bytes | None:
    response = ctx.payload.get("tool_response")
    if isinstance(response, dict):
        original = response.get("originalFile")
        if isinstance(original, str):
            return original.encode("utf-8", "surrogateescape")
        if response.get("type") == "create":
            return b""
    return None


def _claude(ctx: _Context, event: str) -> tuple[str, str]:
    tool = ctx.get("tool_name")
    tool_input = ctx.payload.get("tool_input")
    if event == "SessionStart":
        return _start(ctx)
    if event == "UserPromptSubmit":
        return _prompt(ctx)
    if event == "PreToolUse":
        return _pre_tool(ctx, tool, tool_input)
    if event in ("PostToolUse", "PostToolUseFailure"):
        return _post_tool(ctx, tool, tool_input, event == "PostToolUse")
    if event == "Stop":
        ctx.append("stop", transcript_path=ctx.get("transcript_path"))
        filestate.release_session(ctx.sd, ctx.repo.root, ctx.session)
    elif event == "SubagentStop":
        ctx.append(
            "subagent_stop", agent_type=ctx.get("agent_type"), agent_transcript_path=ctx.get("agent_transcript_path")
        )
    elif event == "PreCompact":
        ctx.append("compact", trigger=ctx.get("trigger"))
    elif event == "SessionEnd":
        ctx.append("end", reason=ctx.get("reason"), transcript_path=ctx.get("transcript_path"))
        filestate.release_session(ctx.sd, ctx.repo.root, ctx.session)
    return "ok", ""


def _cursor(ctx: _Context, event: str) -> tuple[str, str]:
    p = ctx.payload
    if event == "sessionStart":
        return _start(ctx)
    if event == "beforeSubmitPrompt":
        return _prompt(ctx)
    if event == "afterFileEdit":
        return _cursor_file_edit(ctx)
    if event in ("beforeShellExecution", "afterShellExecution"):
        command = ctx.get("command")
        basis = f"{ctx.get('generation_id')}-{sha256_hex(command.encode('utf-8', 'surrogateescape'))[:16]}"
        ctx.payload = {**p, "tool_use_id": basis, "tool_input": {"command": command}}
        if event == "beforeShellExecution":
            return _pre_tool(ctx, "Shell", {"command": command})
        return _post_tool(ctx, "Shell", {"command": command}, True)
    tool = ctx.get("tool_name")
    tool_input = p.get("tool_input")
    if isinstance(tool_input, str):
        try:
            tool_input = json.loads(tool_input)
        except ValueError:
            tool_input = {}
    if event == "preToolUse":
        return _pre_tool(ctx, tool, tool_input)
    if event in ("postToolUse", "postToolUseFailure"):
        return _post_tool(ctx, tool, tool_input, event == "postToolUse")
    if event == "stop":
        tokens = {k: p.get(k) for k in ("input_tokens", "output_tokens") if isinstance(p.get(k), int)}
        ctx.append(
            "stop",
            status=ctx.get("status"),
            transcript_path=ctx.get("transcript_path"),
            model=ctx.get("model"),
            **tokens,
        )
    elif event == "sessionEnd":
        ctx.append("end", reason=ctx.get("reason"), transcript_path=ctx.get("transcript_path"))
    if event in ("stop", "sessionEnd"):
        filestate.release_session(ctx.sd, ctx.repo.root, ctx.session)
    return "ok", ""


def _reverse_apply(text: str, edits: list[tuple[str, str]]) -> str | None:
    """The text before `edits` were applied, or None when it cannot be rebuilt unambiguously."""
    for old, new in reversed(edits):
        if not new:
            if old:
                return None
            continue
        index = text.find(new)
        if index < 0 or text.find(new, index + 1) >= 0:
            return None
        text = text[:index] + old + text[index + len(new) :]
    return text


def _regions(text: str, edits: list[tuple[str, str]]) -> set[int]:
    """0-based line indices of `text` covered by an occurrence of some edit's new text."""
    covered: set[int] = set()
    for _old, new in edits:
        if not new.strip():
            continue
        start = text.find(new)
        while start >= 0:
            first = text.count("\n", 0, start)
            body = new[:-1] if new.endswith("\n") else new
            covered.update(range(first, first + body.count("\n") + 1))
            start = text.find(new, start + 1)
    return covered


def _cursor_file_edit(ctx: _Context) -> tuple[str, str]:
    found = ctx.locate(ctx.get("file_path"))
    if found is None:
        return "ignored", "path outside the repository"
    repo, rel = found
    sd = StateDir(repo.state_dir)
    raw_edits = ctx.payload.get("edits")
    edits: list[tuple[str, str]] = []
    if isinstance(raw_edits, list):
        for item in raw_edits:
            if isinstance(item, dict):
                old, new = item.get("old_string"), item.get("new_string")
                edits.append((old if isinstance(old, str) else "", new if isinstance(new, str) else ""))
    key = safe_key(f"{ctx.session}-{ctx.get('generation_id')}-edit-{sha256_hex(repr(edits).encode())[:16]}")
    try:
        post = filestate.read_file(os.path.join(repo.root, rel))
    except filestate.SkipFile as exc:
        return "skipped", f"{rel}: {exc}"
    text = (post or b"").decode("utf-8", "surrogateescape")
    before = _reverse_apply(text, edits)
    pre: bytes | None
    if before is not None:
        pre = before.encode("utf-8", "surrogateescape")
    else:
        known = filestate.FileState.load(sd, repo.root, rel).known_lines(sd)
        pre = b"".join(known) if known is not None else gitutil.cat_blobs(repo.root, [f":{rel}"]).get(f":{rel}")
    result, count = filestate.attribute(
        sd, repo, rel, pre, post, owner=ctx.owner, tool_key=key, allowed=_regions(text, edits)
    )
    ctx.append("tool", tool="afterFileEdit", ok=True, files=[rel], result=result if result != "ok" else None)
    return result, f"{rel} +{count}"
