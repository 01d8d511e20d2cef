"""`tracemark sessions inspect TRANSCRIPT [--json]`: the evidence a transcript yields, offline."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from tracemark.errors import UserError

NAME = "sessions"
HELP = "inspect sessions: print the evidence a transcript yields (offline, no repository needed)"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    inspect = sub.add_parser("inspect", help="summarise a Claude Code or Cursor transcript as evidence")
    inspect.add_argument(
        "transcript",
        type=Path,
        help="transcript JSONL file, or a Claude Code session id (looked up under $CLAUDE_CONFIG_DIR/projects, "
        "default ~/.claude/projects)",
    )
    inspect.add_argument("--json", action="store_true", help="print the whole evidence envelope as JSON")
    inspect.add_argument("--agent", choices=("claude-code", "cursor", "auto"), default="auto")
    inspect.add_argument("--no-subagents", action="store_true", help="do not read subagent transcripts")
    inspect.add_argument(
        "--scan-secrets", action="store_true", help="also scan the transcript for secrets (redaction counts)"
    )


def _resolve(path: Path) -> Path:
    """A path as given, or the transcript of a Claude Code session id."""
    text = str(path)
    if path.exists() or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", text):
        return path
    root = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude") / "projects"
    matches = sorted(root.glob(f"*/{text}.jsonl")) if root.is_dir() else []
    return matches[0] if matches else path


def _agent(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return "claude-code"
    first = head.split(b"\n", 1)[0]
    return "cursor" if first.startswith(b'{"role"') else "claude-code"


def _fmt_usd(value: Any) -> str:
    return "unknown (unpriced model)" if value is None else f"${value:,.4f}"


def _print_summary(envelope: dict[str, Any]) -> None:
    data = envelope["data"]
    usage = data.get("usage", {})
    session, agent, model = data["session"], data["agent"], data.get("model", {})
    print(f"Session   {session['id']}  {session.get('slug', '')}".rstrip())
    print(f"Agent     {agent['name']} {agent.get('version', '')}".rstrip())
    print(f"Time      {session['started_at']} -> {session.get('ended_at', '')} ({session['duration_seconds']} s)")
    print(f"Model     {model.get('primary', '-')}  (used: {', '.join(model.get('models_used', [])) or '-'})")
    if usage.get("available") is False:
        print("Tokens    not reported by this agent")
    else:
        print(
            f"Tokens    in {usage['input_tokens']:,}  out {usage['output_tokens']:,}  "
            f"cache write {usage['cache_creation_input_tokens']:,} "
            f"(5m {usage['cache_creation_5m_input_tokens']:,} / 1h {usage['cache_creation_1h_input_tokens']:,})  "
            f"cache read {usage['cache_read_input_tokens']:,}  requests {usage['api_requests']}"
        )
        print(f"Cost      {_fmt_usd(usage.get('estimated_cost_usd'))}  (prices {usage['pricing_version']})")
        for name, per in usage.get("by_model", {}).items():
            cost = _fmt_usd(per["estimated_cost_usd"])
            print(f"  {name:<32} in {per['input_tokens']:,} out {per['output_tokens']:,} {cost}")
    tools = data.get("tools_used", {})
    top = ", ".join(f"{t['tool_name']} {t['invocation_count']}" for t in tools.get("summary", [])[:8])
    print(f"Tools     {tools.get('total_invocations', 0)} calls: {top or '-'}")
    conversation = data.get("conversation", {})
    print(f"Messages  {conversation.get('total_messages', 0)} ({conversation.get('tracemark_prompts', 0)} prompts)")
    for agent_info in data.get("subagents", []):
        found = "" if agent_info.get("tracemark_transcript_found") else " (transcript not found)"
        print(f"Subagent  {agent_info['id']} {agent_info.get('type', '')}{found}")
    redaction = envelope.get("tracemark", {}).get("redaction", {})
    if redaction.get("total"):
        print(f"Secrets   {redaction['total']} redacted: {redaction['rules']}")
    for warning in data.get("warnings", []):
        print(f"Warning   {warning}")


def run(args: argparse.Namespace) -> int:
    from tracemark.evidence_builder import evidence_from_transcript
    from tracemark.redact import Redaction
    from tracemark.transcript import TranscriptError, parse_claude_session, parse_cursor_session

    path: Path = _resolve(args.transcript)
    agent = _agent(path) if args.agent == "auto" else args.agent
    try:
        if agent == "cursor":
            if not path.is_file():
                raise TranscriptError(f"transcript not found: {path}")
            summary = parse_cursor_session(path, session_id=path.stem)
        else:
            summary = parse_claude_session(path, discover_subagents=not args.no_subagents)
    except TranscriptError as exc:
        raise UserError(str(exc), "pass the path of a Claude Code or Cursor transcript (.jsonl)") from exc
    redaction = Redaction()
    if args.scan_secrets:
        from tracemark.push import scan_transcript

        scan_transcript([path], redaction)
    envelope = evidence_from_transcript(summary, session_id=summary.session_id or path.stem, redaction=redaction)
    if args.json:
        print(json.dumps(envelope, indent=2))
    else:
        _print_summary(envelope)
    return 0
