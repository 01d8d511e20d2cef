"""Per-file attribution state: who owns each line of the last content our hooks saw.

A file state (`files/<key>.json`) holds the sha256 of the content last seen by a hook (the content
itself is `blobs/<sha>`), one owner per line (`"<session>"`, `"<session>/<agent>"` for subagents,
or null = human), the lines each owner removed (fingerprints), and the tool calls in flight on the
path. Every change goes through `attribute()` under the file's lock:

1. reconcile: diff the known content against the content the tool started from; lines that
   differ were changed by someone else (a human, a formatter) and lose their owner;
2. apply: diff the starting content against the result; inserted lines belong to the tool's owner,
   kept lines keep theirs, removed lines are noted for that owner.

A path touched by two tool calls in flight at once is attributed to neither (SPEC §2.3).
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH108, PTH113, PTH114, PTH118, PTH123, PTH208

from __future__ import annotations

import contextlib
import os
import time

from tracemark.capture import lines as L
from tracemark.capture.state import FileLock, StateDir, sha256_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tracemark.gitutil import Repo

MAX_REMOVED_PER_OWNER = 20_000
# A tool call whose post hook never came (denied, interrupted, killed) stops counting as in flight.
INFLIGHT_MAX_AGE_NS = 30 * 60 * 1_000_000_000


class SkipFile(Exception):
    """The file cannot be attributed (binary, too large, unreadable); the message says why."""


def file_key(root: str, relpath: str) -> str:
    return sha256_hex(f"{root}\0{relpath}".encode("utf-8", "surrogateescape"))[:32]


def read_file(path: str) -> bytes | None:
    """The file's bytes; None when it does not exist; SkipFile when it cannot be attributed."""
    try:
        size = os.lstat(path).st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SkipFile(f"unreadable: {exc.strerror}") from exc
    if os.path.islink(path):
        raise SkipFile("symlink")
    if not os.path.isfile(path):
        raise SkipFile("not a regular file")
    if size > L.MAX_TEXT_BYTES:
        raise SkipFile(f"too large ({size} bytes)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(L.MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SkipFile(f"unreadable: {exc.strerror}") from exc
    if L.is_binary(data):
        raise SkipFile("binary")
    return data


class FileState:
    __slots__ = ("contended", "inflight", "key", "owners", "path", "removed", "root", "sha", "updated_ns", "writer")

    def __init__(self, root: str, path: str) -> None:
        self.root = root
        self.path = path
        self.key = file_key(root, path)
        self.sha: str | None = None  # None: never seen; "": seen absent
        self.owners: list[str | None] = []
        self.removed: dict[str, list[str]] = {}
        self.inflight: dict[str, str] = {}
        self.contended: list[str] = []
        self.updated_ns = 0
        self.writer = ""

    # -- persistence ------------------------------------------------------------------------
    @classmethod
    def load(cls, sd: StateDir, root: str, path: str) -> FileState:
        state = cls(root, path)
        raw = sd.read_json(os.path.join("files", state.key + ".json"))
        if isinstance(raw, dict) and raw.get("path") == path and raw.get("root") == root:
            state.load_dict(raw)
        return state

    def load_dict(self, raw: dict[str, object]) -> None:
        sha = raw.get("sha")
        self.sha = sha if isinstance(sha, str) else None
        self.owners = L.rle_decode(raw.get("owners"))
        removed = raw.get("removed")
        if isinstance(removed, dict):
            self.removed = {str(k): [str(x) for x in v] for k, v in removed.items() if isinstance(v, list)}
        inflight = raw.get("inflight")
        if isinstance(inflight, dict):
            self.inflight = {str(k): str(v) for k, v in inflight.items()}
        contended = raw.get("contended")
        if isinstance(contended, list):
            self.contended = [str(x) for x in contended]
        updated = raw.get("updated_ns")
        self.updated_ns = updated if isinstance(updated, int) else 0
        self.writer = str(raw.get("writer") or "")

    def to_dict(self) -> dict[str, object]:
        return {
            "v": 1,
            "root": self.root,
            "path": self.path,
            "sha": self.sha,
            "owners": L.rle_encode(self.owners),
            "removed": self.removed,
            "inflight": self.inflight,
            "contended": self.contended,
            "updated_ns": self.updated_ns,
            "writer": self.writer,
        }

    def is_idle(self) -> bool:
        """Nothing worth keeping: no AI-owned line, no pending removal, nothing in flight."""
        return not self.inflight and not any(self.removed.values()) and not any(self.owners)

    def save(self, sd: StateDir) -> None:
        target = os.path.join("files", self.key + ".json")
        if self.is_idle():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sd.path(target))
            return
        sd.ensure("files")
        sd.write_json(target, self.to_dict())

    def prune_inflight(self, now_ns: int) -> None:
        """Forget tool calls in flight for longer than INFLIGHT_MAX_AGE_NS."""
        for key, value in list(self.inflight.items()):
            _owner, _, started = value.rpartition("|")
            if not started.isdigit() or now_ns - int(started) > INFLIGHT_MAX_AGE_NS:
                del self.inflight[key]
        if not self.inflight:
            self.contended = []

    def release(self, session: str) -> bool:
        """Forget the tool calls of `session` (and its subagents) still marked in flight."""
        gone = [k for k, v in self.inflight.items() if v.rpartition("|")[0].split("/", 1)[0] == session]
        for key in gone:
            del self.inflight[key]
        if not self.inflight:
            self.contended = []
        return bool(gone)

    def lock(self, sd: StateDir) -> FileLock:
        return FileLock(sd.path("files", self.key + ".lock"))

    # -- attribution ------------------------------------------------------------------------
    def known_lines(self, sd: StateDir) -> list[bytes] | None:
        if self.sha is None:
            return None
        if self.sha == "":
            return []
        data = sd.get_blob(self.sha)
        return None if data is None else L.split_lines(data)

    def reconcile(self, sd: StateDir, data: bytes | None, sha: str) -> list[bytes]:
        """Bring the state to content `data` (None = absent); lines changed meanwhile become human."""
        new_lines = L.split_lines(data or b"")
        if self.sha != sha:
            known = self.known_lines(sd)
            if known is None or len(known) != len(self.owners):
                self.owners = [None] * len(new_lines)
            else:
                self.owners = L.carry(known, self.owners, new_lines)
            self.sha = sha
        return new_lines

    def note_removed(self, owner: str, removed: list[bytes]) -> None:
        if not removed:
            return
        bucket = self.removed.setdefault(owner, [])
        bucket.extend(L.line_key(line) for line in removed)
        del bucket[:-MAX_REMOVED_PER_OWNER]


def content_sha(data: bytes | None) -> str:
    return "" if data is None else sha256_hex(data)


def begin_tool(sd: StateDir, repo: Repo, relpath: str, tool_key: str, owner: str) -> str:
    """PreToolUse of a file tool: snapshot the file and mark the tool call in flight on it."""
    data = read_file(os.path.join(repo.root, relpath))
    sha = content_sha(data)
    if data is not None:
        sd.put_blob(data, sha)
    state = FileState(repo.root, relpath)
    with state.lock(sd):
        state = FileState.load(sd, repo.root, relpath)
        state.reconcile(sd, data, sha)
        now = time.time_ns()
        state.prune_inflight(now)
        # One agent (or subagent) runs its file tools on a path one at a time: an older call of the
        # same owner still "in flight" never got its post hook (denied, failed) and is forgotten.
        for key, value in list(state.inflight.items()):
            if value.rpartition("|")[0] == owner:
                del state.inflight[key]
                if key in state.contended:
                    state.contended.remove(key)
        if state.inflight:
            state.contended = sorted({*state.contended, *state.inflight, tool_key})
        state.inflight[tool_key] = f"{owner}|{now}"
        state.save(sd)
    sd.ensure("snapshots")
    sd.write_json(
        os.path.join("snapshots", tool_key + ".json"),
        {"kind": "file", "root": repo.root, "path": relpath, "sha": sha, "owner": owner, "t": time.time_ns()},
    )
    return "snapshot"


def attribute(
    sd: StateDir,
    repo: Repo,
    relpath: str,
    pre: bytes | None,
    post: bytes | None,
    *,
    owner: str | None,
    tool_key: str,
    allowed: set[int] | None = None,
    since_ns: int = 0,
) -> tuple[str, int]:
    """Record that a tool turned `pre` into `post`; returns (result, lines attributed to `owner`)."""
    pre_sha = content_sha(pre)
    post_sha = content_sha(post)
    if post is not None:
        sd.put_blob(post, post_sha)
    state = FileState(repo.root, relpath)
    with state.lock(sd):
        state = FileState.load(sd, repo.root, relpath)
        result = "ok"
        state.prune_inflight(time.time_ns())
        contended = tool_key in state.contended
        others = [key for key in state.inflight if key != tool_key]
        if others or (since_ns and state.updated_ns > since_ns and state.writer != tool_key):
            contended = True
            state.contended = sorted({*state.contended, *others})
        if contended:
            owner, result = None, "contended"
        pre_lines = state.reconcile(sd, pre, pre_sha)
        post_lines = L.split_lines(post or b"")
        new_owners, removed, inserted = L.apply_edit(pre_lines, state.owners, post_lines, owner)
        if allowed is not None:
            for index in inserted:
                if index not in allowed:
                    new_owners[index] = None
        attributed = 0 if owner is None else sum(1 for index in inserted if new_owners[index] == owner)
        if owner is not None:
            state.note_removed(owner, removed)
        state.owners = new_owners
        state.sha = post_sha
        state.inflight.pop(tool_key, None)
        if tool_key in state.contended:
            state.contended.remove(tool_key)
        if not state.inflight:
            state.contended = []
        state.updated_ns = time.time_ns()
        state.writer = tool_key
        state.save(sd)
    return result, attributed


def end_tool(
    sd: StateDir, repo: Repo, relpath: str, tool_key: str, owner: str, *, fallback_pre: bytes | None = None
) -> tuple[str, int]:
    """PostToolUse of a file tool: diff the snapshot against the file and attribute the new lines."""
    snapshot_path = sd.path("snapshots", tool_key + ".json")
    snapshot = sd.read_json(os.path.join("snapshots", tool_key + ".json"))
    try:
        post = read_file(os.path.join(repo.root, relpath))
    except SkipFile:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(snapshot_path)
        raise
    pre: bytes | None
    if isinstance(snapshot, dict) and snapshot.get("path") == relpath:
        sha = snapshot.get("sha")
        if sha == "":
            pre = None
        else:
            pre = sd.get_blob(str(sha))
            if pre is None:
                return "snapshot-blob-missing", 0
    elif fallback_pre is not None:
        pre = fallback_pre
    else:
        state = FileState.load(sd, repo.root, relpath)
        known = state.known_lines(sd)
        if known is None:
            return "no-snapshot", 0
        pre = b"".join(known) if state.sha else None
    try:
        return attribute(sd, repo, relpath, pre, post, owner=owner, tool_key=tool_key)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(snapshot_path)


def release_session(sd: StateDir, root: str, session: str) -> int:
    """At the end of a turn or session: none of its tool calls is in flight any more."""
    import json

    released = 0
    try:
        names = os.listdir(sd.path("files"))
    except FileNotFoundError:
        return 0
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(sd.path("files", name), "rb") as handle:
                raw = json.loads(handle.read())
        except (OSError, ValueError):
            continue
        if not isinstance(raw, dict) or raw.get("root") != root or not raw.get("inflight"):
            continue
        state = FileState(root, str(raw.get("path")))
        with state.lock(sd):
            state = FileState.load(sd, root, state.path)
            if state.release(session):
                state.save(sd)
                released += 1
    return released
