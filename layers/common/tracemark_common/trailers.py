"""Read session ids from commit-message trailers (SPEC §2.4).

Every line of the whole message counts, not only git's last trailer paragraph, so that
trailers survive GitHub's squash merge moving them into the body. Pure: the CLI imports it too.
"""

from __future__ import annotations

import re

TRAILER_KEYS = ("Tracemark-Sessions", "Chainloop-Trace-Sessions")
# `\s*` of the spec, kept on one line: an empty trailer must not swallow the next line.
_LINE = re.compile(r"^(Tracemark-Sessions|Chainloop-Trace-Sessions):[^\S\n]*(.*)$", re.IGNORECASE | re.MULTILINE)
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# A commit message bigger than this is read only up to this many characters: the trailer reader
# runs on untrusted input (any commit of any pull request).
MAX_MESSAGE_CHARS = 1_000_000


def is_session_id(value: str) -> bool:
    return bool(_SESSION_ID.fullmatch(value))


def session_ids(message: str) -> list[str]:
    """The session ids named in `message`, in order of first appearance, without duplicates."""
    seen: dict[str, None] = {}
    text = message[:MAX_MESSAGE_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    for match in _LINE.finditer(text):
        for part in match.group(2).split(","):
            candidate = part.strip()
            if is_session_id(candidate):
                seen.setdefault(candidate, None)
    return list(seen)
