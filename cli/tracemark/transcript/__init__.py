"""Transcript parsing: Claude Code JSONL (streaming, usage de-duplicated per API response) and
Cursor agent transcripts. `parse_claude_session(path)` is the entry point most callers want."""

from __future__ import annotations

from tracemark.transcript.claude import TranscriptError, find_subagent_transcripts
from tracemark.transcript.claude import parse_session as parse_claude_session
from tracemark.transcript.cursor import ReportedTurn
from tracemark.transcript.cursor import parse_session as parse_cursor_session
from tracemark.transcript.model import ShellCommand, SubagentSummary, TranscriptSummary, Usage

__all__ = [
    "ReportedTurn",
    "ShellCommand",
    "SubagentSummary",
    "TranscriptError",
    "TranscriptSummary",
    "Usage",
    "find_subagent_transcripts",
    "parse_claude_session",
    "parse_cursor_session",
]
