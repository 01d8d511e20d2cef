"""Regression (found by tests/fuzz/test_transcript_properties.py): transcript lines were parsed
with json.loads(bytes), which guesses UTF-16/32 from NUL bytes, so binary garbage such as
b"\\x00{\\x00}\\x00\\n" counted as an intact record. JSON Lines are UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

from tracemark.transcript import claude


def test_lines_that_are_not_utf8_are_malformed_not_records(tmp_path: Path) -> None:
    good = json.dumps(
        {
            "type": "assistant",
            "message": {"id": "m1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 3, "output_tokens": 4}},
        }
    )
    utf16_record = '{"type":"user"}\n'.encode("utf-16-le")  # NULs make json.loads guess UTF-16
    path = tmp_path / "s.jsonl"
    path.write_bytes(
        good.encode() + b"\n" + b"\x00{\x00}\x00\n" + utf16_record + b'"\xed\xa0\x80"\n' + good.encode() + b"\n"
    )
    summary = claude.parse_session(path, discover_subagents=False)
    assert summary.records == 2
    assert summary.malformed_lines == 3
    assert summary.usage.total_tokens == 7
