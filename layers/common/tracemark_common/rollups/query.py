"""The dashboard query: every card of SPEC §3.7 from rollup items only.

It reads exactly `2 x buckets` items (the period and the previous one) in one batched read, so
its cost grows with the range, never with the number of sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tracemark_common.errors import BadRequest
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
    GAP,
    INPUT_TOKENS,
    LINES,
    MODEL_COST,
    MODEL_NAME,
    MODEL_SESSIONS,
    MODEL_TOKENS,
    OUTPUT_TOKENS,
    PRS,
    SESSIONS,
    TOKENS,
    USER_AI,
    USER_COST,
    USER_KIND,
    USER_NAME,
    USER_SESSIONS,
    USER_TOKENS,
)
from tracemark_common.rollups.store import Item, RollupStore

TOP_USERS = 10


@dataclass
class _Row:
    name: str = ""
    kind: str = "user"
    sessions: int = 0
    ai_lines: int = 0
    tokens: int = 0
    cost: int = 0


@dataclass
class _Period:
    sessions: int = 0
    tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: int = 0
    ai_lines: int = 0
    lines: int = 0
    prs: int = 0
    users: dict[str, _Row] = field(default_factory=dict)
    models: dict[str, _Row] = field(default_factory=dict)

    @property
    def active_users(self) -> int:
        return sum(1 for row in self.users.values() if row.sessions > 0)

    @property
    def ai_percent(self) -> float | None:
        return None if self.lines <= 0 else self.ai_lines * 100 / self.lines


def _num(item: Item, name: str) -> int:
    value = item.get(name, 0)
    return value if isinstance(value, int) else 0


_USER_FIELDS = {USER_SESSIONS: "sessions", USER_AI: "ai_lines", USER_TOKENS: "tokens", USER_COST: "cost"}
_MODEL_FIELDS = {MODEL_SESSIONS: "sessions", MODEL_TOKENS: "tokens", MODEL_COST: "cost"}


@dataclass
class _Bucket:
    """One bucket item, parsed once."""

    item: Item
    gaps: dict[int, int] = field(default_factory=dict)
    users: dict[str, _Row] = field(default_factory=dict)
    models: dict[str, _Row] = field(default_factory=dict)

    @classmethod
    def parse(cls, item: Item) -> _Bucket:
        bucket = cls(item)
        for attr, value in item.items():
            prefix, ident = attr[:3], attr[3:]
            if prefix in _USER_FIELDS and isinstance(value, int):
                row = bucket.users.setdefault(ident, _Row())
                setattr(row, _USER_FIELDS[prefix], value)
            elif prefix in _MODEL_FIELDS and isinstance(value, int):
                row = bucket.models.setdefault(ident, _Row())
                setattr(row, _MODEL_FIELDS[prefix], value)
            elif attr.startswith(GAP) and isinstance(value, int) and attr[len(GAP) :].isdigit():
                bucket.gaps[int(attr[len(GAP) :])] = value
        for ident, row in bucket.users.items():
            name, kind = item.get(USER_NAME + ident), item.get(USER_KIND + ident)
            row.name = name if isinstance(name, str) else ident
            row.kind = kind if isinstance(kind, str) else "user"
        for ident, row in bucket.models.items():
            name = item.get(MODEL_NAME + ident)
            row.name = name if isinstance(name, str) else ident
        return bucket


def _merge_rows(into: dict[str, _Row], rows: dict[str, _Row]) -> None:
    for ident, row in rows.items():
        total = into.get(ident)
        if total is None:
            into[ident] = _Row(row.name, row.kind, row.sessions, row.ai_lines, row.tokens, row.cost)
        else:
            total.sessions += row.sessions
            total.ai_lines += row.ai_lines
            total.tokens += row.tokens
            total.cost += row.cost


def _aggregate(buckets: Mapping[int, _Bucket], indices: range) -> _Period:
    period = _Period()
    for index in indices:
        bucket = buckets.get(index)
        if bucket is None:
            continue
        item = bucket.item
        period.sessions += _num(item, SESSIONS)
        period.tokens += _num(item, TOKENS)
        period.input_tokens += _num(item, INPUT_TOKENS)
        period.output_tokens += _num(item, OUTPUT_TOKENS)
        period.cost += _num(item, COST)
        period.ai_lines += _num(item, AI_LINES)
        period.prs += _num(item, PRS)
        # Each commit once: the g#<d> terms reaching back inside the period (see rollups.deltas).
        reach = index - indices.start
        period.lines += _num(item, LINES) + sum(v for d, v in bucket.gaps.items() if d <= reach)
        _merge_rows(period.users, bucket.users)
        _merge_rows(period.models, bucket.models)
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


def _top_users(current: _Period, previous: _Period) -> list[dict[str, Any]]:
    rows = [(ident, row) for ident, row in current.users.items() if row.sessions > 0]
    rows.sort(key=lambda pair: (-pair[1].sessions, -pair[1].ai_lines, -pair[1].tokens, pair[1].name))
    result = []
    for ident, row in rows[:TOP_USERS]:
        before = previous.users.get(ident, _Row()).sessions
        result.append(
            {
                "user": row.name,
                "kind": row.kind,
                "service_account": row.kind == "service",
                "sessions": row.sessions,
                "ai_lines": row.ai_lines,
                "tokens": row.tokens,
                "cost_usd": _usd(row.cost),
                "previous_sessions": before,
                "delta": row.sessions - before,
            }
        )
    return result


def _models(current: _Period, previous: _Period) -> list[dict[str, Any]]:
    rows = [(ident, row) for ident, row in current.models.items() if row.sessions > 0]
    rows.sort(key=lambda pair: (-pair[1].sessions, -pair[1].tokens, pair[1].name))
    result = []
    for ident, row in rows:
        before = previous.models.get(ident, _Row())
        result.append(
            {
                "model": row.name,
                "sessions": row.sessions,
                "tokens": row.tokens,
                "cost_usd": _usd(row.cost),
                "previous_sessions": before.sessions,
                "previous_tokens": before.tokens,
            }
        )
    return result


def _series(granularity: Granularity, items: Mapping[int, _Bucket], indices: range) -> list[dict[str, Any]]:
    series = []
    for index in indices:
        one = _aggregate(items, range(index, index + 1))
        series.append(
            {
                "start": bucket_start(granularity, index).isoformat().replace("+00:00", "Z"),
                "sessions": one.sessions,
                "active_users": one.active_users,
                "tokens": one.tokens,
                "cost_usd": _usd(one.cost),
                "ai_lines": one.ai_lines,
                "all_lines": one.lines,
                "ai_assisted_prs": one.prs,
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
    keys = [bucket_key(scope, spec.granularity, i) for i in indices]
    found = store.get_many(keys)
    items = {i: _Bucket.parse(found[key]) for i, key in zip(indices, keys, strict=True) if key in found}
    cur, prev = _aggregate(items, current_idx), _aggregate(items, previous_idx)
    ai_code = card(cur.ai_percent, prev.ai_percent, 2)
    ai_code.update(
        ai_lines=cur.ai_lines, all_lines=cur.lines, previous_ai_lines=prev.ai_lines, previous_all_lines=prev.lines
    )
    g = spec.granularity
    cards = {
        "total_sessions": card(cur.sessions, prev.sessions),
        "active_users": card(cur.active_users, prev.active_users),
        "ai_assisted_prs": card(cur.prs, prev.prs),
        "ai_authored_code": ai_code,
        "total_cost_usd": card(_usd(cur.cost), _usd(prev.cost), 6),
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
        "top_users": _top_users(cur, prev),
        "model_breakdown": _models(cur, prev),
        "series": _series(g, items, current_idx),
    }
