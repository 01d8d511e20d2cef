"""Property tests of the Claude Code transcript parser (tracemark.transcript.claude) on damaged
files: truncated lines, garbage bytes, invalid UTF-8, huge lines, a file cut mid-write. It never
raises, counts exactly the records that are still intact, counts every other non-blank line as
malformed, and its token totals never exceed those of the undamaged transcript.

Transcripts come from a model (API responses written as several `assistant` records sharing a
`message.id`, counts growing to the final ones, as Claude Code streams them) and from the real
transcripts in shared/fixtures/claude."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import fuzz
from hypothesis import given
from hypothesis import strategies as st

from tracemark.transcript import claude
from tracemark.transcript.model import Usage

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "claude"
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)


@dataclass(frozen=True)
class Response:
    id: str
    model: str
    steps: tuple[dict[str, int], ...]  # usage of each record, the last one final


counts = st.integers(min_value=0, max_value=50_000)


@st.composite
def responses(draw: st.DrawFn, index: int) -> Response:
    final = {
        "input_tokens": draw(counts),
        "output_tokens": draw(counts),
        "cache_read_input_tokens": draw(counts),
        "cache_creation_input_tokens": draw(counts),
    }
    records = draw(st.integers(min_value=1, max_value=3))
    # streamed records: the same input, output growing to the final count
    steps = [{**final, "output_tokens": final["output_tokens"] * k // records} for k in range(1, records + 1)]
    model = draw(st.sampled_from(["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5"]))
    return Response(id=f"msg_{index:04d}", model=model, steps=tuple(steps))


@st.composite
def transcripts(draw: st.DrawFn) -> list[bytes]:
    count = draw(st.integers(min_value=0, max_value=12))
    lines: list[bytes] = []
    for index in range(count):
        response = draw(responses(index))
        lines.append(_record({"type": "user", "message": {"role": "user", "content": f"prompt {index}"}}))
        for step in response.steps:
            message = {"id": response.id, "model": response.model, "role": "assistant", "usage": step}
            lines.append(_record({"type": "assistant", "message": message, "requestId": f"req_{index}"}))
    return lines


def _record(body: dict[str, Any]) -> bytes:
    record = {"sessionId": "s-1", "timestamp": "2026-11-20T10:00:00.000Z", **body}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


# Corruptions that leave no doubt that the line is damaged (a truncated object, bytes that are
# not UTF-8, binary garbage, a huge junk line), or leave it intact.
corruptions = st.one_of(
    st.just(("keep", 0, b"")),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(b"")),
    st.tuples(
        st.just("invalid_utf8"),
        st.integers(min_value=0),
        st.sampled_from([b"\xff", b"\xc3\x28", b"\x80\x80", b"\xed\xa0\x80"]),
    ),
    st.tuples(st.just("garbage"), st.just(0), st.binary(min_size=1, max_size=64).map(lambda b: b.replace(b"\n", b"?"))),
    st.tuples(st.just("huge"), st.integers(min_value=1, max_value=3), st.just(b"")),
)


def _corrupt(line: bytes, how: tuple[str, int, bytes]) -> bytes:
    kind, number, extra = how
    body = line.rstrip(b"\n")
    if kind == "truncate":
        return body[: number % max(1, len(body))] + b"\n"
    if kind == "invalid_utf8":
        position = number % (len(body) + 1)
        return body[:position] + extra + body[position:] + b"\n"
    if kind == "garbage":
        return extra + b"\n"
    if kind == "huge":
        return b'{"type":"assistant","message":{"content":"' + b"x" * (number * 300_000) + b"\n"
    return line


def _parse(tmp_path: Path, data: bytes) -> Any:
    path = tmp_path / "session.jsonl"
    path.write_bytes(data)
    return claude.parse_session(path, discover_subagents=False)


def _oracle(data: bytes) -> tuple[int, int]:
    """(intact records, malformed lines) of the damaged file, line by line as JSON sees them."""
    records = malformed = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))  # JSON Lines are UTF-8
        except ValueError:
            malformed += 1
            continue
        records += isinstance(value, dict)
    return records, malformed


def _expected_usage(lines: list[bytes]) -> dict[str, int]:
    last: dict[str, dict[str, int]] = {}
    for line in lines:
        record = json.loads(line)
        if record["type"] == "assistant":
            last[record["message"]["id"]] = record["message"]["usage"]
    totals = dict.fromkeys(TOKEN_FIELDS, 0)
    for usage in last.values():
        totals["input_tokens"] += usage["input_tokens"]
        totals["output_tokens"] += usage["output_tokens"]
        totals["cache_read_input_tokens"] += usage["cache_read_input_tokens"]
        totals["cache_creation_5m_input_tokens"] += usage["cache_creation_input_tokens"]
    return totals


def _usage(usage: Usage) -> dict[str, int]:
    return {name: getattr(usage, name) for name in TOKEN_FIELDS}


def _check_damaged(tmp_path: Path, lines: list[bytes], damage: list[tuple[str, int, bytes]], cut: int) -> None:
    clean = _parse(tmp_path, b"".join(lines))
    damaged_lines = [
        _corrupt(line, how) for line, how in zip(lines, damage + [("keep", 0, b"")] * len(lines), strict=False)
    ]
    data = b"".join(damaged_lines)
    if cut:  # the file cut mid-write
        data = data[: max(0, len(data) - cut)]
    summary = _parse(tmp_path, data)  # never raises
    records, malformed = _oracle(data)
    assert summary.records == records
    assert summary.malformed_lines == malformed
    # every count, with cache writes as one count: a response whose final record is damaged falls
    # back to an earlier record, which may not split its cache writes into 5m and 1h yet
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        assert 0 <= getattr(summary.usage, name) <= getattr(clean.usage, name), name
    assert summary.usage.total_tokens <= clean.usage.total_tokens
    assert summary.main_thread.total_tokens <= clean.main_thread.total_tokens


@given(transcripts())
@fuzz(100)
def test_an_intact_transcript_counts_each_response_once(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    summary = _parse(tmp_path_factory.mktemp("t"), b"".join(lines))
    assert summary.records == len(lines)
    assert summary.malformed_lines == 0
    assert _usage(summary.usage) == _expected_usage(lines)
    assert summary.main_thread.total_tokens == summary.usage.total_tokens


@given(transcripts(), st.lists(corruptions, max_size=40), st.integers(min_value=0, max_value=40))
@fuzz(150)
def test_a_damaged_transcript_never_raises_and_never_counts_more(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], damage: list[tuple[str, int, bytes]], cut: int
) -> None:
    _check_damaged(tmp_path_factory.mktemp("t"), lines, damage, cut)


FIXTURE_FILES = sorted(FIXTURES.glob("claude_transcript_*.jsonl")) if FIXTURES.is_dir() else []


@pytest.mark.skipif(not FIXTURE_FILES, reason="shared/fixtures/claude is not beside the repository")
@given(st.data())
@fuzz(60)
def test_damaged_real_transcripts(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(FIXTURE_FILES))
    lines = path.read_bytes().splitlines(keepends=True)
    damage = data.draw(st.lists(corruptions, min_size=len(lines), max_size=len(lines)))
    _check_damaged(tmp_path_factory.mktemp("t"), lines, damage, data.draw(st.integers(min_value=0, max_value=200)))


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    st.integers(min_value=1, max_value=30),
)
@fuzz(300)
def test_iter_lines_skips_exactly_the_oversized_lines(pieces: list[bytes], max_line: int) -> None:
    import io

    data = b"".join(piece + b"\n" for piece in pieces)
    got = list(claude.iter_lines(io.BytesIO(data), max_line))
    assert [number for number, _ in got] == list(range(1, len(pieces) + 1))
    for (_, line), piece in zip(got, pieces, strict=True):
        if len(piece) > max_line:  # longer than max_line without its newline
            assert line is None
        else:
            assert line == piece + b"\n"


def test_a_line_over_the_limit_is_skipped_with_a_warning(tmp_path: Path) -> None:
    good = _record(
        {
            "type": "assistant",
            "message": {"id": "m1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 5, "output_tokens": 7}},
        }
    )
    huge = b'{"type":"user","message":{"content":"' + b"y" * (claude.MAX_LINE_BYTES + 10) + b'"}}\n'
    summary = _parse(tmp_path, good + huge + good)
    assert summary.records == 2
    assert summary.usage.total_tokens == 12
    assert any("Line too long" in warning for warning in summary.warnings)
