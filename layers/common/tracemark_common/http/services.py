"""The collaborators the API routes use, built from settings at first use (server-only).

Tests swap them with `use_services(Services(...))` (in-memory store and blobs, fixed keys).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from tracemark_common.auth import AuthConfig, default_config
from tracemark_common.ingest import PolicyEvaluator, PolicyReportLike, RollupWriterLike
from tracemark_common.settings import ServerSettings
from tracemark_common.store.base import AppStore, BlobStore


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    store: AppStore
    blobs: BlobStore
    auth_config: Callable[[], AuthConfig]
    policy_evaluator: PolicyEvaluator
    rollup_writer: RollupWriterLike
    base_url: str = ""  # empty: derived from the request (PUBLIC_BASE_URL may be empty on AWS)
    clock: Callable[[], datetime] = field(default=_now)
    after_ingest: Callable[[str, str, str], object] | None = None  # (org, session id, digest)


@dataclass(frozen=True)
class _EmptyReport:
    results: list[dict[str, Any]]
    gated: bool = False


def default_policy_evaluator(
    contract_yaml: str | None, org_policies: Mapping[str, str], gate_default: bool, envelope: dict[str, Any]
) -> PolicyReportLike:
    """H1b's `tracemark_common.policy.evaluate_session`; with no policy package, no results."""
    try:
        from tracemark_common.policy import evaluate_session
    except ImportError:
        return _EmptyReport(results=[])
    report: PolicyReportLike = evaluate_session(contract_yaml, org_policies, gate_default, envelope)
    return report


def _default_after_ingest() -> Callable[[str, str, str], object] | None:
    """Re-correlate open PRs that name the session (SPEC §3.2), when the PR workflow is there."""
    try:
        from tracemark_common.prs.runtime import correlate_again
    except ImportError:
        return None
    return correlate_again


class _NullRollups:
    def record_session(self, before: Any, after: Any) -> None:
        return None

    def complete_pending(self, org: str) -> int:
        return 0


def _default_rollups() -> RollupWriterLike:
    try:
        from tracemark_common.rollups import RollupWriter
        from tracemark_common.rollups.dynamo import rollup_store_from_settings
    except ImportError:
        return _NullRollups()
    return RollupWriter(rollup_store_from_settings())


_override: Services | None = None


def use_services(value: Services | None) -> None:
    """Replace the collaborators (tests); None goes back to the defaults."""
    global _override  # noqa: PLW0603 - one process-wide switch, for tests
    _override = value


def services() -> Services:
    if _override is not None:
        return _override
    from tracemark_common.settings import get_settings

    return _default_services(get_settings(), os.environ.get("AWS_ENDPOINT_URL", ""))


@lru_cache(maxsize=4)
def _default_services(settings: ServerSettings, endpoint: str) -> Services:
    """One set per configuration (the settings are frozen; a changed environment is a new key)."""
    from tracemark_common.store import default_blobs, default_store

    return Services(
        store=default_store(),
        blobs=default_blobs(),
        auth_config=default_config,
        policy_evaluator=default_policy_evaluator,
        rollup_writer=_default_rollups(),
        base_url=settings.public_base_url,
        after_ingest=_default_after_ingest(),
    )
