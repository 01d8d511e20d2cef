"""Run untrusted (org) Rego in a child process with a time limit per policy.

A `Sandbox` starts one worker (`worker.py`) and sends it one request per policy; an answer later
than `timeout` seconds kills the worker (`neutral`, `timeout`) and the next request starts a
fresh one. The child gets a scrubbed environment (no AWS credentials: Rego's `opa.runtime()`
would show them) and the parent's import path. Start-up (Python plus
regopy) is waited for separately, so a slow machine never turns start-up into a policy timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

from tracemark_common.policy.engine import Outcome, neutral

POLICY_TIMEOUT_SECONDS = 2.0
STARTUP_TIMEOUT_SECONDS = 20.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024
_KEPT_ENV = ("PATH", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")
_BOOT = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from tracemark_common.policy.worker import main; sys.exit(main())"
)


class _Late(Exception):
    """No complete answer before the deadline."""


class _Broken(Exception):
    """The worker died, or said something unreadable."""


class Sandbox:
    def __init__(
        self, *, timeout: float = POLICY_TIMEOUT_SECONDS, startup_timeout: float = STARTUP_TIMEOUT_SECONDS
    ) -> None:
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.unavailable: str | None = None  # set when the worker cannot start at all

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        proc, self._proc = self._proc, None
        self._buffer = b""
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None:
            return self._proc
        paths = [entry for entry in sys.path if entry]
        env = {key: os.environ[key] for key in _KEPT_ENV if key in os.environ}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, json.dumps(paths)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            self.unavailable = f"the policy worker did not start: {exc.strerror or exc}"
            raise _Broken(self.unavailable) from None
        try:
            hello = self._read_answer(self.startup_timeout)
        except (_Late, _Broken) as exc:
            self.close()
            self.unavailable = f"the policy worker did not start: {exc}"
            raise _Broken(self.unavailable) from None
        if hello.get("ready") is not True:
            self.close()
            self.unavailable = f"the policy worker did not start: {hello.get('error', 'unknown error')}"
            raise _Broken(self.unavailable)
        return self._proc

    # ------------------------------------------------------------------------------------- channel

    def _read_answer(self, timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Late(f"no answer within {timeout:g} s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise _Broken("the policy worker exited")
                self._buffer += chunk
                if len(self._buffer) > MAX_ANSWER_BYTES:
                    raise _Broken("the policy worker's answer is too large")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            raise _Broken("the policy worker's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise _Broken("the policy worker's answer is not an object")
        return answer

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            self.close()
            raise _Broken("the policy worker exited") from None
        try:
            return self._read_answer(self.timeout)
        except (_Late, _Broken):
            self.close()
            raise

    # ------------------------------------------------------------------------------------- requests

    def evaluate(self, rego: str, package: str, document: dict[str, Any]) -> Outcome:
        if self.unavailable is not None:
            return neutral("engine_unavailable", self.unavailable)
        try:
            answer = self._ask({"op": "eval", "rego": rego, "package": package, "input": document})
        except _Late:
            return neutral("timeout", f"the policy did not finish within {self.timeout:g} s")
        except _Broken as exc:
            if self.unavailable is not None:
                return neutral("engine_unavailable", self.unavailable)
            return neutral("engine_error", str(exc))
        return Outcome.from_json(answer)

    def check(self, rego: str, package: str) -> str | None:
        """None when the Rego compiles and answers on an empty input in time, else the problem."""
        if self.unavailable is not None:
            return self.unavailable
        try:
            answer = self._ask({"op": "check", "rego": rego, "package": package})
        except _Late:
            return f"the policy did not finish within {self.timeout:g} s on an empty input (does it loop?)"
        except _Broken as exc:
            return self.unavailable or f"the policy could not be checked: {exc}"
        if answer.get("ok") is True:
            return None
        return str(answer.get("error") or "the Rego does not compile")
