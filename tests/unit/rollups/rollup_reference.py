"""A brute-force reference for the dashboard (SPEC §3.7) and a random workload generator.

The reference reads every live session and computes each card directly from the definitions,
with none of the rollup machinery, so the rollup query can be checked against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tracemark_common.rollups import CommitLines, ModelUsage, RollupWriter, SessionFacts

RANGE_DEF = {"24h": ("hour", 24), "7d": ("day", 7), "30d": ("day", 30), "3m": ("day", 90)}


def period_bounds(range_: str, now: datetime) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    unit, n = RANGE_DEF[range_]
    if unit == "hour":
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        length = timedelta(hours=n)
    else:
        d = now.date() + timedelta(days=1)
        end = datetime(d.year, d.month, d.day, tzinfo=UTC)
        length = timedelta(days=n)
    return (end - length, end), (end - 2 * length, end - length)


@dataclass
class PrEvent:
    org: str
    project: str | None
    repo_id: str
    number: int
    at: datetime


@dataclass
class World:
    """The truth: live sessions by id and PR correlations in call order."""

    sessions: dict[str, SessionFacts] = field(default_factory=dict)
    prs: list[PrEvent] = field(default_factory=list)


def _in(moment: datetime, bounds: tuple[datetime, datetime]) -> bool:
    return bounds[0] <= moment < bounds[1]


def brute_period(world: World, org: str, project: str | None, bounds: tuple[datetime, datetime]) -> dict[str, Any]:
    sessions = [
        s
        for s in world.sessions.values()
        if s.org == org and (project is None or s.project == project) and _in(s.at, bounds)
    ]
    first: dict[tuple[str, str, int], PrEvent] = {}
    for pr in world.prs:
        first.setdefault((pr.org, pr.repo_id, pr.number), pr)
    prs = [
        pr
        for pr in first.values()
        if pr.org == org and (project is None or pr.project == project) and _in(pr.at, bounds)
    ]
    commit_lines: dict[str, int] = {}
    for s in sessions:
        for sha, c in s.commits.items():
            commit_lines[sha.lower()] = c.lines_added + c.lines_removed
    users: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, int]] = {}
    for s in sessions:
        u = users.setdefault(
            s.user, {"user": s.user, "kind": s.user_kind, "sessions": 0, "ai_lines": 0, "tokens": 0, "cost": 0.0}
        )
        u["sessions"] += 1
        u["ai_lines"] += s.ai_lines
        u["tokens"] += s.total_tokens
        u["cost"] += s.cost_usd
        for model, usage in s.models.items():
            m = models.setdefault(model, {"sessions": 0, "tokens": 0})
            m["sessions"] += 1
            m["tokens"] += usage.total_tokens
    ai = sum(s.ai_lines for s in sessions)
    all_lines = sum(commit_lines.values())
    return {
        "sessions": len(sessions),
        "active_users": len({s.user for s in sessions}),
        "prs": len(prs),
        "ai_lines": ai,
        "all_lines": all_lines,
        "ai_percent": None if all_lines == 0 else ai * 100 / all_lines,
        "cost": sum(s.cost_usd for s in sessions),
        "tokens": sum(s.total_tokens for s in sessions),
        "users": users,
        "models": models,
    }


def top_users(period: dict[str, Any]) -> list[dict[str, Any]]:
    rows = sorted(period["users"].values(), key=lambda u: (-u["sessions"], -u["ai_lines"], -u["tokens"], u["user"]))
    return rows[:10]


def assert_matches(
    result: dict[str, Any], world: World, org: str, project: str | None, *, range_: str, now: datetime
) -> None:
    cur_bounds, prev_bounds = period_bounds(range_, now)
    cur, prev = brute_period(world, org, project, cur_bounds), brute_period(world, org, project, prev_bounds)
    cards = result["cards"]
    where = f"{range_} project={project} now={now.isoformat()}"
    for name, key in (
        ("total_sessions", "sessions"),
        ("active_users", "active_users"),
        ("ai_assisted_prs", "prs"),
        ("total_tokens", "tokens"),
    ):
        c = cards[name]
        assert (c["value"], c["previous"]) == (cur[key], prev[key]), f"{name} {where}"
        assert c["delta"] == cur[key] - prev[key]
        expected_pct = None if prev[key] == 0 else round((cur[key] - prev[key]) * 100 / prev[key], 2)
        assert c["delta_pct"] == expected_pct, f"{name} delta_pct {where}"
    code = cards["ai_authored_code"]
    assert (code["ai_lines"], code["all_lines"]) == (cur["ai_lines"], cur["all_lines"]), f"ai code lines {where}"
    assert (code["previous_ai_lines"], code["previous_all_lines"]) == (prev["ai_lines"], prev["all_lines"]), where
    for got, want in ((code["value"], cur["ai_percent"]), (code["previous"], prev["ai_percent"])):
        assert (got is None) == (want is None), where
        if want is not None:
            assert abs(got - want) <= 0.005 + 1e-9, where
    cost = cards["total_cost_usd"]
    assert abs(cost["value"] - cur["cost"]) < 1e-5 and abs(cost["previous"] - prev["cost"]) < 1e-5, where
    expected_top = top_users(cur)
    assert [(u["user"], u["sessions"], u["ai_lines"], u["tokens"]) for u in result["top_users"]] == [
        (u["user"], u["sessions"], u["ai_lines"], u["tokens"]) for u in expected_top
    ], f"top users {where}"
    for got_u, want_u in zip(result["top_users"], expected_top, strict=True):
        assert got_u["service_account"] == (want_u["kind"] == "service")
        assert abs(got_u["cost_usd"] - want_u["cost"]) < 1e-5
    assert {m["model"]: (m["sessions"], m["tokens"]) for m in result["model_breakdown"]} == {
        name: (m["sessions"], m["tokens"]) for name, m in cur["models"].items()
    }, f"models {where}"
    assert sum(point["sessions"] for point in result["series"]) == cur["sessions"]
    assert sum(point["ai_assisted_prs"] for point in result["series"]) == cur["prs"]


# ---- workload ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 15, 20, tzinfo=UTC)
PROJECTS = ("web", "api", "ml#1")
USERS = [(f"user-{i}@example.com", "user") for i in range(11)] + [("ci-bot", "service"), ("deploy-bot", "service")]
MODELS = ("claude-opus-4-6", "claude-sonnet-4-5", "gpt-5")


def random_time(rng: random.Random) -> datetime:
    if rng.random() < 0.4:  # recent: exercises the hourly buckets
        return NOW - timedelta(minutes=rng.randint(0, 60 * 50))
    return NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 200))


def random_facts(rng: random.Random, org: str, session_id: str, commit_pool: dict[str, int]) -> SessionFacts:
    user, kind = rng.choice(USERS)
    models = {}
    for model in rng.sample(MODELS, rng.randint(0, 2)):
        tokens = rng.randint(0, 5000)
        models[model] = ModelUsage(
            input_tokens=tokens // 3,
            output_tokens=tokens - tokens // 3,
            total_tokens=tokens,
            cost_usd=round(rng.random(), 4),
        )
    commits = {}
    for sha in rng.sample(sorted(commit_pool), rng.randint(0, 3)):
        total = commit_pool[sha]
        added = total * 2 // 3
        commits[sha] = CommitLines(
            lines_added=added,
            lines_removed=total - added,
            ai_lines_added=rng.randint(0, added // 3),
            ai_lines_removed=rng.randint(0, (total - added) // 3),
        )
    started = random_time(rng)
    return SessionFacts(
        org=org,
        project=rng.choice(PROJECTS),
        session_id=session_id,
        user=user,
        user_kind=kind,
        at=started,
        models=models,
        total_tokens=sum(m.total_tokens for m in models.values()),
        input_tokens=sum(m.input_tokens for m in models.values()),
        output_tokens=sum(m.output_tokens for m in models.values()),
        cost_usd=round(sum(m.cost_usd for m in models.values()), 6),
        commits=commits,
    )


def run_workload(writer: RollupWriter, seed: int, org: str = "acme", sessions: int = 80) -> World:
    """Random sessions, then re-pushes (time, commits and project move), deletions and PRs."""
    rng = random.Random(seed)
    world = World()
    commit_pool = {f"{rng.getrandbits(160):040x}": rng.randint(1, 400) for _ in range(25)}
    for i in range(sessions):
        facts = random_facts(rng, org, f"s{i}", commit_pool)
        writer.record_session(None, facts)
        world.sessions[facts.session_id] = facts
    for sid in rng.sample(sorted(world.sessions), sessions // 4):
        before = world.sessions[sid]
        after = replace(random_facts(rng, org, sid, commit_pool), user=before.user, user_kind=before.user_kind)
        if rng.random() < 0.3:
            after = replace(after, commits=before.commits)
        writer.record_session(before, after)
        world.sessions[sid] = after
    for sid in rng.sample(sorted(world.sessions), sessions // 10):
        writer.record_session(world.sessions.pop(sid), None)
    for _ in range(sessions // 3):
        pr = PrEvent(org, rng.choice((*PROJECTS, None)), str(rng.randint(1, 3)), rng.randint(1, 15), random_time(rng))
        writer.record_pr_correlated(pr.org, pr.project, pr.repo_id, pr.number, pr.at)
        world.prs.append(pr)
    return world


def query_times() -> list[datetime]:
    return [
        NOW,
        NOW - timedelta(hours=5, minutes=1),
        NOW - timedelta(days=40),
        datetime.combine(date(2026, 11, 24), datetime.min.time(), UTC),
    ]
