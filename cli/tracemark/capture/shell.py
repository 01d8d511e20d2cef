"""Attribution around shell tools (Bash, PowerShell, Cursor's shell): compare the work tree before/after.

Before the command: `git status --porcelain=v2 -z --untracked-files=all` plus size and mtime of
each listed path, and a copy of each dirty file (content-addressed; small files only) so its lines
can be diffed later. After: the same listing; only paths whose entry, size or mtime changed are
read and hashed. A clean tracked file's "before" is its index blob. Above MAX_STATUS_ENTRIES
listed paths the command is not attributed (a warning in the log).
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH108, PTH118

from __future__ import annotations

import contextlib
import os
import time

from tracemark import gitutil
from tracemark.capture.filestate import SkipFile, attribute, read_file
from tracemark.capture.state import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tracemark.gitutil import Repo

MAX_STATUS_ENTRIES = 20_000
MAX_DIRTY_COPIES = 500
MAX_DIRTY_COPY_BYTES = 2 * 1024 * 1024

Signature = dict[str, list[object]]  # path -> [entry code, size, mtime_ns, sha of copy or None]


def status_entries(repo: Repo) -> dict[str, str]:
    """Path -> short entry code (`1 .M`, `?`, ...) for every changed or untracked path."""
    out = gitutil.git(repo.root, "status", "--porcelain=v2", "-z", "--untracked-files=all", "--no-renames")
    entries: dict[str, str] = {}
    parts = out.split(b"\0")
    i = 0
    while i < len(parts):
        raw = parts[i]
        i += 1
        if not raw:
            continue
        kind = raw[:1]
        if kind == b"?":
            entries[raw[2:].decode("utf-8", "surrogateescape")] = "?"
        elif kind == b"1":
            fields = raw.split(b" ", 8)
            entries[fields[8].decode("utf-8", "surrogateescape")] = "1 " + fields[1].decode()
        elif kind == b"2":
            fields = raw.split(b" ", 9)
            entries[fields[9].decode("utf-8", "surrogateescape")] = "2 " + fields[1].decode()
            i += 1  # the original path follows
        elif kind == b"u":
            fields = raw.split(b" ", 10)
            entries[fields[10].decode("utf-8", "surrogateescape")] = "u"
    return entries


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.lstat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def signature(repo: Repo, sd: StateDir | None) -> Signature | None:
    """The work tree's dirty paths with size and mtime (and copies of small dirty files when `sd`)."""
    entries = status_entries(repo)
    if len(entries) > MAX_STATUS_ENTRIES:
        return None
    sig: Signature = {}
    copies = 0
    for path, code in entries.items():
        full = os.path.join(repo.root, path)
        size, mtime = _stat(full)
        sha: str | None = None
        if sd is not None and 0 <= size <= MAX_DIRTY_COPY_BYTES and copies < MAX_DIRTY_COPIES:
            try:
                data = read_file(full)
            except SkipFile:
                data = None
            if data is not None:
                sha = sd.put_blob(data)
                copies += 1
        sig[path] = [code, size, mtime, sha]
    return sig


def _moves(
    repo: Repo, before: dict[str, object], changed: list[str], index_blobs: dict[str, bytes | None], sd: StateDir
) -> dict[bytes, str]:
    """Content -> path of the files the command deleted (so a `mv` does not look like new lines)."""
    contents: dict[bytes, str] = {}
    for path in changed:
        if os.path.lexists(os.path.join(repo.root, path)):
            continue
        entry = before.get(path)
        data: bytes | None
        if isinstance(entry, list) and len(entry) == 4 and entry[3]:
            data = sd.get_blob(str(entry[3]))
        else:
            data = index_blobs.get(f":{path}")
        if data:
            contents[data] = path
    return contents


def _move_source(post: bytes, moved_from: dict[bytes, str]) -> tuple[bytes, str] | None:
    """The deleted file `post` most likely is, when at least half of its lines come from it."""
    from tracemark.capture.lines import match, split_lines

    new_lines = split_lines(post)
    best: tuple[int, bytes, str] | None = None
    for content, path in moved_from.items():
        kept = sum(1 for i in match(split_lines(content), new_lines) if i >= 0)
        if best is None or kept > best[0]:
            best = (kept, content, path)
    if best is None or not new_lines or best[0] * 2 < len(new_lines):
        return None
    return best[1], best[2]


def begin_shell(sd: StateDir, repo: Repo, tool_key: str, owner: str, command: str) -> str:
    sig = signature(repo, sd)
    sd.ensure("snapshots")
    if sig is None:
        sd.write_json(
            f"snapshots/{tool_key}.json", {"kind": "shell", "skipped": True, "owner": owner, "command": command}
        )
        return f"skipped: more than {MAX_STATUS_ENTRIES} changed files"
    sd.write_json(
        f"snapshots/{tool_key}.json",
        {"kind": "shell", "root": repo.root, "entries": sig, "owner": owner, "t": time.time_ns(), "command": command},
    )
    return "snapshot"


def end_shell(sd: StateDir, repo: Repo, tool_key: str, owner: str) -> tuple[str, list[str], str]:
    """Attribute the files a shell command changed; returns (result, changed paths, command seen before)."""
    snapshot_rel = f"snapshots/{tool_key}.json"
    snapshot = sd.read_json(snapshot_rel)
    try:
        if not isinstance(snapshot, dict):
            return "no-snapshot", [], ""
        command = str(snapshot.get("command") or "")
        if snapshot.get("skipped"):
            return "skipped-large-worktree", [], command
        before = snapshot.get("entries")
        if not isinstance(before, dict):
            return "bad-snapshot", [], command
        after = signature(repo, None)
        if after is None:
            return "skipped-large-worktree", [], command
        changed = [
            path
            for path in sorted(set(before) | set(after))
            if path not in before or path not in after or list(before[path])[:3] != after[path][:3]
        ]
        if not changed:
            return "no-change", [], command
        clean_before = [path for path in changed if path not in before]
        index_blobs = gitutil.cat_blobs(repo.root, [f":{path}" for path in clean_before])
        moved_from = _moves(repo, before, changed, index_blobs, sd)
        since = int(snapshot.get("t") or 0)
        touched: list[str] = []
        notes: list[str] = []
        for path in changed:
            if path in before:
                entry = before[path]
                sha = entry[3] if isinstance(entry, list) and len(entry) == 4 else None
                pre = sd.get_blob(str(sha)) if sha else None
                if pre is None and entry[1] != -1:
                    notes.append(f"{path}: no copy before")
                    continue
            else:
                pre = index_blobs.get(f":{path}")
            try:
                post = read_file(os.path.join(repo.root, path))
            except SkipFile as exc:
                notes.append(f"{path}: {exc}")
                continue
            if pre is None and post is not None and moved_from:
                source = _move_source(post, moved_from)
                if source is not None:  # moved (maybe edited) by the command: only its changes are new
                    pre = source[0]
                    notes.append(f"{path}: moved from {source[1]}")
            if pre is not None and b"\0" in pre[:8000]:
                notes.append(f"{path}: binary")
                continue
            result, _count = attribute(sd, repo, path, pre, post, owner=owner, tool_key=tool_key, since_ns=since)
            if result != "ok":
                notes.append(f"{path}: {result}")
            touched.append(path)
        return ("ok" if not notes else "partial: " + "; ".join(notes)[:300]), touched, command
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sd.path(snapshot_rel))
