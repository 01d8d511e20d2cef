"""Streaming parser for Claude Code transcripts (`reference/formats.md` §2).

One pass, line by line, over the main transcript and then over each subagent transcript; memory
grows with the number of distinct API responses, never with the file size (lines longer than
`MAX_LINE_BYTES` are skipped with a warning).

Usage rules (§2.3): one API response is written as several `assistant` records sharing
`message.id` (fallback `requestId`), each repeating `usage`; the LAST record holds the final
counts. Usage is counted once per response across every file of the session (resumed sessions
repeat records), per model; `<synthetic>` responses are not API calls. Subagent tokens come from
the subagent transcripts (`<session>/subagents/agent-<id>.jsonl`, or the older
`agent-<id>.jsonl` next to the main file), never from the `agent_progress` mirrors in the main
transcript, which are stream-start snapshots.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from tracemark.transcript.model import MAX_SHELL_COMMANDS, ShellCommand, SubagentSummary, TranscriptSummary, Usage
from tracemark_common import pricing

AGENT_NAME = "claude-code"
MAX_LINE_BYTES = 16 * 1024 * 1024
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})
SHELL_TOOLS = frozenset({"Bash", "PowerShell"})
EDIT_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
_EXIT_CODE = re.compile(r"Exit code (\d{1,3})")
SYNTHETIC_MODEL = "<synthetic>"
MAIN = "main"
_AGENT_FILE = re.compile(r"^agent-(?P<id>[A-Za-z0-9_-]{1,128})\.jsonl$")
_COMMAND_WRAPPER = ("<command-", "<local-command-")


class TranscriptError(Exception):
    """The transcript cannot be read at all (missing, a directory, unreadable)."""


@dataclass(slots=True)
class _Response:
    thread: str
    model: str
    tokens: pricing.TokenCounts
    fast: bool


def iter_lines(stream: BinaryIO, max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each line; None for a line longer than `max_line` (skipped
    without ever holding it in memory)."""
    number = 0
    while True:
        line = stream.readline(max_line + 1)
        if not line:
            return
        number += 1
        if len(line) > max_line and not line.endswith(b"\n"):
            while True:  # drain the rest of the oversized line
                rest = stream.readline(max_line)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, float) and 0 < value < float("inf"):
        return int(value)
    return 0


def token_counts(usage: object) -> pricing.TokenCounts:
    """Counts from a Messages API `usage` object; cache writes split 5m / 1h (writes without a
    split are 5m writes, as the API defaulted before the split existed)."""
    if not isinstance(usage, dict):
        return pricing.TokenCounts()
    total_write = _int(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation")
    w5 = w1 = 0
    if isinstance(split, dict):
        w5 = _int(split.get("ephemeral_5m_input_tokens"))
        w1 = _int(split.get("ephemeral_1h_input_tokens"))
    if total_write > w5 + w1:
        w5 += total_write - (w5 + w1)
    return pricing.TokenCounts(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_creation_5m_input_tokens=w5,
        cache_creation_1h_input_tokens=w1,
        cache_read_input_tokens=_int(usage.get("cache_read_input_tokens")),
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exit_code(block: dict[str, Any], result: object) -> int | None:
    """The exit code of a failed shell call: `Exit code N` in the result text, else None."""
    texts: list[str] = []
    for source in (block.get("content"), result):
        if isinstance(source, str):
            texts.append(source[:200])
        elif isinstance(source, list):
            texts.extend(str(b.get("text", ""))[:200] for b in source if isinstance(b, dict))
    for text in texts:
        found = _EXIT_CODE.search(text)
        if found:
            return int(found.group(1))
    return None


def _is_prompt(record: dict[str, Any], message: dict[str, Any]) -> bool:
    if record.get("isMeta") or record.get("isCompactSummary"):
        return False
    content = message.get("content")
    if isinstance(content, str):
        return not content.lstrip().startswith(_COMMAND_WRAPPER)
    if isinstance(content, list):
        has_text = False
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result":
                return False
            if block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str) and not text.lstrip().startswith(_COMMAND_WRAPPER):
                    has_text = True
        return has_text
    return False


class _Parser:
    """Accumulates over every file of one session."""

    def __init__(self, summary: TranscriptSummary) -> None:
        self.s = summary
        self.responses: dict[str, _Response] = {}
        self.seen_tool_ids: set[str] = set()
        self.tool_names: dict[str, str] = {}
        self.task_calls: dict[str, tuple[str, str]] = {}  # tool_use id -> (type, description)
        self.agent_calls: dict[str, str] = {}  # agentId -> tool_use id
        self.mirror_models: dict[str, set[str]] = {}  # agentId -> models seen in progress mirrors
        self.main_model_records: dict[str, int] = {}
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.permission_modes: set[str] = set()
        self.subagents: dict[str, SubagentSummary] = {}
        self.shell_by_id: dict[str, ShellCommand] = {}
        self.order = 0  # position of shell calls and successful edits, in transcript order
        self.last_edit = 0

    # --- one file -------------------------------------------------------------------------
    def read(self, path: Path, thread: str) -> None:
        try:
            stream = path.open("rb")
        except OSError as exc:
            if thread == MAIN:
                raise TranscriptError(f"cannot read transcript {path}: {exc.strerror or exc}") from exc
            self.s.warn(f"cannot read subagent transcript {path.name}: {exc.strerror or exc}")
            return
        with stream:
            last_bad = 0
            count = 0
            for number, line in iter_lines(stream):
                count = number
                if line is None:
                    self.s.warn(f"Line too long at {path.name}:{number} (over {MAX_LINE_BYTES} bytes), skipped")
                    continue
                self.s.bytes_read += len(line)
                if not line.strip():
                    continue
                try:
                    # JSON Lines are UTF-8: json.loads(bytes) would also guess UTF-16/32 from NUL
                    # bytes and read binary garbage as a record.
                    record = json.loads(line.decode("utf-8"))
                except ValueError:  # UnicodeDecodeError included
                    self.s.malformed_lines += 1
                    last_bad = number
                    self.s.warn(f"Malformed JSON at {path.name}:{number}")
                    continue
                if isinstance(record, dict):
                    self.s.records += 1
                    self.record(record, thread)
            if last_bad and last_bad == count:
                self.s.warn(f"{path.name}: the last line is incomplete (transcript still being written?)")

    def record(self, record: dict[str, Any], thread: str) -> None:
        kind = record.get("type")
        when = _parse_time(record.get("timestamp"))
        if when is not None:
            if self.first is None or when < self.first:
                self.first = when
            if self.last is None or when > self.last:
                self.last = when
        if thread == MAIN:
            self.envelope(record)
        if kind == "assistant":
            self.assistant(record, thread)
        elif kind == "user":
            self.user(record, thread)
        elif kind == "progress":
            if thread == MAIN:
                self.s.progress_messages += 1
                self.progress(record)
        elif kind == "system" and record.get("subtype") == "compact_boundary" and thread == MAIN:
            self.s.compactions += 1

    def envelope(self, record: dict[str, Any]) -> None:
        s = self.s
        for attr, key in (
            ("session_id", "sessionId"),
            ("agent_version", "version"),
            ("slug", "slug"),
            ("cwd", "cwd"),
            ("git_branch", "gitBranch"),
        ):
            if not getattr(s, attr):
                value = record.get(key)
                if isinstance(value, str) and value:
                    setattr(s, attr, value[:512])
        mode = record.get("permissionMode")
        if isinstance(mode, str) and mode and len(self.permission_modes) < 16:
            self.permission_modes.add(mode[:64])

    def assistant(self, record: dict[str, Any], thread: str) -> None:
        # Everything in the main file is the main thread ("the main transcript alone"), including
        # the inline sidechain records of Claude Code builds before 2.0.64.
        message = record.get("message")
        if not isinstance(message, dict):
            return
        if thread == MAIN:
            self.s.assistant_messages += 1
        model = message.get("model")
        model = model[:128] if isinstance(model, str) and model else "unknown"
        synthetic = model == SYNTHETIC_MODEL  # locally generated: not an API call, usage all zero
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    self.tool_use(block, thread)
        if synthetic:
            return
        if thread == MAIN:
            self.main_model_records[model] = self.main_model_records.get(model, 0) + 1
        key = message.get("id") or record.get("requestId") or record.get("uuid")
        if not isinstance(key, str) or not key:
            key = f"anon:{len(self.responses)}"
        usage = message.get("usage")
        previous = self.responses.get(key)
        if previous is not None and not isinstance(usage, dict):
            return  # a duplicate without usage never erases the counts already seen
        fast = isinstance(usage, dict) and usage.get("speed") == "fast"
        response = _Response(
            thread=previous.thread if previous else thread, model=model, tokens=token_counts(usage), fast=fast
        )
        self.responses[key] = response  # the last record of a response holds the final counts

    def tool_use(self, block: dict[str, Any], thread: str) -> None:
        tool_id = block.get("id")
        name = block.get("name")
        if not isinstance(name, str) or not name:
            return
        name = name[:128]
        if isinstance(tool_id, str) and tool_id:
            if tool_id in self.seen_tool_ids:
                return
            self.seen_tool_ids.add(tool_id)
            self.tool_names[tool_id] = name
        tool_input = block.get("input")
        if thread == MAIN:
            self.s.tool_counts[name] = self.s.tool_counts.get(name, 0) + 1
        else:
            agent = self._agent(thread.removeprefix("agent:"))
            agent.tool_counts[name] = agent.tool_counts.get(name, 0) + 1
        if not isinstance(tool_input, dict):
            return
        if name in SHELL_TOOLS and thread == MAIN:
            command = tool_input.get("command")
            if isinstance(command, str) and command and len(self.s.shell_commands) < MAX_SHELL_COMMANDS:
                self.order += 1
                shell = ShellCommand(command=command[:4096], tool=name, order=self.order)
                self.s.shell_commands.append(shell)
                if isinstance(tool_id, str):
                    self.shell_by_id[tool_id] = shell
        elif name in SUBAGENT_TOOLS and isinstance(tool_id, str):
            kind = tool_input.get("subagent_type")
            description = tool_input.get("description")
            self.task_calls[tool_id] = (
                kind[:128] if isinstance(kind, str) else "",
                description[:512] if isinstance(description, str) else "",
            )

    def user(self, record: dict[str, Any], thread: str) -> None:
        if thread != MAIN:
            return
        self.s.user_messages += 1
        message = record.get("message")
        if not isinstance(message, dict):
            return
        if record.get("isSidechain") is not True and _is_prompt(record, message):
            self.s.prompts += 1
        content = message.get("content")
        if not isinstance(content, list):
            return
        result = record.get("toolUseResult")
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str):
                continue
            name = self.tool_names.get(tool_id, "unknown")
            failed = block.get("is_error") is True
            if failed:
                self.s.tool_failures[name] = self.s.tool_failures.get(name, 0) + 1
            shell = self.shell_by_id.get(tool_id)
            if shell is not None:
                shell.exit_code = _exit_code(block, result) if failed else 0
            elif name in EDIT_TOOLS and not failed:
                self.order += 1
                self.last_edit = self.order
            if name in SUBAGENT_TOOLS and isinstance(result, dict):
                agent_id = result.get("agentId")
                if isinstance(agent_id, str) and agent_id:
                    self.agent_calls.setdefault(agent_id[:128], tool_id)

    def progress(self, record: dict[str, Any]) -> None:
        data = record.get("data")
        if not isinstance(data, dict) or data.get("type") != "agent_progress":
            return
        agent_id = data.get("agentId")
        if not isinstance(agent_id, str) or not agent_id:
            return
        agent_id = agent_id[:128]
        parent = record.get("parentToolUseID")
        if isinstance(parent, str) and parent:
            self.agent_calls.setdefault(agent_id, parent)
        outer = data.get("message")
        inner = outer.get("message") if isinstance(outer, dict) else None
        model = inner.get("model") if isinstance(inner, dict) else None
        if isinstance(model, str) and model and model != SYNTHETIC_MODEL and len(self.mirror_models) < 1000:
            self.mirror_models.setdefault(agent_id, set()).add(model[:128])

    def _agent(self, agent_id: str) -> SubagentSummary:
        agent = self.subagents.get(agent_id)
        if agent is None:
            agent = self.subagents[agent_id] = SubagentSummary(id=agent_id)
        return agent

    # --- totals ---------------------------------------------------------------------------
    def _count_usage(self) -> None:
        s = self.s
        for response in self.responses.values():
            price = pricing.lookup(response.model)
            if price is not None:
                cost: float | None = pricing.request_cost(price, response.tokens, fast=response.fast)
            elif response.tokens == pricing.TokenCounts():
                cost = 0.0  # nothing used: nothing to price, whatever the model
            else:
                cost = None
                s.unknown_models.add(response.model)
            s.usage.add(response.tokens, cost)
            s.by_model.setdefault(response.model, Usage()).add(response.tokens, cost)
            if response.thread == MAIN:
                s.main_thread.add(response.tokens, cost)
            else:
                agent = self._agent(response.thread.removeprefix("agent:"))
                agent.usage.add(response.tokens, cost)
                agent.models.add(response.model)
        for model in sorted(s.unknown_models):
            s.warn(f"Unknown model '{model}': no price in table {pricing.PRICING_VERSION}; its cost is not estimated")

    def _name_subagents(self) -> None:
        """Subagent ids come from Task/Agent results, progress mirrors and transcript files."""
        for agent_id in self.agent_calls:
            self._agent(agent_id)
        for agent_id, agent in self.subagents.items():
            call = self.agent_calls.get(agent_id)
            if call and call in self.task_calls:
                kind, description = self.task_calls[call]
                agent.type = agent.type or kind
                agent.description = agent.description or description
            if not agent.transcript_found:
                agent.models |= self.mirror_models.get(agent_id, set())
                self.s.warn(f"Subagent {agent_id}: transcript not found, its tokens are not counted")

    def finish(self) -> TranscriptSummary:
        s = self.s
        self._count_usage()
        self._name_subagents()
        s.subagents = sorted(self.subagents.values(), key=lambda a: a.id)
        models = set(s.by_model)
        for agent in s.subagents:
            models |= agent.models
        s.models_used = sorted(models - {"unknown"}) if models - {"unknown"} else sorted(models)
        if self.main_model_records:
            s.primary_model = min(self.main_model_records.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        elif s.models_used:
            s.primary_model = s.models_used[0]
        if self.first is not None and self.last is not None:
            s.started_at = format_time(self.first)
            s.ended_at = format_time(self.last)
            s.duration_seconds = max(0, int((self.last - self.first).total_seconds()))
        s.permission_modes = sorted(self.permission_modes)
        for shell in s.shell_commands:
            shell.after_last_edit = shell.order > self.last_edit if self.last_edit else None
        if s.usage.cost_usd is not None:
            s.usage.cost_usd = pricing.round_usd(s.usage.cost_usd)
        return s


def find_subagent_transcripts(main: Path, session_id: str = "") -> list[Path]:
    """Subagent transcripts of the session whose main transcript is `main`: the current layout
    `<dir>/<session>/subagents/agent-*.jsonl`, and the older `<dir>/agent-*.jsonl` when its
    records name this session."""
    session = session_id or main.stem
    found: list[Path] = []
    current = main.parent / session / "subagents"
    if current.is_dir():
        found.extend(sorted(p for p in current.iterdir() if _AGENT_FILE.match(p.name) and p.is_file()))
    for candidate in sorted(main.parent.glob("agent-*.jsonl")):
        if _AGENT_FILE.match(candidate.name) and _first_session_id(candidate) == session:
            found.append(candidate)
    return found


def _first_session_id(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            for _, line in iter_lines(stream, 1024 * 1024):
                if line is None:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("sessionId"), str):
                    return str(record["sessionId"])
    except OSError:
        return ""
    return ""


def _agent_meta(path: Path) -> dict[str, Any]:
    meta = path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")
    try:
        if meta.is_file() and meta.stat().st_size < 1024 * 1024:
            loaded = json.loads(meta.read_bytes())
            return loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        return {}
    return {}


def parse_session(
    main: str | Path, *, subagent_paths: Iterable[str | Path] | None = None, discover_subagents: bool = True
) -> TranscriptSummary:
    """Parse a Claude Code session: its main transcript plus every subagent transcript (found
    next to it, and/or given explicitly, e.g. from SubagentStop's `agent_transcript_path`);
    each file is read exactly once."""
    main_path = Path(main)
    if not main_path.is_file():
        raise TranscriptError(f"transcript not found: {main_path}")
    summary = TranscriptSummary(agent_name=AGENT_NAME)
    parser = _Parser(summary)
    parser.read(main_path, MAIN)
    paths: list[Path] = []
    if discover_subagents:
        paths.extend(find_subagent_transcripts(main_path, summary.session_id))
    paths.extend(Path(p) for p in subagent_paths or ())
    seen: set[Path] = set()
    for path in paths:
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if resolved in seen or resolved == main_path.resolve():
            continue
        seen.add(resolved)
        match = _AGENT_FILE.match(path.name)
        agent_id = match.group("id") if match else path.stem
        agent = parser._agent(agent_id)
        agent.transcript_found = True
        meta = _agent_meta(path)
        if isinstance(meta.get("agentType"), str):
            agent.type = meta["agentType"][:128]
        if isinstance(meta.get("description"), str):
            agent.description = meta["description"][:512]
        parser.read(path, f"agent:{agent_id}")
    return parser.finish()
