"""Property tests of the attribution line arithmetic (tracemark.capture.lines, the core of
filestate.attribute): splitting, matching kept lines, carrying owners across edits, and the line
ranges written into commit records and evidence (sorted, disjoint, merged, in bounds, round trip).

The edit model: a file goes through a sequence of edits, each by an agent session or by a human
(owner None). Lines come from a tiny alphabet so that repeated and moved lines — the hard cases for
a diff — come up all the time."""

from __future__ import annotations

import itertools

import pytest
from fuzzkit import fuzz
from hypothesis import given
from hypothesis import strategies as st

from tracemark.capture import filestate
from tracemark.capture import lines as L
from tracemark.capture.state import StateDir
from tracemark.gitutil import Repo

LINE = st.sampled_from([b"a\n", b"b\n", b"c\n", b"\n", b"  a\n", b"a", b"x\r\n"])
texts = st.lists(LINE, max_size=30)
owners_st = st.sampled_from([None, "s1", "s2", "s1/agent-1"])
edits = st.lists(st.tuples(texts, owners_st), min_size=1, max_size=8)


def _content(lines: list[bytes]) -> bytes:
    # a line without a newline can only be the last one
    fixed = [line if line.endswith(b"\n") or i == len(lines) - 1 else line + b"\n" for i, line in enumerate(lines)]
    return b"".join(fixed)


@given(st.binary(max_size=300))
@fuzz(300)
def test_split_lines_round_trips_and_keeps_terminators(data: bytes) -> None:
    parts = L.split_lines(data)
    assert b"".join(parts) == data
    assert all(part.endswith(b"\n") for part in parts[:-1])
    assert all(b"\n" not in part[:-1] for part in parts)
    assert all(parts)


@given(texts, texts)
@fuzz(300)
def test_match_maps_kept_lines_in_order(old: list[bytes], new: list[bytes]) -> None:
    mapping = L.match(old, new)
    assert len(mapping) == len(new)
    kept = [(j, i) for j, i in enumerate(mapping) if i >= 0]
    assert all(0 <= i < len(old) for _, i in kept)
    assert all(new[j] == old[i] for j, i in kept)  # bytes equal, whitespace and newline included
    olds = [i for _, i in kept]
    assert olds == sorted(olds) and len(set(olds)) == len(olds)  # order kept, each old line once
    if old == new:
        assert mapping == list(range(len(new)))


@given(texts, st.lists(owners_st, max_size=30), texts, owners_st)
@fuzz(300)
def test_apply_edit_accounts_for_every_line(
    old: list[bytes], raw_owners: list[str | None], new: list[bytes], owner: str | None
) -> None:
    owners = (raw_owners + [None] * len(old))[: len(old)]
    new_owners, removed, inserted = L.apply_edit(old, owners, new, owner)
    assert len(new_owners) == len(new)
    mapping = L.match(old, new)
    # inserted lines are the editor's, kept lines keep their owner
    assert inserted == [j for j, i in enumerate(mapping) if i < 0]
    assert all(new_owners[j] == owner for j in inserted)
    assert all(new_owners[j] == owners[i] for j, i in enumerate(mapping) if i >= 0)
    # kept + removed = old; kept + inserted = new
    assert len(new) - len(inserted) + len(removed) == len(old)
    # lines per owner add up to the total (AI lines of every session + human lines = all lines)
    counts: dict[str | None, int] = {}
    for who in new_owners:
        counts[who] = counts.get(who, 0) + 1
    assert sum(counts.values()) == len(new)


@given(texts, edits)
@fuzz(200)
def test_a_sequence_of_edits_never_credits_lines_to_someone_who_did_not_write_them(
    start: list[bytes], sequence: list[tuple[list[bytes], str | None]]
) -> None:
    current, owners = start, [None for _ in start]
    written: dict[str, set[bytes]] = {}  # the line contents each session ever inserted
    for new, owner in sequence:
        before = dict.fromkeys(owners)
        owners, _, inserted = L.apply_edit(current, owners, new, owner)
        if owner is not None:
            written.setdefault(owner, set()).update(new[j] for j in inserted)
        current = new
        assert len(owners) == len(current)
        # an edit never hands lines to a session other than the editor that had none before
        assert all(who is None or who == owner or who in before for who in owners)
        for j, who in enumerate(owners):
            if who is not None:
                assert current[j] in written[who]
    # a human edit that rewrites everything leaves no AI line
    final, _, _ = L.apply_edit(current, owners, [b"human\n"] * 3, None)
    assert final == [None, None, None]


@given(texts, st.lists(owners_st, max_size=30), texts)
@fuzz(300)
def test_human_changes_only_ever_take_lines_away_from_sessions(
    old: list[bytes], raw_owners: list[str | None], new: list[bytes]
) -> None:
    owners = (raw_owners + [None] * len(old))[: len(old)]
    carried = L.carry(old, owners, new)
    for session in ("s1", "s2", "s1/agent-1"):
        assert carried.count(session) <= owners.count(session)


@given(st.lists(st.integers(min_value=1, max_value=200), max_size=80))
@fuzz(300)
def test_ranges_are_sorted_disjoint_merged_and_round_trip(numbers: list[int]) -> None:
    ranges = L.to_ranges(numbers)
    assert L.from_ranges(ranges) == set(numbers)
    for start, end in ranges:
        assert 1 <= start <= end <= 200
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert start > end + 1  # sorted, disjoint, and adjacent runs merged
    assert sum(end - start + 1 for start, end in ranges) == len(set(numbers))
    assert L.to_ranges(L.from_ranges(ranges)) == ranges  # idempotent


@given(texts, edits)
@fuzz(150)
def test_ai_ranges_of_a_file_stay_in_bounds_and_add_up(
    start: list[bytes], sequence: list[tuple[list[bytes], str | None]]
) -> None:
    current, owners = start, [None for _ in start]
    for new, owner in sequence:
        owners, _, _ = L.apply_edit(current, owners, new, owner)
        current = new
    total = len(current)
    per_session = {
        who: L.to_ranges(j + 1 for j, o in enumerate(owners) if o == who) for who in {o for o in owners if o}
    }
    human = L.to_ranges(j + 1 for j, o in enumerate(owners) if o is None)
    covered: set[int] = set()
    for ranges in [*per_session.values(), human]:
        numbers = L.from_ranges(ranges)
        assert all(1 <= n <= total for n in numbers)
        assert not covered & numbers  # no line is two owners'
        covered |= numbers
    assert covered == set(range(1, total + 1))  # AI (every session) + human = all lines


@given(st.lists(owners_st, max_size=60))
@fuzz(300)
def test_owner_runs_round_trip(owners: list[str | None]) -> None:
    runs = L.rle_encode(owners)
    assert L.rle_decode(runs) == owners
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-5, 50) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=5),
        max_leaves=30,
    )
)
@fuzz(300)
def test_owner_runs_decode_never_crashes_on_a_damaged_state_file(runs: object) -> None:
    decoded = L.rle_decode(runs)
    assert all(o is None or isinstance(o, str) for o in decoded)


@given(st.lists(LINE, max_size=40).map(_content), st.lists(LINE, max_size=40).map(_content))
@fuzz(200)
def test_files_round_trip_through_the_diff(old: bytes, new: bytes) -> None:
    old_lines, new_lines = L.split_lines(old), L.split_lines(new)
    owners, removed, inserted = L.apply_edit(old_lines, ["s1"] * len(old_lines), new_lines, "s2")
    assert len(owners) == len(new_lines)
    kept = [line for j, line in enumerate(new_lines) if j not in set(inserted)]
    # the kept lines are a subsequence of the old file, and removed + kept are the old lines
    assert sorted(kept + removed) == sorted(old_lines)


# The real per-file state (filestate.attribute on a state directory): agent tool calls interleaved
# with edits nobody announced (a human, a formatter), which the next tool call reconciles.
steps = st.lists(st.tuples(st.sampled_from(["agent", "human"]), owners_st.filter(bool), texts), min_size=1, max_size=6)


@given(texts, steps)
@fuzz(60)
def test_file_state_credits_only_untouched_agent_lines(
    tmp_path_factory: pytest.TempPathFactory, start: list[bytes], sequence: list[tuple[str, str | None, list[bytes]]]
) -> None:
    root = tmp_path_factory.mktemp("attr")
    sd = StateDir(str(root / "state"))
    repo = Repo(str(root), str(root / ".git"), str(root / ".git"))
    content = _content(start)
    written: dict[str, set[bytes]] = {}
    for number, (kind, owner, new_lines) in enumerate(sequence):
        new = _content(new_lines)
        if kind == "human":
            content = new  # changed on disk; our hooks never saw it
            continue
        assert owner is not None
        result, attributed = filestate.attribute(sd, repo, "f.txt", content, new, owner=owner, tool_key=f"t{number}")
        assert result == "ok"
        inserted = [j for j, i in enumerate(L.match(L.split_lines(content), L.split_lines(new))) if i < 0]
        assert attributed == len(inserted)
        written.setdefault(owner, set()).update(L.split_lines(new)[j] for j in inserted)
        content = new
    state = filestate.FileState.load(sd, repo.root, "f.txt")
    known = state.known_lines(sd) or []
    assert len(state.owners) == len(known)
    for line, who in zip(known, state.owners, strict=True):
        if who is not None:
            assert line in written[who]
    # the next tool call reconciles with what is on disk: lines someone else changed lose their owner
    final_lines = L.split_lines(content)
    reconciled = L.carry(known, state.owners, final_lines)
    assert len(reconciled) == len(final_lines)
    for line, who in zip(final_lines, reconciled, strict=True):
        assert who is None or line in written[who]
