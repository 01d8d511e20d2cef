"""Git plumbing for the CLI: repository discovery (no subprocess) and a few batched git calls.

Agent hooks run on every tool call, so discovery reads `.git` files directly instead of running
`git rev-parse`; `subprocess` is imported only by the functions that run git.
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH109, PTH110, PTH112, PTH113, PTH118, PTH120, PTH123

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class GitError(Exception):
    """A git command failed; the message carries git's stderr."""


class Repo:
    """One work tree of a git repository: its root, its git dir and the common dir it shares."""

    __slots__ = ("common_dir", "git_dir", "root")

    def __init__(self, root: str, git_dir: str, common_dir: str) -> None:
        self.root = root
        self.git_dir = git_dir
        self.common_dir = common_dir

    @property
    def state_dir(self) -> str:
        """`<git common dir>/tracemark`: every piece of local capture state (SPEC §2.3)."""
        return os.path.join(self.common_dir, "tracemark")

    def relpath(self, path: str) -> str | None:
        """`path` relative to the work tree root with `/` separators, or None when outside it."""
        full = os.path.realpath(os.path.join(self.root, path))
        if full == self.root or not full.startswith(self.root + os.sep):
            return None
        rel = full[len(self.root) + 1 :]
        if rel == ".git" or rel.startswith(".git" + os.sep):
            return None
        return rel.replace(os.sep, "/")

    def __repr__(self) -> str:
        return f"Repo(root={self.root!r})"


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _common_dir(git_dir: str) -> str:
    text = _read_text(os.path.join(git_dir, "commondir"))
    if text:
        return os.path.realpath(os.path.join(git_dir, text))
    return git_dir


def discover(start: str) -> Repo | None:
    """The work tree containing `start` (a file or directory), found by walking up; None outside git."""
    current = os.path.realpath(start)
    if not os.path.isdir(current):
        current = os.path.dirname(current)
    while True:
        dot_git = os.path.join(current, ".git")
        if os.path.isdir(dot_git):
            git_dir = dot_git
            return Repo(current, git_dir, _common_dir(git_dir))
        if os.path.isfile(dot_git):
            text = _read_text(dot_git) or ""
            if text.startswith("gitdir:"):
                git_dir = os.path.realpath(os.path.join(current, text[len("gitdir:") :].strip()))
                if os.path.isdir(git_dir):
                    return Repo(current, git_dir, _common_dir(git_dir))
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def discover_for_hook() -> Repo | None:
    """The repository a git hook runs in (git runs hooks at the work tree root, maybe with GIT_DIR)."""
    cwd = os.getcwd()
    git_dir_env = os.environ.get("GIT_DIR")
    if git_dir_env:
        git_dir = os.path.realpath(os.path.join(cwd, git_dir_env))
        if os.path.isdir(git_dir):
            root = os.path.realpath(os.environ.get("GIT_WORK_TREE") or cwd)
            return Repo(root, git_dir, _common_dir(git_dir))
    return discover(cwd)


def _clean_env() -> dict[str, str]:
    # Hooks inherit GIT_DIR/GIT_INDEX_FILE from git; our own git calls pass -C and keep the index
    # variable (a partial commit stages into a temporary index that we must read).
    env = dict(os.environ)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_PREFIX"):
        env.pop(name, None)
    return env


def git(repo_root: str, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
    """Run `git -C repo_root args...` and return stdout; GitError on failure when `check`."""
    argv = ["git", "-C", repo_root, *args]
    if hasattr(os, "posix_spawnp") and (stdin is None or len(stdin) < _SPAWN_STDIN_LIMIT):
        code, out, err = _spawn(argv, stdin or b"", _clean_env())
    else:  # pragma: no cover - large inputs and platforms without posix_spawn
        import subprocess

        proc = subprocess.run(argv, input=stdin, capture_output=True, env=_clean_env(), check=False)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    if check and code != 0:
        raise GitError(f"git {' '.join(args)}: {err.decode('utf-8', 'replace').strip()}")
    return out


# Hooks run git on every commit: `subprocess` (with selectors, threading, signal, locale) costs
# ~3 ms of imports, a third of a hook's budget, so small calls use posix_spawn and pipes directly.
# stdin is written in full before reading, which cannot deadlock while it fits a pipe buffer.
_SPAWN_STDIN_LIMIT = 32 * 1024


def _spawn(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    import select

    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
            *((os.POSIX_SPAWN_CLOSE, fd) for fd in (in_r, in_w, out_r, out_w, err_r, err_w)),
        ]
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    try:
        if stdin:
            os.write(in_w, stdin)
    except BrokenPipeError:
        pass
    finally:
        os.close(in_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    open_fds = [out_r, err_r]
    while open_fds:
        ready, _w, _x = select.select(open_fds, [], [])
        for fd in ready:
            data = os.read(fd, 1 << 16)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
                os.close(fd)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]), b"".join(chunks[err_r])


def cat_objects(repo_root: str, specs: Sequence[str]) -> dict[str, tuple[str, str, bytes] | None]:
    """`(sha, type, content)` of many revision specs (`HEAD`, `<rev>:<path>`, `:<path>` for the
    index) in one `git cat-file --batch`; None for the ones that do not exist."""
    if not specs:
        return {}
    unique = list(dict.fromkeys(specs))
    payload = "".join(spec + "\n" for spec in unique).encode("utf-8", "surrogateescape")
    out = git(repo_root, "cat-file", "--batch", stdin=payload)
    result: dict[str, tuple[str, str, bytes] | None] = {}
    pos = 0
    for spec in unique:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        pos = end + 1
        if len(header) == 3 and header[1] in (b"blob", b"commit", b"tree", b"tag"):
            size = int(header[2])
            result[spec] = (header[0].decode(), header[1].decode(), out[pos : pos + size])
            pos += size + 1
        else:
            result[spec] = None  # "<spec> missing" or "ambiguous"
    return result


def cat_blobs(repo_root: str, specs: Sequence[str]) -> dict[str, bytes | None]:
    """Contents of many `<rev>:<path>` (or `:<path>` for the index) blobs in one git process."""
    return {
        spec: (found[2] if found is not None and found[1] == "blob" else None)
        for spec, found in cat_objects(repo_root, specs).items()
    }


def parse_commit(content: bytes) -> tuple[list[str], int, str]:
    """Parents, committer time and message of a raw commit object."""
    head, _, message = content.partition(b"\n\n")
    parents: list[str] = []
    ctime = 0
    for line in head.split(b"\n"):
        if line.startswith(b"parent "):
            parents.append(line[7:].decode())
        elif line.startswith(b"committer "):
            fields = line.rsplit(b" ", 2)
            if len(fields) == 3 and fields[1].isdigit():
                ctime = int(fields[1])
    return parents, ctime, message.decode("utf-8", "surrogateescape")


def head_sha(repo_root: str) -> str | None:
    out = git(repo_root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip()
    return out.decode() if out else None


def hooks_dir(repo_root: str) -> str:
    """Where git runs hooks for this repository (honours core.hooksPath and linked worktrees)."""
    out = git(repo_root, "rev-parse", "--git-path", "hooks").decode("utf-8", "surrogateescape").strip()
    return os.path.realpath(os.path.join(repo_root, out))


def config_get(repo_root: str, key: str) -> str | None:
    out = git(repo_root, "config", "--get", key, check=False).decode("utf-8", "replace").strip()
    return out or None


def toplevel(cwd: str) -> str | None:
    """The work tree root git reports for `cwd`, or None when `cwd` is not inside a work tree."""
    try:
        out = git(cwd, "rev-parse", "--show-toplevel")
    except (GitError, OSError):
        return None
    text = out.decode("utf-8", "surrogateescape").strip()
    return os.path.realpath(text) if text else None


def split_z(data: bytes) -> list[str]:
    return [part.decode("utf-8", "surrogateescape") for part in data.split(b"\0") if part]


def name_status(repo_root: str, args: Iterable[str]) -> list[tuple[str, str]]:
    """`(status letter, path)` pairs of a `--name-status -z --no-renames` diff."""
    parts = split_z(git(repo_root, *args, "--name-status", "-z", "--no-renames"))
    return [(parts[i][:1], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO_OID = "0" * 40


def read_objects(repo: Repo, oids: Iterable[str]) -> dict[str, tuple[str, bytes] | None]:
    """`(type, content)` of objects by id: loose objects are read directly (a fresh commit's objects
    are loose), the rest (packed, alternates) through one `git cat-file --batch`."""
    import zlib

    result: dict[str, tuple[str, bytes] | None] = {}
    missing: list[str] = []
    for oid in dict.fromkeys(oids):
        if len(oid) not in (40, 64) or oid == ZERO_OID or not all(c in "0123456789abcdef" for c in oid):
            result[oid] = None
            continue
        try:
            with open(os.path.join(repo.common_dir, "objects", oid[:2], oid[2:]), "rb") as handle:
                raw = zlib.decompress(handle.read())
            header, _, content = raw.partition(b"\0")
            kind, _, size = header.partition(b" ")
            if int(size) != len(content):
                raise ValueError("short object")
            result[oid] = (kind.decode(), content)
        except (OSError, ValueError, zlib.error):
            missing.append(oid)
    if missing:
        for spec, found in cat_objects(repo.root, missing).items():
            result[spec] = None if found is None else (found[1], found[2])
    return result


def resolve_head(repo: Repo) -> str | None:
    """HEAD's commit id, read from the ref files (falls back to `git rev-parse`); None before the first commit."""
    head = _read_text(os.path.join(repo.git_dir, "HEAD")) or ""
    if not head.startswith("ref:"):
        return head if len(head) in (40, 64) else _rev_parse_head(repo)
    ref = head[4:].strip()
    for base in (repo.git_dir, repo.common_dir):
        value = _read_text(os.path.join(base, ref))
        if value and len(value) in (40, 64):
            return value
    packed = _read_text(os.path.join(repo.common_dir, "packed-refs")) or ""
    for line in packed.splitlines():
        if line.endswith(" " + ref):
            return line.split(" ", 1)[0]
    if os.path.exists(os.path.join(repo.common_dir, "reftable")):
        return _rev_parse_head(repo)
    return None


def _rev_parse_head(repo: Repo) -> str | None:
    out = git(repo.root, "rev-parse", "-q", "--verify", "HEAD", check=False).strip()
    return out.decode() if out else None


def raw_diff(data: bytes) -> list[tuple[str, str, str, str]]:
    """`(status, old oid, new oid, path)` from `--raw -z --no-renames` output."""
    parts = data.split(b"\0")
    out: list[tuple[str, str, str, str]] = []
    i = 0
    while i < len(parts) - 1:
        meta = parts[i].decode("ascii", "replace").lstrip("\n")
        if not meta.startswith(":"):
            i += 1
            continue
        fields = meta[1:].split(" ")
        if len(fields) >= 5:
            out.append((fields[4][:1], fields[2], fields[3], parts[i + 1].decode("utf-8", "surrogateescape")))
        i += 2
    return out
