"""The static dashboard in headless Chromium against a stub API backed by the real rollups.

Numbers on the page are checked against the brute-force reference over the seeded sessions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from stub_api import StubApi, load_reference

from tracemark_common.rollups import InMemoryRollupStore, ModelUsage, RollupWriter, SessionFacts

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ref = load_reference()
HOSTILE = '<img src=x onerror="window.__pwned=1">'
SESSION_ID = "1dea3f43-4c8f-4625-8732-349613261162"
HUGE_MODEL = "model-" + "w" * 5000


def _session() -> dict[str, Any]:
    return {
        "id": SESSION_ID,
        "org": "acme",
        "project": "web",
        "user": "ana@example.com",
        "user_kind": "user",
        "agent": "claude-code",
        "started_at": "2026-11-24T13:59:31Z",
        "ended_at": "2026-11-24T14:59:46Z",
        "at": "2026-11-24T14:59:46Z",
        "received_at": "2026-11-24T15:00:02Z",
        "commits": 1,
        "commit_shas": ["f9ab7b49bd2f94a8925d55821792308f6ec87a57"],
        "attestations": ["sha256:abc"],
        "gated": False,
        "policy_results": [{"policy": "no-secrets", "status": "pass", "gate": True, "violations": []}],
        "model": "claude-opus-4-6",
        "models": ["claude-opus-4-6"],
        "total_tokens": 302,
        "cost_usd": 0.1917,
        "ai_lines_added": 8,
        "ai_lines_removed": 0,
        "flag": "yellow",
        "score": {
            "score": 72,
            "flag": "yellow",
            "summary": "Signed and complete; no tests ran after the last AI edit.",
            "criteria": {
                "provenance": {"flag": "green", "points": 0, "findings": []},
                "verification": {
                    "flag": "red",
                    "points": -20,
                    "findings": [{"points": -20, "severity": "red", "message": "no tests run after the last AI edit"}],
                },
            },
            "items": [
                {
                    "kind": "file",
                    "path": "main.go",
                    "line_ranges": [{"start": 6, "end": 6}],
                    "message": "untested AI code",
                },
            ],
        },
        "prs": [{"number": 17, "repository": "acme/web", "url": "https://github.com/acme/web/pull/17"}],
        "evidence": {
            "chainloop.material.evidence.id": "CHAINLOOP_AI_CODING_SESSION",
            "data": {
                "agent": {"name": "claude-code", "version": "2.1.92"},
                "session": {"id": SESSION_ID, "duration_seconds": 3615},
                "git_context": {
                    "repository": "git@github.com:acme/web.git",
                    "branch": "feature/credits",
                    "commit_start": "f9ab7b4",
                    "commit_end": "f9ab7b4",
                    "commit_count": 1,
                    "tracemark_commits": [
                        {
                            "sha": "f9ab7b49bd2f94a8925d55821792308f6ec87a57",
                            "files": ["go.mod", "main.go"],
                            "line_ranges": {"main.go": [{"start": 1, "end": 4}, {"start": 6, "end": 9}]},
                            "lines_added": 11,
                            "lines_removed": 0,
                            "ai_lines_added": 8,
                            "ai_lines_removed": 0,
                            "rewritten_from": ["0123456789abcdef0123456789abcdef01234567"],
                            "signature": "G",
                        }
                    ],
                },
                "code_changes": {
                    "files_created": 2,
                    "files_modified": 0,
                    "files_deleted": 0,
                    "lines_added": 11,
                    "lines_removed": 0,
                    "ai_lines_added": 8,
                    "ai_lines_removed": 0,
                    "human_lines_added": 3,
                    "human_lines_removed": 0,
                    "files": [
                        {
                            "path": "go.mod",
                            "status": "created",
                            "lines_added": 3,
                            "lines_removed": 0,
                            "attribution": "human",
                        },
                        {
                            "path": "main.go",
                            "status": "created",
                            "lines_added": 8,
                            "lines_removed": 0,
                            "attribution": "ai",
                            "line_ranges": [{"start": 1, "end": 4}, {"start": 6, "end": 9}],
                        },
                        {
                            "path": "src/" + "deep/" * 200 + HOSTILE,
                            "status": "modified",
                            "lines_added": 0,
                            "lines_removed": 0,
                            "attribution": "human",
                        },
                    ],
                },
                "model": {"primary": "claude-opus-4-6", "provider": "anthropic", "models_used": ["claude-opus-4-6"]},
                "usage": {
                    "input_tokens": 8,
                    "output_tokens": 294,
                    "total_tokens": 302,
                    "estimated_cost_usd": 0.1917,
                    "by_model": {
                        "claude-opus-4-6": {
                            "input_tokens": 8,
                            "output_tokens": 294,
                            "total_tokens": 302,
                            "estimated_cost_usd": 0.1917,
                        }
                    },
                },
                "tools_used": {
                    "summary": [
                        {"tool_name": "Read", "invocation_count": 1},
                        {"tool_name": "Edit", "invocation_count": 3},
                    ],
                    "total_invocations": 4,
                },
            },
        },
    }


@pytest.fixture(scope="module")
def world_and_api() -> Iterator[tuple[Any, StubApi]]:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    world = ref.run_workload(writer, seed=5, org="acme", sessions=70)
    for i in range(6):  # enough sessions to be a top user in every range
        hostile = SessionFacts(
            org="acme",
            project="web",
            session_id=f"evil{i}",
            user=HOSTILE,
            user_kind="service",
            at=ref.NOW - timedelta(minutes=i),
            total_tokens=2_000_000,
            models={HUGE_MODEL: ModelUsage(total_tokens=2_000_000)},
        )
        writer.record_session(None, hostile)
        world.sessions[hostile.session_id] = hostile
    minimal = {"id": "minimal", "org": "acme"}  # a session with every optional field missing
    more = [{"id": f"m{i:02d}", "org": "acme", "user": "bo", "project": "api"} for i in range(28)]
    sessions = [_session(), minimal, *more]
    api = StubApi(store, {"tok-acme": "acme", "tok-empty": "empty-org"}, sessions, ref.NOW).start()
    try:
        yield world, api
    finally:
        api.stop()


def _login(page: Any, url: str, token: str) -> None:
    page.goto(url + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Use token").click()


def _card(page: Any, key: str) -> str:
    return str(page.locator(f'[data-card="{key}"] .value').inner_text()).strip()


def _expected(world: Any, range_: str) -> dict[str, Any]:
    cur, _prev = ref.period_bounds(range_, ref.NOW)
    return ref.brute_period(world, "acme", None, cur)


def test_cards_match_brute_force_and_range_switch_changes_them(page: Any, world_and_api: Any, artifacts: Path) -> None:
    world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.locator('[data-card="total_sessions"] .value').wait_for()
    for range_, label in (("7d", None), ("30d", "30 days"), ("24h", "24 hours"), ("3m", "3 months")):
        if label:
            page.get_by_role("radio", name=label).check()
        want = _expected(world, range_)
        page.wait_for_function(
            "([n]) => document.querySelector('[data-card=total_sessions] .value')?.textContent === n",
            arg=[f"{want['sessions']:,}"],
        )
        assert page.locator("#period").inner_text().startswith("Last ")
        assert _card(page, "active_users") == f"{want['active_users']:,}"
        assert _card(page, "ai_assisted_prs") == f"{want['prs']:,}"
        assert _card(page, "total_tokens") == f"{want['tokens']:,}"
        pct = want["ai_percent"]
        assert _card(page, "ai_authored_code") == ("—" if pct is None else f"{pct:.1f}%")
        shown_cost = float(_card(page, "total_cost_usd").lstrip("$").replace(",", ""))
        assert abs(shown_cost - want["cost"]) <= 0.005 + 1e-9
        rows = page.locator("#users-table tbody tr")
        assert rows.count() == min(10, len(want["users"]))
        page.screenshot(path=str(artifacts / f"dashboard-{range_}.png"), full_page=True)
    # the hostile user name is text, never markup
    assert page.locator("#users-table").inner_text().count(HOSTILE) == 1
    assert page.locator("#users-table img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert "service account" in page.locator("#users-table tr", has_text=HOSTILE).inner_text()


def test_top_users_sort_by_column(page: Any, world_and_api: Any) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.locator("#users-table").wait_for()
    page.get_by_role("button", name="Tokens").click()
    assert page.locator("#users-table th[aria-sort=descending]").inner_text().startswith("Tokens")
    first = page.locator("#users-table tbody tr").first.locator("th").inner_text()
    assert HOSTILE in first  # ten million tokens: the top row by tokens


def test_session_page_renders_attribution_and_raw_json(page: Any, world_and_api: Any, artifacts: Path) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.get_by_role("link", name="Sessions").click()
    page.locator("#sessions-table").wait_for()
    page.locator("#sessions-table a").first.click()
    files = page.locator("#files-table")
    files.wait_for()
    row = files.locator("tr", has_text="main.go")
    assert "ai" in row.inner_text() and "1–4, 6–9" in row.inner_text()
    assert "human" in files.locator("tr", has_text="go.mod").inner_text()
    assert page.locator("#files-table img").count() == 0
    commit = page.locator("#commits-table tbody tr").first.inner_text()
    assert "main.go: 1–4, 6–9" in commit and "8 / 0" in commit and "11 / 0" in commit and "0123456789a" in commit
    assert "72" in page.locator(".score").inner_text()
    assert "no tests run after the last AI edit (-20)" in page.locator("#criteria-table").inner_text()
    assert "main.go · lines 6 — untested AI code" in page.locator(".review").inner_text()
    assert page.locator("#prs-table a").get_attribute("href") == "https://github.com/acme/web/pull/17"
    page.screenshot(path=str(artifacts / "session.png"), full_page=True)
    page.get_by_role("button", name="Raw JSON").click()
    raw = page.locator("#session-raw")
    assert raw.is_visible() and SESSION_ID in raw.inner_text()
    assert '"line_ranges"' in raw.inner_text()
    page.screenshot(path=str(artifacts / "session-raw.png"))


def test_bad_token_shows_an_error_that_says_what_to_do(page: Any, world_and_api: Any) -> None:
    _world, api = world_and_api
    _login(page, api.url, "not-a-token")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "invalid_token" in alert.inner_text() and "API token" in alert.inner_text()
    assert page.evaluate("sessionStorage.getItem('tracemark.token')") == "not-a-token"


def test_org_without_data_shows_an_empty_state(page: Any, world_and_api: Any, artifacts: Path) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-empty")
    empty = page.locator("#empty")
    empty.wait_for()
    assert "No sessions yet" in empty.inner_text()
    assert _card(page, "total_sessions") == "—"
    page.screenshot(path=str(artifacts / "dashboard-empty.png"))


def test_unknown_range_from_the_api_is_reported(page: Any, world_and_api: Any) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.locator("#users-table").wait_for()
    page.evaluate("document.querySelector('input[value=\"3m\"]').value = '1y'")
    page.get_by_role("radio", name="3 months").check()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "bad_range" in alert.inner_text()


def test_phone_width_is_readable(chromium: Any, world_and_api: Any, artifacts: Path) -> None:
    _world, api = world_and_api
    context = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = context.new_page()
    try:
        _login(page, api.url, "tok-acme")
        page.locator("#users-table").wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)
    finally:
        context.close()


def test_sessions_list_shows_summary_fields(page: Any, world_and_api: Any) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.get_by_role("link", name="Sessions").click()
    row = page.locator("#sessions-table tbody tr").first
    row.wait_for()
    text = row.inner_text()
    assert "claude-opus-4-6" in text and "302" in text and "$0.19" in text and "72" in text and "yellow" in text


def test_keyboard_switches_the_range_and_every_control_is_labelled(page: Any, world_and_api: Any) -> None:
    world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.locator("#users-table").wait_for()
    # every text field and select has an accessible name
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=radio]), select')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.id || el.name)"""
    )
    assert unnamed == []
    # arrow keys move through the range radios, and the cards follow
    page.get_by_role("radio", name="7 days").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("radio", name="30 days").is_checked()
    want = _expected(world, "30d")
    page.wait_for_function(
        "([n]) => document.querySelector('[data-card=total_sessions] .value')?.textContent === n",
        arg=[f"{want['sessions']:,}"],
    )


def test_session_with_missing_fields_and_huge_names_render_cleanly(page: Any, world_and_api: Any) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.locator("#models li").first.wait_for()
    # a 5,000-character model name is shortened on screen, kept whole in the tooltip
    label = page.locator("#models .hbar-label", has_text="model-www")
    assert len(label.inner_text()) < 60 and label.get_attribute("title") == HUGE_MODEL
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # a session with nothing but an id still renders every section, with dashes and hints
    page.goto(api.url + "/#/sessions/minimal")
    page.locator("#files-table, #session-rendered p.muted").first.wait_for()
    text = page.locator("#session-rendered").inner_text()
    assert "Not scored yet" in text and "No file changes recorded." in text and "minimal" in text


def test_sessions_list_pages_and_filters(page: Any, world_and_api: Any) -> None:
    _world, api = world_and_api
    _login(page, api.url, "tok-acme")
    page.get_by_role("link", name="Sessions").click()
    rows = page.locator("#sessions-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 25
    page.get_by_role("button", name="Load more").click()
    page.wait_for_function("() => document.querySelectorAll('#sessions-table tbody tr').length === 30")
    assert page.get_by_role("button", name="Load more").is_hidden()
    page.get_by_role("textbox", name="User", exact=True).fill("ana@example.com")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function("() => document.querySelectorAll('#sessions-table tbody tr').length === 1")
    assert any("user=ana%40example.com" in r for r in api.requests)
