"""The dashboard query: every card of SPEC §3.7 from rollup items only.

It reads the buckets of the period and of the previous one, with each period's users and models
already summed by the store (`RollupStore.read_periods`), in one batched read: its cost grows with
the range, never with the number of sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracemark_common.errors import BadRequest
from tracemark_common.rollups.bucket import Bucket, Totals
from tracemark_common.rollups.buckets import (
    RANGES,
    Granularity,
    bucket_end,
    bucket_key,
    bucket_start,
    periods,
    scope_id,
)
from tracemark_common.rollups.deltas import (
    AI_LINES,
    COST,
    INPUT_TOKENS,
    LINES,
    OUTPUT_TOKENS,
    PRS,
    SESSIONS,
    TOKENS,
    UNPRICED,
)
from tracemark_common.rollups.store import RollupStore

TOP_USERS = 10
_NO_USER = (0, 0, 0, 0)


@dataclass
class _Period:
    totals: Totals  # users: hash -> [sessions, AI lines, tokens, cost]; models: [sessions, tokens, cost, unpriced]
    sessions: int = 0
    tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: int = 0
    ai_lines: int = 0
    lines: int = 0
    prs: int = 0
    unpriced: int = 0

    @property
    def users(self) -> dict[bytes, list[int]]:
        return self.totals.users

    @property
    def active_users(self) -> int:
        return sum(1 for row in self.users.values() if row[0] > 0)

    @property
    def ai_percent(self) -> float | None:
        return None if self.lines <= 0 else self.ai_lines * 100 / self.lines


def _aggregate(buckets: Mapping[int, Bucket], indices: range, totals: Totals) -> _Period:
    period = _Period(totals)
    for index in indices:
        bucket = buckets.get(index)
        if bucket is None:
            continue
        period.sessions += bucket.num(SESSIONS)
        period.tokens += bucket.num(TOKENS)
        period.input_tokens += bucket.num(INPUT_TOKENS)
        period.output_tokens += bucket.num(OUTPUT_TOKENS)
        period.cost += bucket.num(COST)
        period.ai_lines += bucket.num(AI_LINES)
        period.prs += bucket.num(PRS)
        period.unpriced += bucket.num(UNPRICED)
        # Each commit once: the g#<d> terms reaching back inside the period (see rollups.deltas).
        reach, gaps = index - indices.start, bucket.gaps
        period.lines += bucket.num(LINES)
        if gaps:
            period.lines += sum(gaps.values()) if max(gaps) <= reach else sum(v for d, v in gaps.items() if d <= reach)
    return period


def _usd(micro: int) -> float:
    return round(micro / 1_000_000, 6)


def card(value: float | None, previous: float | None, digits: int | None = None) -> dict[str, Any]:
    """`{value, previous, delta, delta_pct}`; `delta_pct` is null when `previous` is 0 (or
    unknown), `delta` is null when either side is unknown."""

    def fmt(x: float | None) -> float | None:
        return None if x is None or digits is None else round(x, digits)

    delta = None if value is None or previous is None else value - previous
    delta_pct = None if delta is None or not previous else round(delta * 100 / previous, 2)
    if digits is None:
        return {"value": value, "previous": previous, "delta": delta, "delta_pct": delta_pct}
    return {"value": fmt(value), "previous": fmt(previous), "delta": fmt(delta), "delta_pct": delta_pct}


def _top_users(
    store: RollupStore, org: str, current: _Period, previous: _Period, known: Mapping[bytes, tuple[str, str]]
) -> list[dict[str, Any]]:
    rows = [(ident, row) for ident, row in current.users.items() if row[0] > 0]
    # sessions, AI lines, tokens (descending), then name: names are only looked up for the top
    # ten and whoever ties with the tenth
    rows.sort(key=lambda pair: (-pair[1][0], -pair[1][1], -pair[1][2]))
    if len(rows) > TOP_USERS:
        last = rows[TOP_USERS - 1][1][:3]
        rows = [pair for i, pair in enumerate(rows) if i < TOP_USERS or pair[1][:3] == last]
    # names from the directory read with the buckets; anyone it lacks, looked up (one more request)
    missing = [ident for ident, _ in rows if ident not in known]
    found = store.get_user_names(org, missing) if missing else {}
    named = [(known.get(ident) or found.get(ident, (ident.hex(), "user")), ident, row) for ident, row in rows]
    named.sort(key=lambda t: (-t[2][0], -t[2][1], -t[2][2], t[0][0]))
    result = []
    for (name, kind), ident, row in named[:TOP_USERS]:
        before = previous.users.get(ident, _NO_USER)[0]
        result.append(
            {
                "user": name,
                "kind": kind,
                "service_account": kind == "service",
                "sessions": row[0],
                "ai_lines": row[1],
                "tokens": row[2],
                "cost_usd": _usd(row[3]),
                "previous_sessions": before,
                "delta": row[0] - before,
            }
        )
    return result


def _models(current: _Period, previous: _Period) -> list[dict[str, Any]]:
    models, names = current.totals.models, current.totals.model_names
    rows = [(names.get(ident, ident.hex()), ident, row) for ident, row in models.items() if row[0] > 0]
    rows.sort(key=lambda t: (-t[2][0], -t[2][1], t[0]))
    result = []
    for name, ident, row in rows:
        before = previous.totals.models.get(ident, [0, 0, 0, 0])
        result.append(
            {
                "model": name,
                "sessions": row[0],
                "tokens": row[1],
                # null when the model had no price in any of its sessions (unknown, not $0)
                "cost_usd": None if row[3] >= row[0] else _usd(row[2]),
                "unpriced_sessions": row[3],
                "previous_sessions": before[0],
                "previous_tokens": before[1],
            }
        )
    return result


def _series(granularity: Granularity, items: Mapping[int, Bucket], indices: range) -> list[dict[str, Any]]:
    series = []
    for index in indices:
        bucket = items.get(index)
        lines = 0 if bucket is None else bucket.num(LINES)  # one bucket: every commit in it once
        series.append(
            {
                "start": bucket_start(granularity, index).isoformat().replace("+00:00", "Z"),
                "sessions": 0 if bucket is None else bucket.num(SESSIONS),
                "active_users": 0 if bucket is None else bucket.active_users,
                "tokens": 0 if bucket is None else bucket.num(TOKENS),
                "cost_usd": _usd(0 if bucket is None else bucket.num(COST)),
                "ai_lines": 0 if bucket is None else bucket.num(AI_LINES),
                "all_lines": lines,
                "ai_assisted_prs": 0 if bucket is None else bucket.num(PRS),
            }
        )
    return series


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def query_dashboard(
    store: RollupStore, org: str, range_: str, project: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Every card of the AI Coding dashboard for `org` (or one of its projects) over `range_`
    (`24h`, `7d`, `30d` or `3m`) ending with the bucket that contains `now`."""
    spec = RANGES.get(range_)
    if spec is None:
        raise BadRequest(f"range must be one of {', '.join(RANGES)}; got {repr(range_)[:40]}", code="bad_range")
    moment = now or datetime.now(UTC)
    current_idx, previous_idx = periods(spec, moment)
    scope = scope_id(org, project)
    indices = [*previous_idx, *current_idx]
    keys = {i: bucket_key(scope, spec.granularity, i) for i in indices}
    read = store.read_periods(org, [[keys[i] for i in current_idx], [keys[i] for i in previous_idx]])
    items = {i: read.buckets[key] for i, key in keys.items() if key in read.buckets}
    cur, prev = _aggregate(items, current_idx, read.totals[0]), _aggregate(items, previous_idx, read.totals[1])
    ai_code = card(cur.ai_percent, prev.ai_percent, 2)
    ai_code.update(
        ai_lines=cur.ai_lines, all_lines=cur.lines, previous_ai_lines=prev.ai_lines, previous_all_lines=prev.lines
    )
    cost = card(_usd(cur.cost), _usd(prev.cost), 6)
    # the sum covers priced models only: say how many sessions it leaves out (never a silent $0)
    cost.update(unpriced_sessions=cur.unpriced, previous_unpriced_sessions=prev.unpriced)
    g = spec.granularity
    cards = {
        "total_sessions": card(cur.sessions, prev.sessions),
        "active_users": card(cur.active_users, prev.active_users),
        "ai_assisted_prs": card(cur.prs, prev.prs),
        "ai_authored_code": ai_code,
        "total_cost_usd": cost,
        "total_tokens": card(cur.tokens, prev.tokens),
    }
    return {
        **cards,  # each card also at the top level, for clients that read `body["total_sessions"]`
        "org": org,
        "project": project,
        "range": spec.name,
        "granularity": "hour" if g == "H" else "day",
        "period": {"start": _iso(bucket_start(g, current_idx.start)), "end": _iso(bucket_end(g, current_idx[-1]))},
        "previous_period": {
            "start": _iso(bucket_start(g, previous_idx.start)),
            "end": _iso(bucket_end(g, previous_idx[-1])),
        },
        "generated_at": _iso(moment.astimezone(UTC)),
        "has_data": cur.sessions > 0 or prev.sessions > 0 or cur.prs > 0 or prev.prs > 0,
        "cards": cards,
        "tokens": {"input": cur.input_tokens, "output": cur.output_tokens, "total": cur.tokens},
        "top_users": _top_users(store, org, cur, prev, read.names),
        "model_breakdown": _models(cur, prev),
        "series": _series(g, items, current_idx),
    }
