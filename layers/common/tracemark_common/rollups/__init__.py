"""Dashboard rollups: written at ingest, read by the metrics API (SPEC §3.7).

Pure parts (facts, buckets, deltas, query) import with the CLI's dependencies only; the DynamoDB
adapter lives in `tracemark_common.rollups.dynamo` (server only).
"""

from tracemark_common.rollups.buckets import RANGES
from tracemark_common.rollups.facts import CommitLines, ModelUsage, SessionFacts
from tracemark_common.rollups.query import query_dashboard
from tracemark_common.rollups.store import InMemoryRollupStore, RollupStore
from tracemark_common.rollups.writer import RollupWriter

__all__ = [
    "RANGES",
    "CommitLines",
    "InMemoryRollupStore",
    "ModelUsage",
    "RollupStore",
    "RollupWriter",
    "SessionFacts",
    "query_dashboard",
]
