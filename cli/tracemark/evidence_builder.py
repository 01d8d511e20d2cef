"""Build one evidence document per session (SPEC §2.5).

`evidence_from_transcript` turns a parsed transcript into the Chainloop envelope (what
`tracemark sessions inspect` prints). At push time `build_session_evidence` adds what only the
repository knows: `code_changes` from the commit records written by the capture hooks, and
`git_context` with `tracemark_commits[]`. Everything that leaves the machine is redacted first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tracemark import __version__
from tracemark.redact import Redaction, redact_text, strip_url_credentials
from tracemark.transcript.model import MAX_SHELL_COMMANDS, TranscriptSummary, Usage
from tracemark_common import pricing
from tracemark_common.evidence import (
    Agent,
    CodeChanges,
    EvidenceData,
    EvidenceEnvelope,
    FileChange,
    FileStatus,
    LineRange,
    Session,
    validate_envelope,
)

PROVIDERS = {"claude-code": "anthropic"}


# --- commit facts (from the capture records + git) ------------------------------------------
@dataclass
class FileLines:
    """One file of one commit: git's counts, and the AI lines each session wrote or removed.

    `ai_ranges[session]` are 1-based inclusive (start, end) ranges in the committed file;
    `ai_removed[session]` is how many removed lines that session's agent tools removed (None:
    unknown, then every removed line of a file the session touched counts as its, as Chainloop
    does)."""

    path: str
    status: str = "modified"  # created | modified | deleted | renamed
    lines_added: int = 0
    lines_removed: int = 0
    old_path: str | None = None
    ai_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    ai_removed: dict[str, int | None] = field(default_factory=dict)


@dataclass
class CommitFacts:
    sha: str
    subject: str = ""
    timestamp: str = ""
    signature: str = "N"  # git's %G? letter
    session_ids: list[str] = field(default_factory=list)
    rewritten_from: list[str] = field(default_factory=list)
    files: list[FileLines] = field(default_factory=list)


def _range_lines(ranges: Iterable[tuple[int, int]]) -> int:
    covered: set[int] = set()
    for start, end in ranges:
        if 1 <= start <= end:
            covered.update(range(start, min(end, start + 1_000_000) + 1))
    return len(covered)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted((s, e) for s, e in ranges if 1 <= s <= e):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass
class _FileTotals:
    path: str
    status: str
    old_path: str | None = None
    added: int = 0
    removed: int = 0
    ai_added: int = 0
    ai_removed: int = 0
    other_added: int = 0
    other_removed: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)


def _status(value: str) -> FileStatus:
    if value == "created":
        return "created"
    if value == "deleted":
        return "deleted"
    if value == "renamed":
        return "renamed"
    return "modified"


def compute_code_changes(session_id: str, commits: Sequence[CommitFacts]) -> CodeChanges:
    """Sum the session's commits file by file. Per commit and file: AI lines added = this
    session's range lines (at most the lines git counts as added); other sessions' lines next;
    the rest is human. So ai + human + other = totals, always."""
    files: dict[str, _FileTotals] = {}
    for commit in commits:
        for item in commit.files:
            totals = files.get(item.path)
            if totals is None:
                totals = files[item.path] = _FileTotals(item.path, item.status, item.old_path)
            elif item.status == "deleted" or totals.status == "deleted":
                totals.status = item.status
            added, removed = max(0, item.lines_added), max(0, item.lines_removed)
            totals.added += added
            totals.removed += removed
            mine = item.ai_ranges.get(session_id, [])
            ai_added = min(_range_lines(mine), added)
            others = [r for sid, rs in item.ai_ranges.items() if sid != session_id for r in rs]
            other_added = min(_range_lines(others), added - ai_added)
            touched = session_id in item.ai_ranges or session_id in item.ai_removed
            known = item.ai_removed.get(session_id)
            ai_removed = min(known, removed) if known is not None else (removed if touched else 0)
            other_removed = 0
            for sid, count in item.ai_removed.items():
                if sid != session_id and count is not None:
                    other_removed += count
            other_removed = min(other_removed, removed - ai_removed)
            totals.ai_added += ai_added
            totals.ai_removed += ai_removed
            totals.other_added += other_added
            totals.other_removed += other_removed
            if item.status != "deleted":
                totals.ranges = merge_ranges([*totals.ranges, *mine])
    changes = CodeChanges()
    for path in sorted(files):
        t = files[path]
        human_added = t.added - t.ai_added - t.other_added
        human_removed = t.removed - t.ai_removed - t.other_removed
        ai_total, human_total, other_total = (
            t.ai_added + t.ai_removed,
            human_added + human_removed,
            t.other_added + t.other_removed,
        )
        if ai_total and (human_total or other_total):
            label = "mixed"
        elif ai_total:
            label = "ai"
        else:
            label = "human"
        changes.files.append(
            FileChange(
                path=path,
                status=_status(t.status),
                lines_added=t.added,
                lines_removed=t.removed,
                attribution="ai" if ai_total else "human",
                line_ranges=[LineRange(start=s, end=e) for s, e in t.ranges] or None,
                session_ids=[session_id] if ai_total else None,
                tracemark_attribution=label,
                tracemark_ai_lines_added=t.ai_added,
                tracemark_ai_lines_removed=t.ai_removed,
                tracemark_other_ai_lines_added=t.other_added or None,
                tracemark_other_ai_lines_removed=t.other_removed or None,
                tracemark_old_path=t.old_path,
            )
        )
        changes.lines_added += t.added
        changes.lines_removed += t.removed
        changes.ai_lines_added += t.ai_added
        changes.ai_lines_removed += t.ai_removed
        changes.tracemark_other_ai_lines_added += t.other_added
        changes.tracemark_other_ai_lines_removed += t.other_removed
        changes.human_lines_added += human_added
        changes.human_lines_removed += human_removed
        if t.status == "created":
            changes.files_created += 1
        elif t.status == "deleted":
            changes.files_deleted += 1
        elif t.status == "renamed":
            changes.tracemark_files_renamed += 1
            changes.files_modified += 1
        else:
            changes.files_modified += 1
    return changes


def _commit_entry(commit: CommitFacts, session_id: str) -> dict[str, Any]:
    """One commit of the session: its files, this session's AI line ranges, and its line counts
    (all lines, this session's AI lines, other sessions' AI lines) so each commit counts once."""
    changes = compute_code_changes(session_id, [commit])
    return {
        "sha": commit.sha,
        "files": sorted(f.path for f in commit.files),
        "line_ranges": {
            f.path: [{"start": s, "end": e} for s, e in merge_ranges(f.ai_ranges.get(session_id, []))]
            for f in commit.files
            if f.ai_ranges.get(session_id)
        },
        "lines_added": changes.lines_added,
        "lines_removed": changes.lines_removed,
        "ai_lines_added": changes.ai_lines_added,
        "ai_lines_removed": changes.ai_lines_removed,
        "other_ai_lines_added": changes.tracemark_other_ai_lines_added,
        "other_ai_lines_removed": changes.tracemark_other_ai_lines_removed,
        "rewritten_from": list(commit.rewritten_from),
        "signature": commit.signature,
        "session_ids": list(commit.session_ids),
    }


def git_context(
    *,
    summary: TranscriptSummary | None,
    commits: Sequence[CommitFacts],
    repository: str = "",
    branch: str = "",
    remotes: Mapping[str, str] | None = None,
    session_id: str = "",
) -> dict[str, Any]:
    """Chainloop's git_context (remote URLs stripped of credentials) plus `tracemark_commits`."""
    ordered = sorted(commits, key=lambda c: c.timestamp)
    context: dict[str, Any] = {}
    if repository:
        context["repository"] = strip_url_credentials(repository)
    branch = branch or (summary.git_branch if summary else "")
    if branch:
        context["branch"] = branch
    if summary and summary.cwd:
        context["work_dir"] = summary.cwd
    if ordered:
        context["commit_start"] = ordered[0].sha
        context["commit_end"] = ordered[-1].sha
        context["commits"] = [f"{c.sha} {redact_text(c.subject)[0]}".strip() for c in ordered]
        context["commit_count"] = len(ordered)
        context["tracemark_commits"] = [_commit_entry(c, session_id) for c in ordered]
    if remotes:
        context["tracemark_remotes"] = {name: strip_url_credentials(url) for name, url in sorted(remotes.items())}
    return context


# --- transcript -> evidence -------------------------------------------------------------------
def _usage_counts(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_creation_5m_input_tokens": usage.cache_creation_5m_input_tokens,
        "cache_creation_1h_input_tokens": usage.cache_creation_1h_input_tokens,
        "api_requests": usage.requests,
        "estimated_cost_usd": None if usage.cost_usd is None else pricing.round_usd(usage.cost_usd),
    }


def usage_section(summary: TranscriptSummary) -> dict[str, Any]:
    section = _usage_counts(summary.usage)
    section["by_model"] = {model: _usage_counts(u) for model, u in sorted(summary.by_model.items())}
    section["main_thread"] = _usage_counts(summary.main_thread)
    section["pricing_version"] = pricing.PRICING_VERSION
    if summary.unknown_models:
        section["unpriced_models"] = sorted(summary.unknown_models)
        priced = sum(u.cost_usd or 0.0 for u in summary.by_model.values())
        section["estimated_cost_usd_priced_models"] = pricing.round_usd(priced)
    if not summary.usage_available:
        section["available"] = False
    return section


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def evidence_from_transcript(
    summary: TranscriptSummary,
    *,
    session_id: str = "",
    code_changes: CodeChanges | None = None,
    context: dict[str, Any] | None = None,
    warnings: Iterable[str] = (),
    redaction: Redaction | None = None,
    fallback_started_at: str = "",
    fallback_ended_at: str = "",
) -> dict[str, Any]:
    """The evidence envelope (a dict, validated against the 0.1 schema) for one session."""
    redaction = redaction if redaction is not None else Redaction()

    def clean(text: str) -> str:
        result, found = redact_text(text)
        redaction.__iadd__(found)
        return result

    started = summary.started_at or fallback_started_at or _now()
    ended = summary.ended_at or fallback_ended_at or started
    duration = summary.duration_seconds
    if not summary.started_at:
        try:
            duration = max(0, int((datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()))
        except ValueError:
            duration = 0
    model: dict[str, Any] = {"models_used": summary.models_used}
    if summary.primary_model:
        model["primary"] = summary.primary_model
    if summary.agent_name in PROVIDERS:
        model["provider"] = PROVIDERS[summary.agent_name]
    tool_summary = [
        {"tool_name": name, "invocation_count": count}
        for name, count in sorted(summary.tool_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    tools: dict[str, Any] = {
        "summary": tool_summary,
        "total_invocations": sum(summary.tool_counts.values()),
        "tracemark_failures": dict(sorted(summary.tool_failures.items())),
        "tracemark_failed_invocations": sum(summary.tool_failures.values()),
        "tracemark_shell_commands": [
            {
                "command": clean(c.command),
                "tool": c.tool,
                "exit_code": c.exit_code,
                "after_last_edit": c.after_last_edit,
            }
            for c in summary.shell_commands[:MAX_SHELL_COMMANDS]
        ],
    }
    conversation = {
        "total_messages": summary.total_messages,
        "user_messages": summary.user_messages,
        "assistant_messages": summary.assistant_messages,
        "tracemark_prompts": summary.prompts,
        "tracemark_api_requests": summary.usage.requests,
        "tracemark_compactions": summary.compactions,
        "tracemark_permission_modes": summary.permission_modes,
    }
    subagents = [
        {
            "id": agent.id,
            "type": agent.type,
            "description": clean(agent.description),
            "tokens": {"input": agent.usage.input_tokens, "output": agent.usage.output_tokens},
            "tracemark_models": sorted(agent.models),
            "tracemark_usage": _usage_counts(agent.usage),
            "tracemark_transcript_found": agent.transcript_found,
            "tracemark_tool_invocations": sum(agent.tool_counts.values()),
        }
        for agent in summary.subagents
    ]
    all_warnings = [clean(w) for w in [*summary.warnings, *warnings]]
    ctx = dict(context) if context is not None else git_context(summary=summary, commits=[])
    data = EvidenceData(
        agent=Agent(name=summary.agent_name, version=summary.agent_version or None),
        session=Session(
            id=session_id or summary.session_id or "unknown",
            slug=summary.slug or None,
            started_at=started,
            ended_at=ended,
            duration_seconds=duration,
        ),
        git_context=ctx or None,
        code_changes=code_changes,
        model=model,
        usage=usage_section(summary),
        tools_used=tools,
        conversation=conversation,
        subagents=subagents or None,
        warnings=all_warnings or None,
    )
    envelope = EvidenceEnvelope(
        data=data,
        tracemark={
            "cli_version": __version__,
            "redaction": redaction.as_dict(),
            "redactions": dict(sorted(redaction.counts.items())),  # the same counts, flat {rule: count}
            "transcript": {
                "records": summary.records,
                "bytes": summary.bytes_read,
                "malformed_lines": summary.malformed_lines,
            },
        },
    ).to_dict()
    validate_envelope(envelope)
    return envelope
