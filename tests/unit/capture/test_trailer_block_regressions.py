"""Regressions (found by tests/fuzz/test_trailers_properties.py) of the commit-msg hook's trailer
writer: what it takes for git's trailer block."""

from __future__ import annotations

from tracemark.capture.githooks import _append_trailer


def test_a_paragraph_of_continuation_lines_is_not_a_trailer_block() -> None:
    # Was: " 0" alone was taken for a trailer block and our trailer folded into it; the next run
    # then saw a folded value of ours and the writer was not idempotent.
    written = _append_trailer("Subject\n\n 0\n", "s1")
    assert written == "Subject\n\n 0\n\nTracemark-Sessions: s1\n"
    assert _append_trailer(written, "s1") == written


def test_a_whitespace_only_line_leaves_the_paragraphs_to_git() -> None:
    # git reads a line of spaces as a blank line (a paragraph break); we split on empty lines only,
    # so such messages go to `git interpret-trailers`.
    assert _append_trailer("Subject\n \nSigned-off-by: a <a@b>\n", "s1") is None


def test_an_existing_trailer_block_is_still_joined() -> None:
    written = _append_trailer("Subject\n\nbody\n\nSigned-off-by: a <a@b>\n", "s1")
    assert written == "Subject\n\nbody\n\nSigned-off-by: a <a@b>\nTracemark-Sessions: s1\n"
