"""Properties over generated input: totals always add up, redaction never breaks JSON, the
parser never crashes on arbitrary lines."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracemark.evidence_builder import CommitFacts, FileLines, compute_code_changes
from tracemark.redact import Redaction, redact_jsonl_line, redact_text
from tracemark.transcript import parse_claude_session

ranges = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 20)).map(lambda t: (t[0], t[0] + t[1])), max_size=4)
file_lines = st.builds(
    FileLines,
    path=st.sampled_from(["a.py", "b.py", "c/d.txt"]),
    status=st.sampled_from(["created", "modified", "deleted", "renamed"]),
    lines_added=st.integers(0, 80),
    lines_removed=st.integers(0, 80),
    ai_ranges=st.dictionaries(st.sampled_from(["s1", "s2", "s3"]), ranges, max_size=3),
    ai_removed=st.dictionaries(
        st.sampled_from(["s1", "s2", "s3"]), st.one_of(st.none(), st.integers(0, 90)), max_size=3
    ),
)
commits = st.lists(
    st.builds(
        CommitFacts, sha=st.text("0123456789abcdef", min_size=40, max_size=40), files=st.lists(file_lines, max_size=4)
    ),
    max_size=4,
)


@given(commits)
def test_ai_plus_human_plus_other_is_the_total(facts: list[CommitFacts]) -> None:
    changes = compute_code_changes("s1", facts)
    assert (
        changes.ai_lines_added + changes.human_lines_added + changes.tracemark_other_ai_lines_added
        == changes.lines_added
    )
    assert (
        changes.ai_lines_removed + changes.human_lines_removed + changes.tracemark_other_ai_lines_removed
        == changes.lines_removed
    )
    assert min(changes.ai_lines_added, changes.human_lines_added, changes.human_lines_removed) >= 0
    for item in changes.files:
        assert (item.tracemark_ai_lines_added or 0) <= item.lines_added
        assert item.attribution in ("ai", "human")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=60)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
secretish = st.sampled_from(
    [
        "password=hunter22",
        "AKIA" + "IOSFODNN7EXAMPLE",
        'token: "abc123xyz"',
        "x = Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
        "://u:p@h",
    ]
)


@given(json_values, secretish)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_redacted_jsonl_lines_stay_valid_json(value: object, secret: str) -> None:
    record = {"type": "user", "payload": value, "text": f"before {secret} after"}
    found = Redaction()
    out = redact_jsonl_line(json.dumps(record).encode() + b"\n", found)
    parsed = json.loads(out)
    assert parsed["type"] == "user"
    assert out.endswith(b"\n")


@given(st.text(max_size=300))
def test_redact_text_is_idempotent(text: str) -> None:
    once, _ = redact_text(text)
    twice, found = redact_text(once)
    assert twice == once and found.total == 0


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_parser_survives_arbitrary_lines(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junk.jsonl"
        path.write_bytes(b"\n".join(lines))
        summary = parse_claude_session(path)
        assert summary.usage.input_tokens >= 0
