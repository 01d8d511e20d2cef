"""Property tests of the trailer reader (tracemark_common.trailers) and writer (the commit-msg hook,
tracemark.capture.githooks): never crashing on any message, round trip, idempotence, and agreement
with git itself (`git interpret-trailers --parse` reads our trailer back)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fuzzkit import fuzz
from hypothesis import assume, given
from hypothesis import strategies as st

from tracemark import gitutil
from tracemark.capture import githooks
from tracemark.gitutil import Repo
from tracemark_common.trailers import MAX_MESSAGE_CHARS, is_session_id, session_ids

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
session_id = st.text(ID_ALPHABET, min_size=1, max_size=40)
session_sets = st.lists(session_id, min_size=1, max_size=6, unique=True)

# Commit messages: arbitrary text, plus lines that look like trailers, comments, dividers and
# blank lines, so the interesting paragraph shapes come up often.
line = st.one_of(
    st.text(max_size=60),
    st.text("abcdefghij -", min_size=1, max_size=20),
    st.builds(
        lambda k, v: f"{k}: {v}",
        st.sampled_from(["Signed-off-by", "Co-authored-by", "Fixes", "X"]),
        st.text("abc@ .<>", max_size=20),
    ),
    st.builds(lambda v: f"Tracemark-Sessions: {v}", st.text(ID_ALPHABET + ", ", max_size=40)),
    st.builds(lambda v: f"chainloop-trace-sessions:{v}", st.text(ID_ALPHABET + ", ", max_size=40)),
    st.sampled_from(["", "", "# a comment", "---", " folded continuation", "\tindented"]),
)
messages = st.lists(line, max_size=12).map("\n".join)
clean_messages = messages.filter(lambda m: "\r" not in m and "\x00" not in m)


@given(st.text())
@fuzz(300)
def test_reader_never_crashes_and_returns_valid_unique_ids(message: str) -> None:
    ids = session_ids(message)
    assert len(ids) == len(set(ids))
    assert all(is_session_id(i) for i in ids)


@given(messages)
@fuzz(300)
def test_reader_ids_come_from_trailer_lines(message: str) -> None:
    ids = session_ids(message)
    trailer_lines = [
        x
        for x in message.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if x.lower().startswith(("tracemark-sessions:", "chainloop-trace-sessions:"))
    ]
    named = {part.strip() for x in trailer_lines for part in x.split(":", 1)[1].split(",")}
    assert set(ids) == {i for i in named if is_session_id(i)}


@given(st.lists(session_id, max_size=5), st.sampled_from(["\n", "\r\n", "\r"]))
@fuzz(100)
def test_reader_reads_any_line_ending(ids: list[str], newline: str) -> None:
    message = newline.join(
        ["subject", "", "body", "", f"Tracemark-Sessions: {', '.join(ids)}", "Signed-off-by: a <a@b>"]
    )
    assert session_ids(message) == list(dict.fromkeys(ids))


def test_reader_bounds_huge_messages() -> None:
    message = "x" * MAX_MESSAGE_CHARS + "\nTracemark-Sessions: late"
    assert session_ids(message) == []


@given(clean_messages, session_sets)
@fuzz(300)
def test_writer_round_trip_and_idempotence(message: str, ids: list[str]) -> None:
    value = ", ".join(sorted(ids))
    written = githooks._append_trailer(message, value)
    assume(written is not None)  # shapes git decides itself: covered by the git test below
    assert set(ids) <= set(session_ids(written))
    assert f"Tracemark-Sessions: {value}" in written.split("\n")
    # exactly one Tracemark-Sessions line in the trailer block (the last paragraph), and every
    # line of the message outside that block kept
    block = written.rstrip("\n").split("\n\n")[-1].split("\n")
    assert sum(1 for x in block if x.lower().startswith("tracemark-sessions:")) == 1
    kept = [x for x in message.rstrip("\n").split("\n") if not x.lower().startswith("tracemark-sessions:")]
    assert all(x in written.split("\n") for x in kept)
    # idempotent, or handed to git (folded values); the hook's whole path is checked with git below
    assert githooks._append_trailer(written, value) in (written, None)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("trailers-repo")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    found = gitutil.discover(str(root))
    assert found is not None
    return found


@given(
    clean_messages.filter(lambda m: m.strip() and any(x.strip() and not x.startswith("#") for x in m.split("\n"))),
    session_sets,
)
@fuzz(60)
def test_hook_trailer_is_read_back_by_git_and_by_us(repo: Repo, message: str, ids: list[str]) -> None:
    path = Path(repo.root) / "COMMIT_EDITMSG.fuzz"
    path.write_text(message.rstrip("\n") + "\n", encoding="utf-8")  # as git writes COMMIT_EDITMSG
    githooks.add_trailer(repo, str(path), ids)
    once = path.read_text(encoding="utf-8")
    githooks.add_trailer(repo, str(path), ids)
    assert path.read_text(encoding="utf-8") == once  # idempotent
    assert set(ids) <= set(session_ids(once))
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=once, capture_output=True, text=True, check=True, cwd=repo.root
    ).stdout
    git_values = [
        x.split(":", 1)[1].strip() for x in parsed.splitlines() if x.lower().startswith("tracemark-sessions:")
    ]
    assert git_values, f"git does not see our trailer in:\n{once!r}"
    assert set(ids) <= {p.strip() for v in git_values for p in v.split(",")}
