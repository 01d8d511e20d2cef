"""The stable reader API over local capture state (used by evidence building and `tracemark status`).

    from tracemark.capture.records import load_commit_records, load_session, list_sessions

    for record in load_commit_records(repo_path):          # every commit with AI lines or a trailer
        for change in record.files:                          # per file, committed-file coordinates
            change.sessions["<id>"].ranges                   # [(start, end), ...] 1-based, inclusive
    state = load_session(repo_path, "<id>")                  # agent, model, transcript, prompts, tools...

`repo` may be any path inside the work tree (or a `tracemark.gitutil.Repo`). The on-disk format is
documented in docs/capture.md; these dataclasses are the contract, not the JSON.
"""
# os.path throughout, like the capture modules it drives
# ruff: noqa: PTH123, PTH208

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import NamedTuple

from tracemark import gitutil
from tracemark.capture.state import StateDir, valid_id

Range = tuple[int, int]


class PushRef(NamedTuple):
    """One line of a pre-push hook's standard input."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


@dataclass(frozen=True)
class SessionLines:
    """What one session contributed to one file of one commit."""

    ranges: list[Range]
    line_count: int
    removed: int
    agents: dict[str, list[Range]] = field(default_factory=dict)  # subagent id -> its ranges


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # A (added), M (modified), D (deleted), as git's --name-status
    lines_added: int
    lines_removed: int
    human_lines_added: int  # added lines no session wrote
    sessions: dict[str, SessionLines]


@dataclass(frozen=True)
class CommitRecord:
    sha: str
    parents: list[str]
    committed_at: int  # committer time, epoch seconds
    recorded_at: str  # ISO-8601 UTC
    session_ids: list[str]  # sessions with AI lines or removals in this commit
    trailer_session_ids: list[str]  # ids named by the commit message's trailers
    rewritten_from: list[str]  # the commits this one replaced (amend, rebase, squash)
    files: list[FileChange]


@dataclass(frozen=True)
class ToolEvent:
    at: str
    tool: str
    ok: bool
    tool_use_id: str | None = None
    files: list[str] = field(default_factory=list)
    command: str | None = None
    agent_id: str | None = None  # set for tool calls made inside a subagent
    duration_ms: float | None = None
    result: str | None = None  # attribution outcome when not plain "ok"


@dataclass
class Subagent:
    agent_id: str
    agent_type: str | None = None
    transcript_path: str | None = None
    tool_events: int = 0
    status: str | None = None


@dataclass
class SessionState:
    session_id: str
    agent: str = "claude-code"  # or "cursor"
    agent_version: str | None = None  # cursor_version for Cursor
    model: str | None = None  # first model reported by the agent (Claude: SessionStart only)
    models: list[str] = field(default_factory=list)
    transcript_path: str | None = None  # the latest reported; may not exist (yet/any more)
    cwd: str | None = None
    permission_mode: str | None = None  # the latest reported
    permission_modes: list[str] = field(default_factory=list)
    prompts: int = 0
    tool_events: list[ToolEvent] = field(default_factory=list)
    shell_commands: list[str] = field(default_factory=list)
    files_touched: list[str] = field(default_factory=list)
    subagents: dict[str, Subagent] = field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    end_reason: str | None = None
    last_event_at: str | None = None
    compactions: int = 0
    usage: dict[str, int] = field(default_factory=dict)  # Cursor `stop` token counts, summed
    background: bool | None = None


def _state_dir(repo: object) -> StateDir:
    if isinstance(repo, gitutil.Repo):
        return StateDir(repo.state_dir)
    found = gitutil.discover(os.fspath(repo))  # type: ignore[call-overload]
    if found is None:
        raise FileNotFoundError(f"not a git repository: {repo}")
    return StateDir(found.state_dir)


def _ranges(value: object) -> list[Range]:
    out: list[Range] = []
    if isinstance(value, list):
        for pair in value:
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) for x in pair):
                out.append((pair[0], pair[1]))
    return out


def _record(raw: dict[str, object]) -> CommitRecord:
    files: list[FileChange] = []
    for entry in raw.get("files") or []:  # type: ignore[attr-defined]
        if not isinstance(entry, dict):
            continue
        sessions: dict[str, SessionLines] = {}
        for sid, data in (entry.get("sessions") or {}).items():
            if isinstance(data, dict):
                agents = data.get("agents") if isinstance(data.get("agents"), dict) else {}
                sessions[str(sid)] = SessionLines(
                    ranges=_ranges(data.get("ranges")),
                    line_count=int(data.get("line_count") or 0),
                    removed=int(data.get("removed") or 0),
                    agents={str(k): _ranges(v) for k, v in (agents or {}).items()},
                )
        files.append(
            FileChange(
                path=str(entry.get("path")),
                status=str(entry.get("status") or "M"),
                lines_added=int(entry.get("lines_added") or 0),
                lines_removed=int(entry.get("lines_removed") or 0),
                human_lines_added=int(entry.get("human_lines_added") or 0),
                sessions=sessions,
            )
        )

    def strings(key: str) -> list[str]:
        value = raw.get(key)
        return [str(x) for x in value] if isinstance(value, list) else []

    return CommitRecord(
        sha=str(raw.get("sha")),
        parents=strings("parents"),
        committed_at=int(raw.get("committed_at") or 0),  # type: ignore[call-overload]
        recorded_at=str(raw.get("recorded_at") or ""),
        session_ids=strings("session_ids"),
        trailer_session_ids=strings("trailer_session_ids"),
        rewritten_from=strings("rewritten_from"),
        files=files,
    )


def load_commit_record(repo: object, sha: str) -> CommitRecord | None:
    sd = _state_dir(repo)
    if not all(c in "0123456789abcdef" for c in sha) or not 40 <= len(sha) <= 64:
        return None
    raw = sd.read_json(f"commits/{sha}.json")
    return _record(raw) if isinstance(raw, dict) else None


def load_commit_records(repo: object) -> list[CommitRecord]:
    """Every commit record, oldest commit first (records of unreachable commits included)."""
    sd = _state_dir(repo)
    try:
        names = sorted(os.listdir(sd.path("commits")))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        if name.endswith(".json"):
            raw = sd.read_json(f"commits/{name}")
            if isinstance(raw, dict) and isinstance(raw.get("sha"), str):
                records.append(_record(raw))
    records.sort(key=lambda record: (record.committed_at, record.recorded_at))
    return records


def list_sessions(repo: object) -> list[str]:
    sd = _state_dir(repo)
    try:
        names = os.listdir(sd.path("sessions"))
    except FileNotFoundError:
        return []
    return sorted(name[: -len(".jsonl")] for name in names if name.endswith(".jsonl"))


def _events(sd: StateDir, session_id: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    try:
        with open(sd.path("sessions", f"{session_id}.jsonl"), "rb") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                if isinstance(event, dict):
                    events.append(event)
    except FileNotFoundError:
        pass
    return events


def load_session(repo: object, session_id: str) -> SessionState | None:
    """The session folded from its event ledger, or None when nothing was recorded for it."""
    if not valid_id(session_id):
        return None
    events = _events(_state_dir(repo), session_id)
    if not events:
        return None
    state = SessionState(session_id=session_id)
    touched: dict[str, None] = {}
    for event in events:
        _fold(state, event, touched)
    state.files_touched = list(touched)
    return state


def _opt(event: dict[str, object], key: str) -> str | None:
    value = event.get(key)
    return value if isinstance(value, str) and value else None


def _fold(state: SessionState, event: dict[str, object], touched: dict[str, None]) -> None:  # noqa: PLR0912
    kind = event.get("e")
    at = _opt(event, "t")
    state.last_event_at = at or state.last_event_at
    if at and state.started_at is None:
        state.started_at = at
    if transcript := _opt(event, "transcript_path"):
        state.transcript_path = transcript
    if model := _opt(event, "model"):
        state.model = state.model or model
        if model not in state.models:
            state.models.append(model)
    if mode := _opt(event, "permission_mode"):
        state.permission_mode = mode
        if mode not in state.permission_modes:
            state.permission_modes.append(mode)
    agent_id = _opt(event, "agent_id")
    if kind == "start":
        state.agent = _opt(event, "agent") or state.agent
        state.agent_version = _opt(event, "cursor_version") or state.agent_version
        state.cwd = _opt(event, "cwd") or state.cwd
        if isinstance(event.get("background"), bool):
            state.background = bool(event["background"])
        if state.ended_at and at:
            state.ended_at = None  # resumed
    elif kind == "prompt":
        state.prompts += 1
    elif kind == "tool":
        files = [str(f) for f in event.get("files") or []]  # type: ignore[attr-defined]
        command = _opt(event, "command")
        duration = event.get("duration_ms")
        state.tool_events.append(
            ToolEvent(
                at=at or "",
                tool=str(event.get("tool")),
                ok=bool(event.get("ok", True)),
                tool_use_id=_opt(event, "id"),
                files=files,
                command=command,
                agent_id=agent_id,
                duration_ms=float(duration) if isinstance(duration, int | float) else None,
                result=_opt(event, "result"),
            )
        )
        if command:
            state.shell_commands.append(command)
        for name in files:
            touched.setdefault(name, None)
        if agent_id:
            state.subagents.setdefault(agent_id, Subagent(agent_id)).tool_events += 1
    elif kind == "subagent":
        sub_id = _opt(event, "subagent_id")
        if sub_id:
            sub = state.subagents.setdefault(sub_id, Subagent(sub_id))
            sub.agent_type = _opt(event, "agent_type") or sub.agent_type
            sub.status = _opt(event, "status") or sub.status
    elif kind == "subagent_stop" and agent_id:
        sub = state.subagents.setdefault(agent_id, Subagent(agent_id))
        sub.agent_type = _opt(event, "agent_type") or sub.agent_type
        sub.transcript_path = _opt(event, "agent_transcript_path") or sub.transcript_path
        sub.status = sub.status or "completed"
    elif kind == "compact":
        state.compactions += 1
    elif kind == "stop":
        for key in ("input_tokens", "output_tokens"):
            value = event.get(key)
            if isinstance(value, int):
                state.usage[key] = state.usage.get(key, 0) + value
    elif kind == "end":
        state.ended_at = at
        state.end_reason = _opt(event, "reason")
