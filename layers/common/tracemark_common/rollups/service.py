"""The metrics API's domain function: who may see which dashboard (SPEC §3.1, §3.7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tracemark_common.auth import Principal, require_org
from tracemark_common.errors import BadRequest, NotFound
from tracemark_common.rollups.buckets import RANGES
from tracemark_common.rollups.query import query_dashboard
from tracemark_common.rollups.store import RollupStore

DEFAULT_RANGE = "7d"
MAX_PROJECT_NAME = 128


def dashboard_for(
    principal: Principal,
    range_: str | None,
    project: str | None,
    *,
    store: RollupStore,
    project_exists: Callable[[str, str], bool],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The dashboard of the caller's organisation (any token of the organisation may read it).

    `range_` defaults to 7d; an unknown range is a 400 `bad_range`; a `project` that is not one
    of the organisation's is a 404 `unknown_project` (never another organisation's numbers)."""
    org = require_org(principal)
    range_ = DEFAULT_RANGE if range_ is None else range_
    if range_ not in RANGES:
        raise BadRequest(f"range must be one of {', '.join(RANGES)}; got {repr(range_)[:40]}", code="bad_range")
    if project is not None:
        if not project or len(project) > MAX_PROJECT_NAME:
            raise BadRequest(f"project must be 1 to {MAX_PROJECT_NAME} characters", code="bad_project")
        if not project_exists(org, project):
            shown = repr(project)[:60]
            raise NotFound(f"project {shown} does not exist in organisation {org!r}", code="unknown_project")
    return query_dashboard(store, org, range_, project, now)
