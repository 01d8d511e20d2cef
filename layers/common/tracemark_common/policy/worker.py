"""The sandbox worker: evaluates org policies in a child process (see `sandbox.py`).

Protocol (one JSON object per line): the worker answers `{"ready": true}` once regopy is
imported (or `{"ready": false, "error": ...}`), then reads requests from stdin and answers each
with one line. Requests: `{"op": "eval", "rego", "package", "input"}` → an `Outcome` as JSON, or
`{"op": "check", "rego", "package"}` → `{"ok": true}` / `{"ok": false, "error": ...}`.
The answers go to a private copy of stdout; fd 1 itself points to /dev/null, so nothing the C++
engine prints can corrupt the channel. The parent kills the worker when an answer is late.
No address-space limit: regopy's allocator (snmalloc) aborts at start under any RLIMIT_AS or
RLIMIT_DATA, so memory is bounded by the time limit and the function's own memory.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any


def _answer(channel: IO[str], payload: dict[str, Any]) -> None:
    channel.write(json.dumps(payload, separators=(",", ":")) + "\n")
    channel.flush()


def _handle(request: Any) -> dict[str, Any]:
    from tracemark_common.errors import Unprocessable
    from tracemark_common.policy.engine import CompiledPolicy, neutral

    if not isinstance(request, dict) or not isinstance(request.get("rego"), str):
        return neutral("engine_error", "malformed request to the policy worker").to_json()
    package = str(request.get("package", "main"))
    op = request.get("op")
    try:
        compiled = CompiledPolicy(request["rego"], package)
        if op == "check":
            compiled.check()
            return {"ok": True}
    except Unprocessable as exc:
        if op == "check":
            return {"ok": False, "error": exc.message}
        return neutral("rego_error", exc.message).to_json()
    document = request.get("input")
    if not isinstance(document, dict):
        return neutral("engine_error", "malformed input sent to the policy worker").to_json()
    return compiled.evaluate(document).to_json()


def main() -> int:
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        import regopy  # noqa: F401 - imported before "ready" so start-up never counts against a policy
    except ImportError:
        _answer(channel, {"ready": False, "error": "regopy is not installed"})
        return 1
    _answer(channel, {"ready": True})
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        try:
            answer = _handle(request)
        except MemoryError:
            answer = {"status": "neutral", "reason": "memory_limit", "detail": "the policy ran out of memory"}
        _answer(channel, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
