"""What the dashboard rollups need to know about one session (SPEC §3.7).

Ingest derives `SessionFacts` from a stored session (after merging its attestations) and hands
the old and new facts to the rollup writer, which moves every counter by the difference. Pure
data: no AWS, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ModelUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0  # input + output, as in Chainloop
    cost_usd: float = 0.0
    priced: bool = True  # False: the model is not in the price table (its cost is unknown, not $0)


@dataclass(frozen=True)
class CommitLines:
    """Lines of one commit of the session. `ai_*` are this session's AI lines in that commit;
    `lines_*` are all lines of the commit (AI of any session plus human)."""

    lines_added: int = 0
    lines_removed: int = 0
    ai_lines_added: int = 0
    ai_lines_removed: int = 0


@dataclass(frozen=True)
class SessionFacts:
    org: str
    project: str
    session_id: str
    user: str  # the pushing token's `sub` (user or service account)
    user_kind: str  # "user" | "service"
    at: datetime  # ended_at clamped to [started_at, received_at], timezone-aware UTC
    models: dict[str, ModelUsage] = field(default_factory=dict)  # model id -> usage
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # of the priced models
    unpriced: bool = False  # a model the session used has no price: `cost_usd` is a lower bound
    commits: dict[str, CommitLines] = field(default_factory=dict)  # sha -> lines

    @property
    def ai_lines(self) -> int:
        return sum(c.ai_lines_added + c.ai_lines_removed for c in self.commits.values())

    @property
    def all_lines(self) -> int:
        return sum(c.lines_added + c.lines_removed for c in self.commits.values())
