"""What the rollups have counted of each session, so a crash mid-update is repaired exactly.

Moving a session's counters touches several items (its buckets in every scope and granularity,
the de-duplication state of each of its commits), which DynamoDB cannot change in one
transaction. So the writer keeps, per session, a ledger item: the facts the rollups currently
count (`applied`) and, while an update is under way, the update itself (`pending`: an operation
id, the facts before and after). Every bucket and commit write records the operation id in the
same conditional write, so applying a pending operation again skips what it already did. A
crashed update is completed by the next update of the same session (a retried push is one), and
by the sweep ingest runs over the organisation's pending ledgers. Pure: no AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracemark_common.rollups.buckets import _part
from tracemark_common.rollups.facts import CommitLines, ModelUsage, SessionFacts

# How long buckets and commit states remember the operations that touched them: a pending
# operation older than this may no longer be recognised where it already landed, so the sweep
# (every ingest in the organisation) completes pending operations long before.
OPS_RETENTION_SECONDS = 6 * 3600
OPS_MAX = 4000  # at most this many remembered operations per item (about 160 KB)


@dataclass(frozen=True)
class Pending:
    op: str
    before: SessionFacts | None
    after: SessionFacts | None
    started: datetime


@dataclass(frozen=True)
class Ledger:
    version: int = 0  # 0: no ledger yet
    applied: SessionFacts | None = None
    pending: Pending | None = None


def ledger_key(org: str, session_id: str) -> tuple[str, str]:
    return f"ROLLUPSESSION#{_part(org)}#{_part(session_id)}", "LEDGER"


def facts_to_json(facts: SessionFacts | None) -> str:
    if facts is None:
        return "null"
    body: dict[str, Any] = {
        "org": facts.org,
        "project": facts.project,
        "session_id": facts.session_id,
        "user": facts.user,
        "user_kind": facts.user_kind,
        "at": facts.at.isoformat(),
        "models": {
            name: [m.input_tokens, m.output_tokens, m.total_tokens, m.cost_usd, m.priced]
            for name, m in facts.models.items()
        },
        "total_tokens": facts.total_tokens,
        "input_tokens": facts.input_tokens,
        "output_tokens": facts.output_tokens,
        "cost_usd": facts.cost_usd,
        "unpriced": facts.unpriced,
        "commits": {
            sha: [c.lines_added, c.lines_removed, c.ai_lines_added, c.ai_lines_removed]
            for sha, c in facts.commits.items()
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def facts_from_json(text: str) -> SessionFacts | None:
    body = json.loads(text)
    if body is None:
        return None
    return SessionFacts(
        org=body["org"],
        project=body["project"],
        session_id=body["session_id"],
        user=body["user"],
        user_kind=body["user_kind"],
        at=datetime.fromisoformat(body["at"]),
        models={
            name: ModelUsage(input_tokens=m[0], output_tokens=m[1], total_tokens=m[2], cost_usd=m[3], priced=m[4])
            for name, m in body["models"].items()
        },
        total_tokens=body["total_tokens"],
        input_tokens=body["input_tokens"],
        output_tokens=body["output_tokens"],
        cost_usd=body["cost_usd"],
        unpriced=body["unpriced"],
        commits={sha: CommitLines(*c) for sha, c in body["commits"].items()},
    )


def prune_ops(ops: dict[str, int], now: int) -> dict[str, int]:
    """Operations remembered by an item, without those older than the retention (and at most
    OPS_MAX, the newest)."""
    kept = {op: at for op, at in ops.items() if at >= now - OPS_RETENTION_SECONDS}
    if len(kept) > OPS_MAX:
        kept = dict(sorted(kept.items(), key=lambda pair: pair[1])[-OPS_MAX:])
    return kept
