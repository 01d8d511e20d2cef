"""Counter deltas of the dashboard rollups (SPEC §3.7). Pure: no AWS, no HTTP.

A session contributes to one hourly and one daily bucket item per scope (the organisation, and
the organisation's project). `session_deltas(before, after)` is the difference between the
contributions of the new facts and of the old ones: a re-push that moves a session's time moves
it between buckets, a deleted session (`after=None`) takes everything back.

Commits are de-duplicated ("each commit's lines once even when two sessions share it") with a
per-(scope, commit) state: how many sessions reference the commit in each bucket. The commit's
lines count once in every bucket where it appears (`lines`) and, for two consecutive such buckets
`d` apart, `-lines` is added to the entry `g#<d>` of the later one. A period `[s, e]` then sums
`lines` over its buckets plus `g#<d>` of each bucket `b` with `d <= b - s`: the commit counts
exactly once when it appears in the period, whatever the number of sessions and buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracemark_common.rollups.buckets import (
    GRANULARITIES,
    MAX_SPAN,
    Granularity,
    Key,
    bucket_index,
    bucket_key,
    bucket_label,
    label_index,
    scopes,
    short_hash,
)
from tracemark_common.rollups.facts import SessionFacts

# Attribute names of a bucket item.
SESSIONS = "sessions"
TOKENS = "tokens"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
COST = "cost_micro_usd"  # integer micro-dollars: sums are exact and order-independent
AI_LINES = "ai_lines"
LINES = "lines"  # all lines of the distinct commits in this bucket
PRS = "prs"
UNPRICED = "unpriced_sessions"  # sessions that used a model with no price
GAP = "g#"  # GAP + str(d): commit de-duplication terms (see the module docstring)
USER_SESSIONS, USER_AI, USER_TOKENS, USER_COST = "us#", "ua#", "ut#", "uc#"
MODEL_SESSIONS, MODEL_TOKENS, MODEL_COST, MODEL_NAME = "ms#", "mt#", "mc#", "mn#"
MODEL_UNPRICED = "mu#"  # sessions in which the model had no price


SCALARS = frozenset({SESSIONS, TOKENS, INPUT_TOKENS, OUTPUT_TOKENS, COST, AI_LINES, LINES, PRS, UNPRICED})


def micro_usd(cost: float) -> int:
    return round(cost * 1_000_000)


@dataclass
class BucketDelta:
    """Numbers to ADD to a bucket item and strings to SET on it."""

    counters: dict[str, int] = field(default_factory=dict)
    strings: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: int) -> None:
        if value:
            self.counters[name] = self.counters.get(name, 0) + value
            if not self.counters[name]:
                del self.counters[name]

    def merge(self, counters: Mapping[str, int], sign: int = 1) -> None:
        for name, value in counters.items():
            self.add(name, sign * value)

    def __bool__(self) -> bool:
        return bool(self.counters)


Deltas = dict[Key, BucketDelta]


def merge_deltas(target: Deltas, source: Deltas) -> Deltas:
    for key, delta in source.items():
        into = target.setdefault(key, BucketDelta())
        into.merge(delta.counters)
        into.strings.update(delta.strings)
    return target


def session_contribution(facts: SessionFacts) -> tuple[dict[str, int], dict[str, str]]:
    """The counters one session adds to its bucket (in every scope and granularity)."""
    cost = micro_usd(facts.cost_usd)
    ai_lines = facts.ai_lines
    user = short_hash(facts.user)
    counters = {
        SESSIONS: 1,
        TOKENS: facts.total_tokens,
        INPUT_TOKENS: facts.input_tokens,
        OUTPUT_TOKENS: facts.output_tokens,
        COST: cost,
        AI_LINES: ai_lines,
        UNPRICED: 1 if facts.unpriced else 0,
        USER_SESSIONS + user: 1,
        USER_AI + user: ai_lines,
        USER_TOKENS + user: facts.total_tokens,
        USER_COST + user: cost,
    }
    strings: dict[str, str] = {}  # model names (users' names go to the store's registry)
    for model, usage in facts.models.items():
        name = short_hash(model)
        counters[MODEL_SESSIONS + name] = counters.get(MODEL_SESSIONS + name, 0) + 1
        counters[MODEL_TOKENS + name] = counters.get(MODEL_TOKENS + name, 0) + usage.total_tokens
        counters[MODEL_COST + name] = counters.get(MODEL_COST + name, 0) + micro_usd(usage.cost_usd)
        if not usage.priced:
            counters[MODEL_UNPRICED + name] = counters.get(MODEL_UNPRICED + name, 0) + 1
        strings[MODEL_NAME + name] = model
    return {k: v for k, v in counters.items() if v}, strings


def _session_keys(facts: SessionFacts) -> list[Key]:
    return [
        bucket_key(scope, granularity, bucket_index(granularity, facts.at))
        for scope in scopes(facts.org, facts.project)
        for granularity in GRANULARITIES
    ]


def session_deltas(before: SessionFacts | None, after: SessionFacts | None) -> Deltas:
    """What to add to which bucket item when a session's facts change from `before` to `after`
    (`before=None`: a new session; `after=None`: a deleted one). Commits are not included: see
    `commit_moves`."""
    deltas: Deltas = {}
    for facts, sign in ((before, -1), (after, 1)):
        if facts is None:
            continue
        counters, strings = session_contribution(facts)
        for key in _session_keys(facts):
            delta = deltas.setdefault(key, BucketDelta())
            delta.merge(counters, sign)
            if sign > 0:
                delta.strings.update(strings)
    return {key: delta for key, delta in deltas.items() if delta}


# ---- commits ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitState:
    """Sessions referencing one commit in one scope, per bucket label, and the commit's lines."""

    version: int = 0  # 0: not stored yet
    lines: int = 0
    hours: Mapping[str, int] = field(default_factory=dict)
    days: Mapping[str, int] = field(default_factory=dict)
    # operation id -> (when, the state just before it): lets a repeated operation (a crashed
    # update being completed) produce exactly the bucket deltas it produced the first time
    ops: Mapping[str, tuple[int, CommitState]] = field(default_factory=dict)

    def counts(self, granularity: Granularity) -> Mapping[str, int]:
        return self.hours if granularity == "H" else self.days

    def snapshot(self) -> CommitState:
        return CommitState(lines=self.lines, hours=dict(self.hours), days=dict(self.days))


@dataclass(frozen=True)
class CommitMove:
    """One session's reference to one commit moves from `remove` to `add` (each a bucket label
    per granularity, or None)."""

    scope: str
    sha: str
    remove: dict[Granularity, str] | None
    add: dict[Granularity, str] | None
    lines: int | None  # the commit's lines when the session (still) references it


def _labels(facts: SessionFacts) -> dict[Granularity, str]:
    return {g: bucket_label(g, bucket_index(g, facts.at)) for g in GRANULARITIES}


def _references(facts: SessionFacts | None) -> dict[tuple[str, str], tuple[dict[Granularity, str], int]]:
    if facts is None:
        return {}
    labels = _labels(facts)
    return {
        (scope, sha.lower()): (labels, commit.lines_added + commit.lines_removed)
        for scope in scopes(facts.org, facts.project)
        for sha, commit in facts.commits.items()
    }


def commit_moves(before: SessionFacts | None, after: SessionFacts | None) -> list[CommitMove]:
    old, new = _references(before), _references(after)
    moves = []
    for scope, sha in sorted(old.keys() | new.keys()):
        was, now = old.get((scope, sha)), new.get((scope, sha))
        if was == now:
            continue
        moves.append(
            CommitMove(
                scope=scope,
                sha=sha,
                remove=was[0] if was else None,
                add=now[0] if now else None,
                lines=now[1] if now else None,
            )
        )
    return moves


def _moved(counts: Mapping[str, int], remove: str | None, add: str | None) -> dict[str, int]:
    result = dict(counts)
    if remove is not None:
        result[remove] = result.get(remove, 0) - 1
    if add is not None:
        result[add] = result.get(add, 0) + 1
    return {label: n for label, n in result.items() if n > 0}


def apply_move(state: CommitState, move: CommitMove) -> CommitState:
    remove, add = move.remove or {}, move.add or {}
    hours = _moved(state.hours, remove.get("H"), add.get("H"))
    days = _moved(state.days, remove.get("D"), add.get("D"))
    lines = state.lines if move.lines is None else move.lines
    return CommitState(version=state.version, lines=lines, hours=hours, days=days, ops=state.ops)


def commit_contribution(scope: str, state: CommitState) -> Deltas:
    """What one commit adds to the bucket items of `scope` (see the module docstring)."""
    deltas: Deltas = {}
    if not state.lines:
        return deltas
    for granularity in GRANULARITIES:
        indices = sorted(label_index(granularity, label) for label in state.counts(granularity))
        previous: int | None = None
        for index in indices:
            delta = deltas.setdefault(bucket_key(scope, granularity, index), BucketDelta())
            delta.add(LINES, state.lines)
            if previous is not None and index - previous < MAX_SPAN[granularity]:
                delta.add(GAP + str(index - previous), -state.lines)
            previous = index
    return deltas


def commit_deltas(scope: str, old: CommitState, new: CommitState) -> Deltas:
    deltas = commit_contribution(scope, new)
    for key, delta in commit_contribution(scope, old).items():
        deltas.setdefault(key, BucketDelta()).merge(delta.counters, -1)
    return {key: delta for key, delta in deltas.items() if delta}
