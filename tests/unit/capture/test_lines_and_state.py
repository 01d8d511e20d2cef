"""Pure pieces of capture: line matching, ownership, ranges, payload parsing, Cursor edit mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemark.capture import agent
from tracemark.capture import lines as L
from tracemark.capture.filestate import FileState, attribute, begin_tool, end_tool
from tracemark.capture.state import StateDir, safe_key, valid_id
from tracemark.gitutil import Repo


def test_split_lines_keeps_terminators() -> None:
    assert L.split_lines(b"") == []
    assert L.split_lines(b"a\nb") == [b"a\n", b"b"]
    assert L.split_lines(b"a\n\n") == [b"a\n", b"\n"]


def test_match_marks_inserted_lines() -> None:
    old = [b"a\n", b"b\n", b"c\n"]
    new = [b"a\n", b"x\n", b"b\n", b"c \n"]
    assert L.match(old, new) == [0, -1, 1, -1]


@given(
    st.lists(st.sampled_from([b"a\n", b"b\n", b"\n", b"}\n"]), max_size=30),
    st.lists(st.sampled_from([b"a\n", b"c\n", b"\n"]), max_size=30),
)
def test_match_is_a_valid_alignment(old: list[bytes], new: list[bytes]) -> None:
    mapping = L.match(old, new)
    assert len(mapping) == len(new)
    kept = [i for i in mapping if i >= 0]
    assert kept == sorted(kept)  # monotonic
    assert len(set(kept)) == len(kept)
    assert all(old[i] == new[j] for j, i in enumerate(mapping) if i >= 0)


def test_apply_edit_owners_and_removals() -> None:
    owners, removed, inserted = L.apply_edit([b"a\n", b"b\n"], [None, "s1"], [b"a\n", b"B\n", b"c\n"], "s2")
    assert owners == [None, "s2", "s2"]
    assert removed == [b"b\n"]
    assert inserted == [1, 2]


def test_ranges_and_rle_round_trip() -> None:
    assert L.to_ranges([5, 1, 2, 3, 7, 6]) == [[1, 3], [5, 7]]
    assert L.from_ranges([[1, 3], [5, 5]]) == {1, 2, 3, 5}
    owners = [None, "a", "a", None, "b/x"]
    assert L.rle_decode(L.rle_encode(owners)) == owners
    assert L.rle_decode("junk") == []
    assert L.rle_decode([["a", "x"], [None, 2]]) == [None, None]


def test_ids_and_keys() -> None:
    assert valid_id("65ced290-2a08-43de-aa80-d0b049d7ce30")
    assert not valid_id("../x") and not valid_id("") and not valid_id("a" * 129) and not valid_id(3)
    assert "/" not in safe_key("../../etc/passwd")
    assert safe_key("toolu_01") == "toolu_01"
    assert safe_key("a/b") != safe_key("a_b")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"", "empty"), (b"{", "not JSON"), (b"[]", "not a JSON object"), (b"x" * (17 * 1024 * 1024), "larger")],
)
def test_parse_payload_reasons(raw: bytes, reason: str) -> None:
    result = agent.parse_payload(raw)
    assert isinstance(result, str) and reason in result


def test_parse_payload_accepts_utf16_from_windows() -> None:
    raw = b"\xff\xfe" + json.dumps({"session_id": "s"}).encode("utf-16-le")
    assert agent.parse_payload(raw) == {"session_id": "s"}


def test_cursor_reverse_apply_and_regions() -> None:
    after = "one\nTWO\nthree\nnew\n"
    edits = [("two", "TWO"), ("three\n", "three\nnew\n")]
    assert agent._reverse_apply(after, edits) == "one\ntwo\nthree\n"
    assert agent._regions(after, edits) == {1, 2, 3}
    assert agent._reverse_apply("x\n", [("gone\n", "")]) is None


def _repo(tmp_path: Path) -> tuple[Repo, StateDir]:
    root = tmp_path / "wt"
    root.mkdir()
    repo = Repo(str(root), str(tmp_path / "git"), str(tmp_path / "git"))
    sd = StateDir(str(tmp_path / "git" / "tracemark"))
    sd.ensure()
    return repo, sd


def test_snapshot_diff_cycle_attributes_only_inserted_lines(tmp_path: Path) -> None:
    repo, sd = _repo(tmp_path)
    target = Path(repo.root) / "f.txt"
    target.write_text("h1\nh2\n")
    begin_tool(sd, repo, "f.txt", "t1", "s1")
    target.write_text("h1\nai\nh2\n")
    assert end_tool(sd, repo, "f.txt", "t1", "s1") == ("ok", 1)
    state = FileState.load(sd, repo.root, "f.txt")
    assert state.owners == [None, "s1", None]
    # A human edit to the AI line between tool calls makes it human at the next hook
    target.write_text("h1\nai edited\nh2\n")
    begin_tool(sd, repo, "f.txt", "t2", "s2")
    target.write_text("h1\nai edited\nh2\ns2\n")
    end_tool(sd, repo, "f.txt", "t2", "s2")
    assert FileState.load(sd, repo.root, "f.txt").owners == [None, None, None, "s2"]


def test_allowed_regions_limit_what_an_owner_can_claim(tmp_path: Path) -> None:
    repo, sd = _repo(tmp_path)
    result, count = attribute(sd, repo, "g.txt", b"a\n", b"a\nb\nc\n", owner="s1", tool_key="k", allowed={2})
    assert (result, count) == ("ok", 1)
    assert FileState.load(sd, repo.root, "g.txt").owners == [None, None, "s1"]


def test_idle_state_is_not_kept(tmp_path: Path) -> None:
    repo, sd = _repo(tmp_path)
    attribute(sd, repo, "h.txt", b"a\n", b"a\nb\n", owner=None, tool_key="k")
    assert not list(Path(sd.path("files")).glob("*.json"))


def test_gc_forgets_stale_snapshots_states_and_orphan_blobs(tmp_path: Path) -> None:
    import os
    import time

    from tracemark.capture.githooks import gc

    repo, sd = _repo(tmp_path)
    attribute(sd, repo, "live.txt", b"", b"live\n", owner="s1", tool_key="k1")
    attribute(sd, repo, "old.txt", b"", b"old\n", owner="s1", tool_key="k2")
    orphan = sd.put_blob(b"nobody refers to me\n")
    sd.ensure("snapshots")
    sd.write_json("snapshots/stale.json", {"kind": "file", "sha": orphan})
    week_ago = time.time() - 40 * 24 * 3600
    old_state = FileState(repo.root, "old.txt")
    os.utime(sd.path("files", old_state.key + ".json"), (week_ago, week_ago))
    os.utime(sd.path("snapshots", "stale.json"), (week_ago, week_ago))
    gc(sd)  # below the blob threshold: nothing happens
    assert Path(sd.path("blobs", orphan)).exists()
    gc(sd, force=True)
    assert not Path(sd.path("blobs", orphan)).exists()
    assert not Path(sd.path("snapshots", "stale.json")).exists()
    assert not Path(sd.path("files", old_state.key + ".json")).exists()
    live = FileState.load(sd, repo.root, "live.txt")
    assert live.owners == ["s1"]
    assert sd.get_blob(str(live.sha)) == b"live\n"


def test_stale_tool_calls_stop_counting_as_in_flight(tmp_path: Path) -> None:
    import time

    from tracemark.capture.filestate import INFLIGHT_MAX_AGE_NS, release_session

    repo, sd = _repo(tmp_path)
    (Path(repo.root) / "f.txt").write_text("a\n")
    begin_tool(sd, repo, "f.txt", "old-call", "s1")
    state = FileState.load(sd, repo.root, "f.txt")
    state.inflight["old-call"] = f"s1|{time.time_ns() - INFLIGHT_MAX_AGE_NS - 1}"
    state.save(sd)
    begin_tool(sd, repo, "f.txt", "new-call", "s2")
    assert list(FileState.load(sd, repo.root, "f.txt").inflight) == ["new-call"]
    assert FileState.load(sd, repo.root, "f.txt").contended == []
    assert release_session(sd, repo.root, "s2") == 1
    assert FileState.load(sd, repo.root, "f.txt").inflight == {}


def test_shell_snapshot_skips_huge_work_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from tracemark.capture import shell
    from tracemark.gitutil import discover

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for i in range(5):
        (tmp_path / f"u{i}.txt").write_text("x\n")
    repo = discover(str(tmp_path))
    assert repo is not None
    sd = StateDir(repo.state_dir)
    sd.ensure()
    monkeypatch.setattr(shell, "MAX_STATUS_ENTRIES", 3)
    assert shell.begin_shell(sd, repo, "k", "s1", "make").startswith("skipped")
    (tmp_path / "u0.txt").write_text("changed\n")
    assert shell.end_shell(sd, repo, "k", "s1") == ("skipped-large-worktree", [], "make")
    monkeypatch.setattr(shell, "MAX_STATUS_ENTRIES", 100)
    assert shell.begin_shell(sd, repo, "k2", "s1", "touch") == "snapshot"
    (tmp_path / "u1.txt").write_text("x\ny\n")
    result, files, command = shell.end_shell(sd, repo, "k2", "s1")
    assert (result, files, command) == ("ok", ["u1.txt"], "touch")
