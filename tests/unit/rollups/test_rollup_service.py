"""Who may read which dashboard, and how bad query parameters are answered."""

from __future__ import annotations

import pytest
from rollup_reference import NOW

from tracemark_common.auth import Principal
from tracemark_common.errors import BadRequest, Forbidden, NotFound
from tracemark_common.rollups import InMemoryRollupStore, RollupWriter, SessionFacts
from tracemark_common.rollups.service import dashboard_for

PROJECTS = {("acme", "web"), ("other", "secret")}


def _principal(org: str | None = "acme", role: str = "member", scopes: tuple[str, ...] = ("read",)) -> Principal:
    return Principal(org=org, sub="ana", role=role, scopes=scopes, token_id="t1", kind="user")


def _exists(org: str, name: str) -> bool:
    return (org, name) in PROJECTS


@pytest.fixture
def store() -> InMemoryRollupStore:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    for org, project in sorted(PROJECTS):
        writer.record_session(
            None, SessionFacts(org=org, project=project, session_id="s", user="u", user_kind="user", at=NOW)
        )
    return store


def test_any_token_of_the_org_reads_its_own_dashboard(store: InMemoryRollupStore) -> None:
    service = _principal(role="service", scopes=("push",))
    result = dashboard_for(service, "24h", None, store=store, project_exists=_exists, now=NOW)
    assert result["org"] == "acme" and result["cards"]["total_sessions"]["value"] == 1


def test_default_range_is_seven_days(store: InMemoryRollupStore) -> None:
    assert dashboard_for(_principal(), None, "web", store=store, project_exists=_exists, now=NOW)["range"] == "7d"


def test_another_orgs_project_is_unknown(store: InMemoryRollupStore) -> None:
    with pytest.raises(NotFound) as info:
        dashboard_for(_principal(), "7d", "secret", store=store, project_exists=_exists, now=NOW)
    assert info.value.code == "unknown_project"


@pytest.mark.parametrize("project", ["", "p" * 129])
def test_malformed_project_is_a_bad_request(store: InMemoryRollupStore, project: str) -> None:
    with pytest.raises(BadRequest):
        dashboard_for(_principal(), "7d", project, store=store, project_exists=_exists, now=NOW)


@pytest.mark.parametrize("range_", ["", "1y", "7d,30d", "\u0000" * 5000])
def test_bad_range_is_400(store: InMemoryRollupStore, range_: str) -> None:
    with pytest.raises(BadRequest) as info:
        dashboard_for(_principal(), range_, None, store=store, project_exists=_exists, now=NOW)
    assert info.value.code == "bad_range" and len(info.value.message) < 200


def test_server_admin_has_no_dashboard(store: InMemoryRollupStore) -> None:
    admin = _principal(org=None, role="server_admin", scopes=("admin",))
    with pytest.raises(Forbidden):
        dashboard_for(admin, "7d", None, store=store, project_exists=_exists, now=NOW)
