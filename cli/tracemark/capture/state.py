"""The state directory `<git common dir>/tracemark/`: atomic files, append-only ledgers, locks, log.

Layout (docs/capture.md): `log.txt`, `sessions/<id>.jsonl`, `files/<key>.json`, `blobs/<sha256>`,
`snapshots/<key>.json`, `commits/<sha>.json`, `spool/`. Stdlib only: this is the hook hot path.
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH103, PTH105, PTH108, PTH110, PTH112, PTH113, PTH118, PTH119, PTH120, PTH123, PTH202

from __future__ import annotations

import contextlib
import json
import os
import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

    from tracemark.gitutil import Repo

LOG_MAX_BYTES = 1_000_000
MAX_ID_LENGTH = 128
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

try:  # The builtin module is ~2 ms cheaper to import than hashlib (OpenSSL) on every hook call.
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - other interpreters
    from hashlib import sha256 as _sha256


def sha256_hex(data: bytes) -> str:
    return str(_sha256(data).hexdigest())


def valid_id(value: object) -> bool:
    """Session, agent and commit ids we accept in file names: `^[A-Za-z0-9_-]{1,128}$`."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def safe_key(value: str) -> str:
    """A file-name-safe key for any string (tool-use ids from agents are not trusted)."""
    cleaned = _KEY_UNSAFE.sub("_", value)[:100]
    if cleaned != value or not cleaned.strip("."):
        cleaned = f"{cleaned}-{sha256_hex(value.encode('utf-8', 'surrogateescape'))[:16]}"
    return cleaned


def now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class StateDir:
    """Paths inside one repository's state directory."""

    __slots__ = ("root",)

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def ensure(self, *sub: str) -> str:
        target = self.path(*sub)
        os.makedirs(target, exist_ok=True)
        return target

    # -- files ------------------------------------------------------------------------------
    def write_atomic(self, relpath: str, data: bytes) -> None:
        atomic_write(self.path(relpath), data)

    def read_json(self, relpath: str) -> Any:
        return read_json(self.path(relpath))

    def write_json(self, relpath: str, obj: object) -> None:
        atomic_write(self.path(relpath), json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())

    def append_jsonl(self, relpath: str, obj: object) -> None:
        """Append one JSON line with a single O_APPEND write (concurrent hooks never interleave)."""
        target = self.path(relpath)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n"
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    # -- content-addressed blobs ------------------------------------------------------------
    def put_blob(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or sha256_hex(data)
        target = self.path("blobs", digest)
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            atomic_write(target, data)
        return digest

    def get_blob(self, digest: str) -> bytes | None:
        if not digest or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return None
        try:
            with open(self.path("blobs", digest), "rb") as handle:
                return handle.read()
        except OSError:
            return None

    # -- log --------------------------------------------------------------------------------
    def log(  # noqa: PLR0917 - one positional field per column of the log line
        self, source: str, event: str, session: str, result: str, elapsed_ms: float, detail: str = ""
    ) -> None:
        """One line per hook invocation; rotated to `log.txt.1` above LOG_MAX_BYTES."""
        if not os.path.isdir(self.root):
            return
        target = self.path("log.txt")
        clean = " ".join(f"{detail}".split())[:500]
        line = f"{now_iso()} {source} {event or '-'} session={session or '-'} result={result} ms={elapsed_ms:.1f}"
        if clean:
            line += f" {clean}"
        try:
            if os.path.getsize(target) > LOG_MAX_BYTES:
                os.replace(target, target + ".1")
        except OSError:
            pass
        try:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass


CONFIG_NAMES = (".tracemark.yml", ".tracemark.yaml")


def is_traced(repo: Repo) -> bool:
    """Tracemark is on for this repository: local state exists or the project config is committed."""
    if os.path.isdir(repo.state_dir):
        return True
    return any(os.path.isfile(os.path.join(repo.root, name)) for name in CONFIG_NAMES)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *, durable: bool = False) -> None:
    """Write `data` to `path` via a temporary file and rename (readers never see half a file); the
    file has `mode` from its first byte. `durable` also fsyncs (spool, credentials; not hooks)."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any:
    """Parsed JSON at `path`, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None


class FileLock:
    """An exclusive `flock` on `path` (created as needed); a context manager."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> FileLock:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1
