"""Line-level diff helpers: which lines of a new text come from an old one, and ranges of line numbers.

Lines are compared as bytes including their end of line, so whitespace and blank lines count
(SPEC §2.3: "its bytes (whitespace and blank lines included)"). The common prefix and suffix are
stripped before `difflib` runs, so a small edit in a large file costs O(n).
"""

from __future__ import annotations

import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

BINARY_SNIFF_BYTES = 8000
MAX_TEXT_BYTES = 8 * 1024 * 1024


def split_lines(data: bytes) -> list[bytes]:
    """Lines split on `\\n`, each keeping its terminator (the last may have none)."""
    if not data:
        return []
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF_BYTES]


def match(old: Sequence[bytes], new: Sequence[bytes]) -> list[int]:
    """For each line of `new`, the index of the line of `old` it is kept from, or -1 if inserted."""
    n, m = len(old), len(new)
    prefix = 0
    while prefix < n and prefix < m and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < n - prefix and suffix < m - prefix and old[n - 1 - suffix] == new[m - 1 - suffix]:
        suffix += 1
    out = list(range(prefix)) + [-1] * (m - prefix - suffix) + list(range(n - suffix, n))
    mid_old = old[prefix : n - suffix]
    mid_new = new[prefix : m - suffix]
    if mid_old and mid_new:
        from difflib import SequenceMatcher

        matcher = SequenceMatcher(None, mid_old, mid_new, autojunk=False)
        for i, j, size in matcher.get_matching_blocks():
            for k in range(size):
                out[prefix + j + k] = prefix + i + k
    return out


def carry(old: Sequence[bytes], owners: Sequence[str | None], new: Sequence[bytes]) -> list[str | None]:
    """Owners of `new`'s lines: kept lines keep their owner, changed or inserted lines have none."""
    return [owners[i] if i >= 0 else None for i in match(old, new)]


def apply_edit(
    old: Sequence[bytes], owners: Sequence[str | None], new: Sequence[bytes], owner: str | None
) -> tuple[list[str | None], list[bytes], list[int]]:
    """An edit by `owner`: kept lines keep their owner, inserted lines are `owner`'s.

    Returns the owners of `new`, the old lines the edit removed, and the indices it inserted.
    """
    mapping = match(old, new)
    kept = {i for i in mapping if i >= 0}
    new_owners = [owners[i] if i >= 0 else owner for i in mapping]
    removed = [old[i] for i in range(len(old)) if i not in kept]
    inserted = [j for j, i in enumerate(mapping) if i < 0]
    return new_owners, removed, inserted


def line_key(line: bytes) -> str:
    """A short stable fingerprint of a line (for removed-line bookkeeping)."""
    return f"{zlib.crc32(line):08x}{len(line):x}"


def to_ranges(numbers: Iterable[int]) -> list[list[int]]:
    """Sorted 1-based line numbers -> `[[start, end], ...]`, inclusive, adjacent numbers merged."""
    ranges: list[list[int]] = []
    for number in sorted(set(numbers)):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ranges


def from_ranges(ranges: Iterable[Sequence[int]]) -> set[int]:
    numbers: set[int] = set()
    for pair in ranges:
        numbers.update(range(int(pair[0]), int(pair[1]) + 1))
    return numbers


def rle_encode(owners: Sequence[str | None]) -> list[list[object]]:
    runs: list[list[object]] = []
    for owner in owners:
        if runs and runs[-1][0] == owner:
            runs[-1][1] = int(str(runs[-1][1])) + 1
        else:
            runs.append([owner, 1])
    return runs


def rle_decode(runs: object) -> list[str | None]:
    owners: list[str | None] = []
    if not isinstance(runs, list):
        return owners
    for run in runs:
        if isinstance(run, list) and len(run) == 2 and isinstance(run[1], int):
            owner = run[0] if isinstance(run[0], str) else None
            owners.extend([owner] * run[1])
    return owners
