"""The dashboard served by the real `tracemark serve`, seeded through the real API with signed
attestations, in headless Chromium. Expected numbers are worked out by hand below."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tracemark_common import dsse

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_BUILDERS = Path(__file__).resolve().parents[2] / "unit" / "backend" / "attest_builders.py"


def _builders() -> Any:
    name = "attest_builders_for_browser"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _BUILDERS)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _api(stack: Any, method: str, path: str, token: str, status: int, **kwargs: Any) -> Any:
    resp = requests.request(
        method, stack.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )
    assert resp.status_code == status, resp.text
    return resp.json()


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


USAGE = {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150, "estimated_cost_usd": 0.25}


@pytest.fixture(scope="module")
def seeded(served_stack: Any) -> dict[str, Any]:
    """Two developers, four sessions. Commit 2 is shared by s-a and s-b (its 10 lines count once).

    | session | user | ended | commits (AI of 10 lines) |
    | s-a | dev | 3 h ago | c1 (8), c2 (8) |
    | s-b | dev | 2 h ago | c2 (0), c3 (8) |
    | s-c | ana | 1 h ago | c4 (2) |
    | s-d | ana | 10 days ago | c5 (8) |

    7 days: 3 sessions, 2 users, 450 tokens, $0.75, AI 26 of 40 lines = 65.0%; previous 7 days:
    1 session (s-d). 30 days: 4 sessions, 600 tokens, $1.00, AI 34 of 50 lines = 68.0%."""
    b = _builders()
    org = "br-" + uuid.uuid4().hex[:10]
    admin = _api(served_stack, "POST", "/v1/orgs", served_stack.admin_token, 201, json={"name": org})["token"]
    _api(served_stack, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    people = {}
    for subject in ("dev", "ana"):
        token = _api(served_stack, "POST", "/v1/tokens", admin, 201, json={"subject": subject, "kind": "user"})["token"]
        key = dsse.generate_private_key()
        _api(served_stack, "POST", "/v1/keys", token, 201, json={"public_key_pem": b.public_pem(key)})
        people[subject] = (token, key)
    plan = [
        ("s-a", "dev", {"hours": 3}, [b.commit_entry(1), b.commit_entry(2)]),
        ("s-b", "dev", {"hours": 2}, [b.commit_entry(2, ai=0), b.commit_entry(3)]),
        ("s-c", "ana", {"hours": 1}, [b.commit_entry(4, ai=2)]),
        ("s-d", "ana", {"days": 10}, [b.commit_entry(5)]),
    ]
    for session, who, ago, commits in plan:
        token, key = people[who]
        ended = ago.copy()
        started = {k: v + (0.05 if k == "hours" else 0.01) for k, v in ago.items()}
        ev = b.evidence(session, started=_ago(**started), ended=_ago(**ended), commits=commits, usage=dict(USAGE))
        envelope = b.sign(b.statement(ev, org=org, project="web"), key)
        _api(served_stack, "POST", "/v1/attestations", token, 201, json=envelope)
    return {"org": org, "admin": admin, "dev": people["dev"][0]}


def _login(page: Any, url: str, token: str) -> None:
    page.goto(url + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Use token").click()


def _value(page: Any, key: str) -> str:
    return str(page.locator(f'[data-card="{key}"] .value').inner_text()).strip()


def _wait_for(page: Any, key: str, text: str) -> None:
    page.wait_for_function(
        "([k, t]) => document.querySelector(`[data-card=${k}] .value`)?.textContent === t", arg=[key, text]
    )


def test_served_dashboard_shows_the_seeded_numbers(
    page: Any, served_stack: Any, seeded: dict[str, Any], artifacts: Path
) -> None:
    _login(page, served_stack.url, seeded["admin"])
    _wait_for(page, "total_sessions", "3")
    assert _value(page, "active_users") == "2"
    assert _value(page, "total_tokens") == "450"
    assert _value(page, "total_cost_usd") == "$0.75"
    assert _value(page, "ai_authored_code") == "65.0%"
    card = page.locator('[data-card="total_sessions"]').inner_text()
    assert "up 2 (+200.0%)" in card and "previous: 1" in card
    page.screenshot(path=str(artifacts / "served-dashboard-7d.png"), full_page=True)
    # the range switch changes them
    page.get_by_role("radio", name="30 days").check()
    _wait_for(page, "total_sessions", "4")
    assert _value(page, "total_tokens") == "600"
    assert _value(page, "ai_authored_code") == "68.0%"
    assert _value(page, "total_cost_usd") == "$1.00"
    users = page.locator("#users-table tbody tr")
    assert users.count() == 2
    assert users.nth(0).inner_text().startswith("ana") or users.nth(0).inner_text().startswith("dev")


def test_served_session_page_renders_attribution_and_raw_view(
    page: Any, served_stack: Any, seeded: dict[str, Any], artifacts: Path
) -> None:
    _login(page, served_stack.url, seeded["dev"])
    page.get_by_role("link", name="Sessions").click()
    page.locator("#sessions-table").wait_for()
    assert page.locator("#sessions-table tbody tr").count() == 4
    page.get_by_role("link", name="s-a", exact=True).click()
    page.locator("#files-table").wait_for()
    assert page.locator("#commits-table tbody tr").count() == 2
    assert "ai" in page.locator("#files-table").inner_text() or "human" in page.locator("#files-table").inner_text()
    page.screenshot(path=str(artifacts / "served-session.png"), full_page=True)
    page.get_by_role("button", name="Raw JSON").click()
    assert '"id": "s-a"' in page.locator("#session-raw").inner_text()


def test_served_bad_token_says_so(page: Any, served_stack: Any, seeded: dict[str, Any]) -> None:
    _login(page, served_stack.url, "eyJhbGciOiJub25lIn0.e30.")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "API token" in alert.inner_text()
