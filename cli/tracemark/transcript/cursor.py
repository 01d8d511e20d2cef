"""Cursor agent transcripts (`reference/formats.md` §3.4): role/message lines with no ids,
timestamps, model or usage. Cursor reports tokens only through its `stop` hook
(`input_tokens`/`output_tokens` per turn, no cache split); without those the evidence carries no
usage and the documented warning, as Chainloop does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracemark.transcript.claude import MAX_LINE_BYTES, TranscriptError, iter_lines
from tracemark.transcript.model import MAX_SHELL_COMMANDS, ShellCommand, TranscriptSummary
from tracemark_common import pricing

AGENT_NAME = "cursor"
NO_USAGE_WARNING = "Cursor does not report token usage in its transcript; usage and cost are not available"
SHELL_TOOLS = frozenset({"Shell", "Bash", "run_terminal_cmd"})


@dataclass(frozen=True)
class ReportedTurn:
    """Tokens of one turn as reported by Cursor's `stop` hook."""

    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""


def parse_session(
    path: str | Path | None,
    *,
    session_id: str = "",
    model: str = "",
    agent_version: str = "",
    reported_turns: Iterable[ReportedTurn] = (),
) -> TranscriptSummary:
    """Summarise a Cursor session from its transcript (if any) plus hook-reported facts."""
    summary = TranscriptSummary(agent_name=AGENT_NAME, session_id=session_id, agent_version=agent_version)
    if path is not None:
        _read(Path(path), summary)
    turns = list(reported_turns)
    if turns:
        for turn in turns:
            turn_model = turn.model or model or "unknown"
            tokens = pricing.TokenCounts(
                input_tokens=max(0, turn.input_tokens), output_tokens=max(0, turn.output_tokens)
            )
            price = pricing.lookup(turn_model)
            cost = pricing.request_cost(price, tokens) if price else None
            if price is None:
                summary.unknown_models.add(turn_model)
            summary.usage.add(tokens, cost)
            summary.main_thread.add(tokens, cost)
            summary.by_model.setdefault(turn_model, type(summary.usage)()).add(tokens, cost)
        summary.warn("Cursor reports tokens per turn without a cache split; cache tokens are not counted")
        for name in sorted(summary.unknown_models):
            summary.warn(
                f"Unknown model '{name}': no price in table {pricing.PRICING_VERSION}; its cost is not estimated"
            )
    else:
        summary.usage_available = False
        summary.usage.cost_usd = None
        summary.main_thread.cost_usd = None
        summary.warn(NO_USAGE_WARNING)
    models = set(summary.by_model) | ({model} if model else set())
    summary.models_used = sorted(models)
    summary.primary_model = model or (summary.models_used[0] if summary.models_used else "")
    return summary


def _read(path: Path, summary: TranscriptSummary) -> None:
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise TranscriptError(f"cannot read transcript {path}: {exc.strerror or exc}") from exc
    with stream:
        for number, line in iter_lines(stream):
            if line is None:
                summary.warn(f"Line too long at {path.name}:{number} (over {MAX_LINE_BYTES} bytes), skipped")
                continue
            summary.bytes_read += len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                summary.malformed_lines += 1
                summary.warn(f"Malformed JSON at {path.name}:{number}")
                continue
            if isinstance(record, dict):
                summary.records += 1
                _record(record, summary)


def _record(record: Mapping[str, Any], summary: TranscriptSummary) -> None:
    role = record.get("role")
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if role == "user":
        summary.user_messages += 1
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "text" for b in content):
            summary.prompts += 1
    elif role == "assistant":
        summary.assistant_messages += 1
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    name = block.get("name")
                    if isinstance(name, str) and name:
                        summary.tool_counts[name[:128]] = summary.tool_counts.get(name[:128], 0) + 1
                        tool_input = block.get("input")
                        command = tool_input.get("command") if isinstance(tool_input, dict) else None
                        keep = len(summary.shell_commands) < MAX_SHELL_COMMANDS
                        if name in SHELL_TOOLS and isinstance(command, str) and command and keep:
                            summary.shell_commands.append(ShellCommand(command=command[:4096], tool=name))
