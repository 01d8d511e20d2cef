"""Time rules and item keys of the dashboard rollups (SPEC §3.7). Pure: no AWS, no HTTP.

Buckets are UTC hours (for the `24h` range) and UTC days (for `7d`, `30d`, `3m`). A bucket is
identified by an integer index (hours since the epoch, or the proleptic ordinal of the day) and
stored under a readable label (`2026-11-24T15`, `2026-11-24`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from urllib.parse import quote

Granularity = Literal["H", "D"]
HOUR: Granularity = "H"
DAY: Granularity = "D"
GRANULARITIES: tuple[Granularity, ...] = (HOUR, DAY)

# The longest range served at each granularity, in buckets. Two buckets further apart than this
# can never both fall in one queried period, which bounds the commit de-duplication terms.
MAX_SPAN: dict[Granularity, int] = {HOUR: 24, DAY: 90}

Key = tuple[str, str]  # (pk, sk)


@dataclass(frozen=True)
class RangeSpec:
    name: str
    granularity: Granularity
    buckets: int


RANGES: dict[str, RangeSpec] = {
    "24h": RangeSpec("24h", HOUR, 24),
    "7d": RangeSpec("7d", DAY, 7),
    "30d": RangeSpec("30d", DAY, 30),
    "3m": RangeSpec("3m", DAY, 90),
}


def to_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def bucket_index(granularity: Granularity, moment: datetime) -> int:
    utc = to_utc(moment)
    if granularity == HOUR:
        return utc.toordinal() * 24 + utc.hour
    return utc.toordinal()


def bucket_start(granularity: Granularity, index: int) -> datetime:
    if granularity == HOUR:
        day = date.fromordinal(index // 24)
        return datetime(day.year, day.month, day.day, index % 24, tzinfo=UTC)
    day = date.fromordinal(index)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def bucket_end(granularity: Granularity, index: int) -> datetime:
    """The exclusive end of a bucket."""
    return bucket_start(granularity, index) + (timedelta(hours=1) if granularity == HOUR else timedelta(days=1))


def bucket_label(granularity: Granularity, index: int) -> str:
    start = bucket_start(granularity, index)
    return start.strftime("%Y-%m-%dT%H") if granularity == HOUR else start.date().isoformat()


def label_index(granularity: Granularity, label: str) -> int:
    if granularity == HOUR:
        return bucket_index(HOUR, datetime.strptime(label, "%Y-%m-%dT%H").replace(tzinfo=UTC))
    return date.fromisoformat(label).toordinal()


def periods(spec: RangeSpec, now: datetime) -> tuple[range, range]:
    """(current, previous) bucket indices: the last `spec.buckets` buckets, the current one
    included, and the same number of buckets just before them."""
    end = bucket_index(spec.granularity, now)
    start = end - spec.buckets + 1
    return range(start, end + 1), range(start - spec.buckets, start)


# ---- keys -------------------------------------------------------------------------------------


def _part(name: str) -> str:
    return quote(name, safe="")


def scope_id(org: str, project: str | None = None) -> str:
    """`O#<org>` for the whole organisation, `P#<org>#<project>` for one of its projects."""
    return f"P#{_part(org)}#{_part(project)}" if project else f"O#{_part(org)}"


def scopes(org: str, project: str | None) -> list[str]:
    return [scope_id(org), scope_id(org, project)] if project else [scope_id(org)]


def bucket_key(scope: str, granularity: Granularity, index: int) -> Key:
    return f"ROLLUP#{scope}", f"{granularity}#{bucket_label(granularity, index)}"


def commit_key(scope: str, sha: str) -> Key:
    return f"ROLLUPCOMMIT#{scope}#{_part(sha.lower())}", "STATE"


def pr_key(org: str, repo_id: str, pr_number: int) -> Key:
    return f"ROLLUPPR#{_part(org)}#{_part(repo_id)}#{pr_number}", "FIRST"


def short_hash(name: str) -> str:
    """A fixed-size attribute-name suffix for a user or model name of any length."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
