"""Dashboard rollups: written at ingest, read by the metrics API (SPEC §3.7)."""

from tracemark_common.rollups.facts import CommitLines, ModelUsage, SessionFacts

__all__ = ["CommitLines", "ModelUsage", "SessionFacts"]
