"""The PR summary comment and the `Tracemark AI Policies` check run (SPEC §3.5). Pure.

The comment is found again by its hidden marker and stays under GitHub's 65,536-character limit:
when it would not fit, per-session file lists are shortened first, then whole breakdowns are
left out (with a note saying so), then table rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tracemark_common.prs.correlate import Correlation, FileRow, SessionRow
from tracemark_common.prs.score import CRITERIA, combine_scores

MARKER = "<!-- tracemark:ai-session-summary -->"
CHECK_NAME = "Tracemark AI Policies"
COMMENT_LIMIT = 65_536
COMMENT_BUDGET = COMMENT_LIMIT - 1_536  # headroom for the footer and notes
CHECK_TEXT_LIMIT = 65_535
FLAG_ICON = {"green": "🟢", "yellow": "🟡", "red": "🔴"}
FILES_WHEN_SHORT = 15


@dataclass(frozen=True)
class Links:
    repo_web_url: str  # https://github.com/owner/name
    head_sha: str
    dashboard_url: str = ""

    def blob(self, path: str) -> str:
        return f"{self.repo_web_url}/blob/{self.head_sha}/{quote(path)}"

    def session(self, session_id: str) -> str | None:
        if not self.dashboard_url:
            return None
        return f"{self.dashboard_url.rstrip('/')}/#/sessions/{quote(session_id, safe='')}"


def repo_web_url(html_url: str, full_name: str) -> str:
    """The repository's web URL from the PR's `html_url` as the API returned it."""
    match = re.match(r"^(https?://[^/\s]+(?:/[^\s]*)?)/pull/\d+$", html_url or "")
    if match and match.group(1).endswith(f"/{full_name}"):
        return match.group(1)
    return f"https://github.com/{full_name}"


# "@" + a zero-width space: shown as "@", but never a mention that notifies a user or a team.
_NO_MENTION = "@\u200b"


def _cell(text: str) -> str:
    """Text for a table cell: one line, no HTML, no code spans, links or mentions."""
    return re.sub(
        r"[|\r\n<>`\[\]@]",
        lambda m: {"|": "\\|", "<": "&lt;", ">": "&gt;", "@": _NO_MENTION}.get(m.group(), " "),
        text,
    )


def _text(text: str) -> str:
    """Text for a list item or a paragraph (outside tables): one line, no HTML, no code spans,
    no links, images or mentions (session data is untrusted: paths and commands come from the evidence)."""
    return re.sub(
        r"[\r\n`<>\[\]@]",
        lambda m: {"<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]", "@": _NO_MENTION}.get(m.group(), " "),
        text,
    )


def _code(text: str) -> str:
    """Text inside a code span: one line and no backtick; nothing in it is rendered."""
    return re.sub(r"[\r\n`]", " ", text)


def _link_text(text: str) -> str:
    """The text of a Markdown link inside a table: one line, no HTML, no nested links, cells or mentions."""
    return re.sub(
        r"[\r\n`<>\[\]|@]",
        lambda m: {"<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]", "|": "\\|", "@": _NO_MENTION}.get(m.group(), " "),
        text,
    )


def _tokens(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1_000:
        return f"{value / 1000:.1f}k"
    return str(value)


def _duration(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds}s"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _cost(value: float | None) -> str:
    return "–" if value is None else f"${value:,.2f}"


def _session_cell(row: SessionRow, links: Links) -> str:
    short = f"`{row.id[:8]}`"
    url = links.session(row.id)
    return f"[{short}]({url})" if url else short


def _table(rows: list[SessionRow], links: Links, limit: int | None = None) -> list[str]:
    lines = [
        (
            "| Session | Agent | Model | AI Session Score | AI attribution | Files | Lines +/− | Tokens in/out "
            "| Est. cost | Duration |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = rows if limit is None else rows[:limit]
    for row in shown:
        agent = _cell(f"{row.agent} {row.agent_version}".strip())
        lines.append(
            f"| {_session_cell(row, links)} | {agent} | {_cell(row.model)} "
            f"| {FLAG_ICON[row.score.flag]} {row.score.score} | {_pct(row.attribution_pct)} | {len(row.files)} "
            f"| +{row.lines_added} / −{row.lines_removed} | {_tokens(row.tokens_in)} / {_tokens(row.tokens_out)} "
            f"| {_cost(row.cost_usd)} | {_duration(row.duration_seconds)} |"
        )
    if len(shown) < len(rows):
        lines.append(f"| … {len(rows) - len(shown)} more sessions | | | | | | | | | |")
    if len(rows) > 1:
        score, flag = combine_scores([(r.score, r.ai_lines) for r in rows])
        added = sum(r.lines_added for r in rows)
        removed = sum(r.lines_removed for r in rows)
        total = added + removed
        pct = None if total == 0 else 100.0 * sum(r.ai_lines for r in rows) / total
        costs = [r.cost_usd for r in rows if r.cost_usd is not None]
        files = len({f.path for r in rows for f in r.files})
        lines.append(
            f"| **This PR** | {len(rows)} sessions | | **{FLAG_ICON[flag]} {score}** | {_pct(pct)} | {files} "
            f"| +{added} / −{removed} | {_tokens(sum(r.tokens_in for r in rows))} / "
            f"{_tokens(sum(r.tokens_out for r in rows))} | {_cost(sum(costs) if costs else None)} "
            f"| {_duration(sum(r.duration_seconds for r in rows))} |"
        )
    return lines


def _missing(correlation: Correlation, limit: int = 50) -> list[str]:
    if not correlation.missing:
        return []
    lines = [
        "> [!WARNING]",
        (
            f"> **Missing sessions ({len(correlation.missing)})**: named in commit trailers but not attested to "
            "Tracemark for these commits (never pushed, pushed to another organisation, or a copied trailer)."
        ),
    ]
    for sid, shas in list(correlation.missing.items())[:limit]:
        commits = ", ".join(f"`{sha[:12]}`" for sha in shas[:5]) + (" …" if len(shas) > 5 else "")
        lines.append(f"> - `{sid}` in {commits}")
    if len(correlation.missing) > limit:
        lines.append(f"> - … and {len(correlation.missing) - limit} more (see the check run)")
    return lines


def _file_line(row: FileRow, links: Links) -> str:
    label = _link_text(row.path)
    ranges = ", ".join(f"{a}–{b}" if a != b else str(a) for a, b in row.line_ranges[:10])
    if len(row.line_ranges) > 10:
        ranges += ", …"
    return (
        f"| {_cell(row.status)} | {_cell(row.attribution)} | [{label}]({links.blob(row.path)}) "
        f"| +{row.lines_added} / −{row.lines_removed} | {ranges} |"
    )


def _details(row: SessionRow, links: Links, max_files: int | None = None) -> str:
    score = row.score
    lines = [
        (
            f"<details><summary>Session <code>{row.id}</code> — {FLAG_ICON[score.flag]} {score.score}/100: "
            f"{_cell(score.summary)}</summary>"
        ),
        "",
        f"Commits in this PR: {', '.join(f'`{sha[:12]}`' for sha in row.commits[:20])}"
        + (" …" if len(row.commits) > 20 else ""),
        "",
    ]
    files = row.files if max_files is None else row.files[:max_files]
    if files:
        lines += ["| Status | Attribution | File | Lines +/− | AI lines |", "|---|---|---|---|---|"]
        lines += [_file_line(f, links) for f in files]
        if len(files) < len(row.files):
            lines.append(f"| | | … {len(row.files) - len(files)} more files | | |")
        lines.append("")
    sub = " · ".join(f"{name} {FLAG_ICON[score.sub_flags[name]]} {score.points[name]}/20" for name in CRITERIA)
    lines.append(f"**AI Session Score**: {sub}")
    notes = [f for f in score.findings if f.severity != "info"] + [f for f in score.findings if f.severity == "info"]
    if notes:
        lines.append("")
    for finding in notes[:20]:
        lines.append(f"- {finding.criterion}: {_text(finding.message)} (−{finding.points})")
    items = score.items[:20]
    if items:
        lines += ["", "Review:"]
        for item in items:
            if item.path is not None:
                where = f"[{_cell(item.path)}]({links.blob(item.path)})"
                if item.line_ranges:
                    where += " lines " + ", ".join(f"{a}–{b}" for a, b in item.line_ranges[:5])
                lines.append(f"- {where}: {_text(item.message)}")
            elif item.command is not None:
                lines.append(f"- `{_code(item.command)[:200]}`: {_text(item.message)}")
            else:
                lines.append(f"- {_text(item.message)}")
    lines += ["", "</details>"]
    return "\n".join(lines)


def render_comment(correlation: Correlation, links: Links) -> str | None:
    """The summary comment, or None when no commit of the PR carries a trailer."""
    if not correlation.referenced:
        return None
    rows = correlation.sessions
    head = [MARKER, "### Tracemark: AI coding sessions in this pull request", ""]
    if rows:
        table = _table(rows, links)
    else:
        table = ["No attested session matches the session ids in this pull request's commit trailers."]
    footer = ["", f"<sub>Updated for {links.head_sha[:12]} · scores explained in Tracemark's docs/score.md</sub>"]
    missing = _missing(correlation)

    def assemble(table_lines: list[str], blocks: list[str], note: str | None) -> str:
        parts = [*head, *table_lines, ""]
        if missing:
            parts += [*missing, ""]
        parts += blocks
        if note:
            parts += ["", note]
        return "\n".join(parts + footer)

    # Essentials first: if even the table does not fit, shorten it.
    limit = len(rows)
    while limit > 0 and len(assemble(_table(rows, links, limit) if rows else table, [], None)) > COMMENT_BUDGET:
        limit = max(0, limit - max(1, limit // 4))
    if rows:
        table = _table(rows, links, limit)
    blocks: list[str] = []
    left_out = 0
    size = len(assemble(table, [], "x" * 200))
    for row in rows:
        block = _details(row, links)
        if size + len(block) + 1 > COMMENT_BUDGET:
            block = _details(row, links, max_files=FILES_WHEN_SHORT)
        if size + len(block) + 1 > COMMENT_BUDGET:
            left_out += 1
            continue
        blocks.append(block)
        size += len(block) + 1
    note = f"_{left_out} session breakdowns left out to stay within GitHub's comment size limit._" if left_out else None
    body = assemble(table, blocks, note)
    return body[:COMMENT_LIMIT]


# -- the check run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    conclusion: str  # success | neutral | failure
    title: str
    summary: str
    text: str

    def fields(self, head_sha: str, details_url: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": CHECK_NAME,
            "head_sha": head_sha,
            "status": "completed",
            "conclusion": self.conclusion,
            "output": {"title": self.title, "summary": self.summary, "text": self.text},
        }
        if details_url.startswith(("https://", "http://")):
            body["details_url"] = details_url
        return body


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_check(correlation: Correlation, *, skip_missing: bool) -> CheckResult:
    """failure (violations, or missing sessions unless `skip-ai-session`) > neutral (policies not
    evaluated) > success."""
    rows = correlation.sessions
    violations = [(row.id, policy, message) for row in rows for policy, message in row.violations]
    unevaluated = [(row.id, policy, reason) for row in rows for policy, reason in row.unevaluated]
    missing = correlation.missing
    if violations or (missing and not skip_missing):
        conclusion = "failure"
    elif unevaluated:
        conclusion = "neutral"
    else:
        conclusion = "success"
    if not correlation.referenced:
        return CheckResult("success", "No AI sessions", "No commit of this pull request names an AI session.", "")
    parts = [_plural(len(rows), "AI session")]
    if violations:
        parts.append(_plural(len(violations), "policy violation"))
    if missing:
        parts.append(_plural(len(missing), "missing session") + (" (skipped by label)" if skip_missing else ""))
    if unevaluated:
        parts.append(_plural(len(unevaluated), "policy") + " not evaluated")
    title = ", ".join(parts)[:200]
    lines: list[str] = []
    if violations:
        lines += ["## Policy violations", ""]
        lines += [f"- `{sid}` **{_cell(policy)}**: {_cell(message)}" for sid, policy, message in violations]
        lines.append("")
    if missing:
        heading = "## Missing sessions" + (" (not failing: `skip-ai-session` label)" if skip_missing else "")
        lines += [heading, ""]
        lines += [f"- `{sid}` named in commits {', '.join(f'`{s}`' for s in shas)}" for sid, shas in missing.items()]
        lines.append("")
    if unevaluated:
        lines += ["## Policies not evaluated", ""]
        lines += [f"- `{sid}` **{_cell(policy)}**: {_cell(reason)}" for sid, policy, reason in unevaluated]
        lines.append("")
    if rows:
        lines += ["## Sessions", ""]
        lines += [
            f"- `{row.id}`: {FLAG_ICON[row.score.flag]} {row.score.score}/100, {_cell(row.agent)}, {_cell(row.model)}"
            for row in rows
        ]
    summary = "\n".join(lines)
    if len(summary) > CHECK_TEXT_LIMIT:
        summary = summary[: CHECK_TEXT_LIMIT - 100] + "\n\n… (truncated; every item is in Tracemark)"
    return CheckResult(conclusion, title, summary or title, "")
