"""Git plumbing for the CLI: repository discovery (no subprocess) and a few batched git calls.

Agent hooks run on every tool call, so discovery reads `.git` files directly instead of running
`git rev-parse`; `subprocess` is imported only by the functions that run git.
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH109, PTH112, PTH113, PTH118, PTH120, PTH123

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
    import subprocess

    proc = subprocess.run(
        ["git", "-C", repo_root, *args],
        input=stdin,
        capture_output=True,
        env=_clean_env(),
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout


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
