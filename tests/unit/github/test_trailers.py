"""The trailer reader of SPEC §2.4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemark_common.trailers import is_session_id, session_ids

FIXTURES = Path(__file__).parents[2] / "fixtures" / "github"


def test_both_keys_any_case_split_and_trimmed() -> None:
    message = (
        "feat: thing\n\nbody\n\n"
        "Signed-off-by: A <a@example.com>\n"
        "tracemark-sessions:  s1 , s2,s1\n"
        "CHAINLOOP-TRACE-SESSIONS: c-3\n"
    )
    assert session_ids(message) == ["s1", "s2", "c-3"]


def test_squash_merge_body_still_counts() -> None:
    # Given GitHub's squash message: trailers of each commit moved into bullet-free body lines
    message = "Big PR (#12)\n\n* first\n\nTracemark-Sessions: a1\n\n* second\nTracemark-Sessions: b2\n\nmore prose"
    assert session_ids(message) == ["a1", "b2"]


@pytest.mark.parametrize(
    "message",
    [
        "",
        "no trailers here",
        "Tracemark-Sessions:",
        "Tracemark-Sessions: ../../etc/passwd, <script>, a b",
        "  Tracemark-Sessions: indented",  # not at the start of a line
        "X-Tracemark-Sessions: nope",
        "Tracemark-Sessions " + "x",
        "Tracemark-Sessions: " + "a" * 129,
    ],
)
def test_nothing_or_only_invalid_ids(message: str) -> None:
    assert session_ids(message) == []


def test_empty_trailer_does_not_swallow_next_line() -> None:
    assert session_ids("Tracemark-Sessions:\nabc") == []


def test_crlf_messages() -> None:
    assert session_ids("x\r\n\r\nTracemark-Sessions: a, b\r\n") == ["a", "b"]


def test_id_rules() -> None:
    assert is_session_id("a" * 128)
    assert not is_session_id("a" * 129)
    assert is_session_id("1dea3f43-4c8f-4625-8732-349613261162")
    assert not is_session_id("a.b")


def test_real_commit_message_from_the_recorded_exchange() -> None:
    # The recorded PyGithub commit ends in a Signed-off-by trailer and names no session.
    exchange = json.loads((FIXTURES / "github_api_pull_commits.exchange.json").read_text())
    for item in exchange["exchanges"][0]["response"]["body"]:
        message = item["commit"]["message"]
        assert session_ids(message) == []
        assert session_ids(message + "\nTracemark-Sessions: s-1") == ["s-1"]


def test_huge_message_is_bounded() -> None:
    message = "x\n" * 2_000_000 + "Tracemark-Sessions: late"
    assert session_ids(message) == []


@given(st.text(max_size=500))
def test_never_crashes_and_returns_valid_ids(text: str) -> None:
    for value in session_ids(text):
        assert is_session_id(value)
