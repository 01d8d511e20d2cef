"""Correlation (SPEC §3.5): trailer references of a PR's commits → verified sessions, aggregated
over the PR's commits, scored. Pure: sessions come through the `SessionLookup` port.

A reference (session S named in the trailer of commit C) is *verified* when S exists in the
repository's organisation and was attested with C (directly, or C is a commit S's commits were
rewritten from). Unverified references count as missing and show no session details.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracemark_common.prs.score import (
    Score,
    ScoredFile,
    ScoreInput,
    policy_outcomes,
    score_session,
)
from tracemark_common.store.records import SessionRecord
from tracemark_common.trailers import session_ids

MAX_SESSIONS = 200  # a PR naming more distinct sessions is correlated on the first 200


class SessionLookup(Protocol):
    def get_session(self, org: str, session_id: str) -> SessionRecord | None: ...  # evidence loaded


@dataclass(frozen=True)
class PrCommit:
    sha: str
    message: str


@dataclass
class FileRow:
    path: str
    status: str
    attribution: str
    lines_added: int = 0
    lines_removed: int = 0
    line_ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class SessionRow:
    id: str
    commits: list[str]
    agent: str
    agent_version: str
    model: str
    score: Score
    lines_added: int
    lines_removed: int
    ai_lines_added: int
    ai_lines_removed: int
    files: list[FileRow]
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    duration_seconds: int
    violations: list[tuple[str, str]]
    unevaluated: list[tuple[str, str]]

    @property
    def ai_lines(self) -> int:
        return self.ai_lines_added + self.ai_lines_removed

    @property
    def attribution_pct(self) -> float | None:
        total = self.lines_added + self.lines_removed
        return None if total == 0 else 100.0 * self.ai_lines / total


@dataclass
class Correlation:
    references: dict[str, list[str]]  # session id -> PR commits naming it (trailer order)
    sessions: list[SessionRow]
    missing: dict[str, list[str]]  # session id -> commits naming it, for unverified references

    @property
    def referenced(self) -> bool:
        return bool(self.references)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def trailer_references(commits: Iterable[PrCommit]) -> dict[str, list[str]]:
    references: dict[str, list[str]] = {}
    for commit in commits:
        for sid in session_ids(commit.message):
            if sid in references or len(references) < MAX_SESSIONS:
                references.setdefault(sid, []).append(commit.sha)
    return references


def attested_shas(record: SessionRecord) -> set[str]:
    shas = {s.lower() for s in record.commits}
    for new, olds in record.rewritten_from.items():
        shas.add(new.lower())
        shas.update(old.lower() for old in olds)
    return shas


def correlate(org: str, commits: Sequence[PrCommit], sessions: SessionLookup) -> Correlation:
    references = trailer_references(commits)
    rows: list[SessionRow] = []
    missing: dict[str, list[str]] = {}
    for sid, shas in references.items():
        record = sessions.get_session(org, sid)
        known = attested_shas(record) if record is not None and record.org == org else set()
        verified = [sha for sha in shas if sha.lower() in known]
        unverified = [sha for sha in shas if sha.lower() not in known]
        if unverified:
            missing[sid] = unverified
        if record is not None and verified:
            rows.append(session_row(record, verified))
    return Correlation(references, rows, missing)


# -- aggregation over the PR's commits ----------------------------------------------------------------------


def _ranges(value: Any) -> list[tuple[int, int]]:
    ranges = []
    for raw in _list(value)[:1000]:
        item = _dict(raw)
        start, end = _int(item.get("start")), _int(item.get("end"))
        if start and end >= start:
            ranges.append((start, end))
    return ranges


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _file_row(item: dict[str, Any]) -> FileRow | None:
    path = item.get("path")
    if not isinstance(path, str) or not path:
        return None
    attribution = item.get("tracemark_attribution") or item.get("attribution") or "human"
    return FileRow(
        path=path[:500],
        status=str(item.get("status") or "modified")[:20],
        attribution=str(attribution)[:10],
        lines_added=_int(item.get("lines_added")),
        lines_removed=_int(item.get("lines_removed")),
        line_ranges=_ranges(item.get("line_ranges")),
    )


def _files_in_scope(data: dict[str, Any], shas: set[str]) -> tuple[list[FileRow], dict[str, str]] | None:
    """Files of the session's commits that are in the PR, from `git_context.tracemark_commits`,
    merged by path; None when the evidence has no per-commit data."""
    per_commit = [_dict(c) for c in _list(_dict(data.get("git_context")).get("tracemark_commits"))]
    if not per_commit:
        return None
    by_path = {
        f.path: f
        for f in (_file_row(_dict(x)) for x in _list(_dict(data.get("code_changes")).get("files")))
        if f is not None
    }
    merged: dict[str, FileRow] = {}
    signatures: dict[str, str] = {}
    for commit in per_commit:
        sha = str(commit.get("sha") or "").lower()
        rewritten = {str(s).lower() for s in _list(commit.get("rewritten_from"))}
        if sha not in shas and not rewritten & shas:
            continue
        if isinstance(commit.get("signature"), str):
            signatures[sha] = commit["signature"]
        for raw in _list(commit.get("files")):
            row = _file_row(raw if isinstance(raw, dict) else {"path": raw})
            if row is None:
                continue
            if not isinstance(raw, dict) and row.path in by_path:
                row = FileRow(**by_path[row.path].__dict__)
            elif isinstance(raw, dict) and row.path in by_path and not raw.get("attribution"):
                row.attribution = by_path[row.path].attribution
            if row.path in merged:
                current = merged[row.path]
                current.lines_added += row.lines_added
                current.lines_removed += row.lines_removed
                current.line_ranges = _merge_ranges([*current.line_ranges, *row.line_ranges])
                if current.attribution != row.attribution:
                    current.attribution = "mixed"
            else:
                merged[row.path] = row
    return sorted(merged.values(), key=lambda f: f.path), signatures


def _lines_in_scope(record: SessionRecord, data: dict[str, Any], shas: set[str]) -> tuple[int, int, int, int]:
    commits = _dict(_dict(record.facts).get("commits"))
    picked = [_dict(v) for k, v in commits.items() if str(k).lower() in shas]
    if picked:
        return (
            sum(_int(c.get("lines_added")) for c in picked),
            sum(_int(c.get("lines_removed")) for c in picked),
            sum(_int(c.get("ai_lines_added")) for c in picked),
            sum(_int(c.get("ai_lines_removed")) for c in picked),
        )
    changes = _dict(data.get("code_changes"))
    return (
        _int(changes.get("lines_added")),
        _int(changes.get("lines_removed")),
        _int(changes.get("ai_lines_added")),
        _int(changes.get("ai_lines_removed")),
    )


def session_row(record: SessionRecord, pr_shas: list[str]) -> SessionRow:
    envelope = _dict(record.evidence)
    data = _dict(envelope.get("data"))
    scope = {s.lower() for s in pr_shas}
    in_scope = _files_in_scope(data, scope)
    if in_scope is None:
        raw_files = _list(_dict(data.get("code_changes")).get("files"))
        files = [f for f in (_file_row(_dict(x)) for x in raw_files[:5000]) if f is not None]
        signatures: dict[str, str] = {}
    else:
        files, signatures = in_scope
    added, removed, ai_added, ai_removed = _lines_in_scope(record, data, scope)
    usage = _dict(data.get("usage"))
    model = _dict(data.get("model"))
    agent = _dict(data.get("agent"))
    cost = usage.get("estimated_cost_usd")
    violations, unevaluated = policy_outcomes(record.policy_results)
    ai_files = [
        ScoredFile(f.path, f.lines_added + f.lines_removed, tuple(f.line_ranges))
        for f in files
        if f.attribution in ("ai", "mixed")
    ]
    score = score_session(
        ScoreInput(
            envelope=envelope,
            policy_results=list(record.policy_results),
            transcript_present=bool(record.transcript),
            commit_signatures=signatures,
            files=ai_files,
            ai_lines=ai_added + ai_removed,
            human_lines=max(0, added + removed - ai_added - ai_removed),
        )
    )
    return SessionRow(
        id=record.id,
        commits=list(pr_shas),
        agent=str(agent.get("name") or record.agent or "unknown")[:50],
        agent_version=str(agent.get("version") or "")[:30],
        model=str(model.get("primary") or next(iter(_list(model.get("models_used"))), "") or "unknown")[:60],
        score=score,
        lines_added=added,
        lines_removed=removed,
        ai_lines_added=ai_added,
        ai_lines_removed=ai_removed,
        files=files,
        tokens_in=_int(usage.get("input_tokens")),
        tokens_out=_int(usage.get("output_tokens")),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        duration_seconds=_int(_dict(data.get("session")).get("duration_seconds")),
        violations=violations,
        unevaluated=unevaluated,
    )


def session_score(record: SessionRecord) -> dict[str, Any]:
    """The AI Session Score of a whole session (all its commits), e.g. for ingest to store before
    any PR correlates it; the PR workflow replaces it with the PR-scoped score."""
    shas = list(dict.fromkeys([*record.commits, *record.rewritten_from]))
    return session_row(record, shas).score.to_dict()
