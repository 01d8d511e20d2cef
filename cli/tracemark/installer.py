"""Install and remove our agent hook entries and git hooks (SPEC §2.1-2.2), pre-commit's discipline:

- our files and entries carry a marker; foreign ones are kept and chained, never edited;
- a foreign git hook is renamed `<hook>.tracemark-chained` and run after ours with the same
  arguments and the same standard input; uninstall renames it back (byte for byte);
- every change goes through a Transaction: checked first, written atomically, rolled back as a
  whole if any write fails, so nothing is ever half-installed;
- agent configs are merged (everything else kept), re-running changes nothing, and the original
  bytes are kept in the state dir so uninstall restores them exactly when nothing else changed.

Stdlib only: agent hooks call `ensure_git_hooks` to onboard teammates (SPEC §2.1).
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH100, PTH101, PTH102, PTH103, PTH104, PTH106, PTH108, PTH112, PTH114, PTH116, PTH118, PTH119, PTH120, PTH123, PTH208

from __future__ import annotations

import json
import os
import stat
import sys

from tracemark import gitutil
from tracemark.capture.state import StateDir, atomic_write, sha256_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tracemark.gitutil import Repo

MARKER = "# tracemark-managed"
CHAIN_SUFFIX = ".tracemark-chained"
GIT_HOOKS = ("commit-msg", "post-commit", "post-rewrite", "pre-push")
STDIN_HOOKS = frozenset({"post-rewrite", "pre-push"})
CLAUDE_SETTINGS = os.path.join(".claude", "settings.json")
CURSOR_HOOKS = os.path.join(".cursor", "hooks.json")
MANIFEST = "install.json"

FILE_TOOLS_MATCHER = "Edit|Write|MultiEdit|NotebookEdit|Bash|PowerShell|Task|Agent"
# (event, matcher or None, timeout seconds)
CLAUDE_EVENTS: tuple[tuple[str, str | None, int], ...] = (
    ("SessionStart", None, 10),
    ("UserPromptSubmit", None, 10),
    ("PreToolUse", FILE_TOOLS_MATCHER, 10),
    ("PostToolUse", FILE_TOOLS_MATCHER, 10),
    ("PostToolUseFailure", FILE_TOOLS_MATCHER, 10),
    ("Stop", None, 10),
    ("SubagentStop", None, 10),
    ("PreCompact", None, 10),
    ("SessionEnd", None, 5),
)
CURSOR_EVENTS: tuple[tuple[str, int], ...] = (
    ("sessionStart", 10),
    ("beforeSubmitPrompt", 10),
    ("afterFileEdit", 10),
    ("beforeShellExecution", 10),
    ("afterShellExecution", 10),
    ("stop", 10),
    ("sessionEnd", 5),
)


class InstallError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- transactions -------------------------------------------------------------------------------
class Transaction:
    """Collects file changes; `commit()` applies them all or (on any failure) none."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, str, Any]] = []  # (kind, path, payload)

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.ops.append(("write", path, (data, mode)))

    def rename(self, src: str, dst: str) -> None:
        self.ops.append(("rename", src, dst))

    def delete(self, path: str) -> None:
        self.ops.append(("delete", path, None))

    def rmdir_if_empty(self, path: str) -> None:
        self.ops.append(("rmdir", path, None))

    def check(self) -> None:
        """Fail before touching anything when a target directory cannot be written."""
        for _kind, path, _payload in self.ops:
            directory = _existing_parent(os.path.dirname(os.path.abspath(path)))
            if not os.access(directory, os.W_OK | os.X_OK):
                raise InstallError(
                    f"{directory} is not writable",
                    "fix its permissions (or run as its owner) and run the command again; nothing was changed",
                )

    def commit(self) -> None:
        self.check()
        undo: list[tuple[str, str, Any]] = []
        try:
            for kind, path, payload in self.ops:
                if kind == "write":
                    data, mode = payload
                    previous = _snapshot(path)
                    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                    atomic_write(path, data, mode)
                    os.chmod(path, mode)
                    undo.append(("restore", path, previous))
                elif kind == "rename":
                    os.rename(path, payload)
                    undo.append(("rename", payload, path))
                elif kind == "delete":
                    previous = _snapshot(path)
                    if previous is not None:
                        os.unlink(path)
                        undo.append(("restore", path, previous))
                elif kind == "rmdir" and os.path.isdir(path) and not os.listdir(path):
                    os.rmdir(path)
                    undo.append(("mkdir", path, None))
        except OSError as exc:
            for kind, path, payload in reversed(undo):
                try:
                    if kind == "rename":
                        os.rename(path, payload)
                    elif kind == "mkdir":
                        os.mkdir(path)
                    elif payload is None:
                        os.unlink(path)
                    else:
                        atomic_write(path, payload[0], payload[1])
                except OSError:
                    pass
            raise InstallError(
                f"could not write {exc.filename or 'a file'}: {exc.strerror or exc}", "nothing was changed"
            ) from exc


def _existing_parent(directory: str) -> str:
    while not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return directory


def _snapshot(path: str) -> tuple[bytes, int] | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(), stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise InstallError(f"{path} is a directory") from exc


# -- git hooks ----------------------------------------------------------------------------------
# `-c` rather than `-m tracemark...`: no runpy, no CLI parser; just the hook handler.
_HOOK_MAIN = "import sys; from tracemark.commands.hook import main; sys.exit(main(sys.argv[1:]))"


def hook_script(name: str, python: str | None = None) -> bytes:
    """Our hook: run `tracemark hook git <name>`, then the chained foreign hook (same args, same stdin)."""
    python = python if python is not None else sys.executable
    quoted_python = "'" + python.replace("'", "'\\''") + "'"
    fail = "|| exit $?" if name == "pre-push" else "|| :"
    lines = [
        "#!/bin/sh",
        f"{MARKER} (`tracemark uninstall` removes this hook and restores any chained one)",
        f"TRACEMARK_PYTHON={quoted_python}",
        f'TRACEMARK_CHAINED="$(dirname "$0")/{name}{CHAIN_SUFFIX}"',
        "export TRACEMARK_CHAINED",
        "tracemark_hook() {",
        '\tif [ -x "$TRACEMARK_PYTHON" ]; then',
        f'\t\t"$TRACEMARK_PYTHON" -c "{_HOOK_MAIN}" git {name} "$@"',
        "\telif command -v tracemark >/dev/null 2>&1; then",
        f'\t\ttracemark hook git {name} "$@"',
        "\tfi",
        "}",
        "tracemark_chained() {",
        "\t# sh scripts are sourced with our $0, so hook managers that dispatch on it (husky) still work",
        '\tcase "$(head -n 1 "$TRACEMARK_CHAINED" 2>/dev/null)" in',
        "\t'#!/bin/sh' | '#!/bin/sh '* | '#!/usr/bin/env sh' | '#!/usr/bin/env sh '*)",
        '\t\tsh -c \'. "$TRACEMARK_CHAINED"\' "$0" "$@" ;;',
        '\t*) "$TRACEMARK_CHAINED" "$@" ;;',
        "\tesac",
        "}",
    ]
    if name in STDIN_HOOKS:
        lines += [
            'tracemark_in="$(mktemp "${TMPDIR:-/tmp}/tracemark-hook.XXXXXX")" || exit 1',
            "trap 'rm -f \"$tracemark_in\"' EXIT",
            'cat > "$tracemark_in"',
            f'tracemark_hook "$@" < "$tracemark_in" {fail}',
            'if [ -x "$TRACEMARK_CHAINED" ]; then',
            '\ttracemark_chained "$@" < "$tracemark_in"',
            "\texit $?",
            "fi",
            "exit 0",
        ]
    else:
        lines += [
            f'tracemark_hook "$@" {fail}',
            'if [ -x "$TRACEMARK_CHAINED" ]; then',
            '\ttracemark_chained "$@"',
            "\texit $?",
            "fi",
            "exit 0",
        ]
    return ("\n".join(lines) + "\n").encode()


def is_ours(data: bytes | None) -> bool:
    return data is not None and MARKER.encode() in data[:400]


def _hooks_dir_checked(repo: Repo) -> str:
    directory = gitutil.hooks_dir(repo.root)
    hooks_path = gitutil.config_get(repo.root, "core.hooksPath")
    if hooks_path:
        inside = any(directory == base or directory.startswith(base + os.sep) for base in (repo.root, repo.common_dir))
        if not inside:
            raise InstallError(
                f"core.hooksPath is set to {hooks_path!r}, a hooks directory shared outside this repository",
                "tracemark will not edit a shared hooks directory. Either run "
                "`git config --local core.hooksPath .git/hooks` for this repository, or call "
                '`tracemark hook git <name> "$@"` (commit-msg, post-commit, post-rewrite, pre-push; '
                "pass stdin through for post-rewrite and pre-push) from your shared hooks, then run init again",
            )
        tracked = gitutil.git(
            repo.root, "ls-files", "--", *[os.path.join(directory, name) for name in GIT_HOOKS], check=False
        ).strip()
        if tracked:
            raise InstallError(
                f"core.hooksPath is set to {hooks_path!r} and its hooks are committed to the repository",
                "tracemark will not rewrite committed hook scripts. Add "
                '`command -v tracemark >/dev/null 2>&1 && tracemark hook git <name> "$@"` to each of '
                "commit-msg, post-commit, post-rewrite and pre-push there (pass stdin through for the last "
                "two), or point core.hooksPath at an untracked directory",
            )
    return directory


def plan_git_hooks(repo: Repo, txn: Transaction, python: str | None = None) -> list[str]:
    """Queue the writes that install our four git hooks; returns a line per action."""
    directory = _hooks_dir_checked(repo)
    actions: list[str] = []
    for name in GIT_HOOKS:
        path = os.path.join(directory, name)
        chained = path + CHAIN_SUFFIX
        wanted = hook_script(name, python)
        current = None if not os.path.lexists(path) else (_read(path) if not os.path.islink(path) else b"")
        if is_ours(current):
            if current != wanted:
                txn.write(path, wanted, 0o755)
                actions.append(f"updated {name} hook")
            continue
        if current is not None:
            if os.path.lexists(chained):
                if not os.path.islink(path) and _read(chained) == current:
                    txn.write(path, wanted, 0o755)  # a hook manager rewrote the same foreign hook
                    actions.append(f"reinstalled {name} hook (chained hook unchanged)")
                    continue
                raise InstallError(
                    f"{chained} already exists and {path} is a different foreign hook",
                    f"keep one of them (merge them into {path}), remove the other, and run the command again",
                )
            txn.rename(path, chained)
            actions.append(f"chained existing {name} hook as {os.path.basename(chained)}")
        txn.write(path, wanted, 0o755)
        actions.append(f"installed {name} hook in {directory}")
    return actions


def plan_git_hooks_removal(repo: Repo, txn: Transaction) -> list[str]:
    try:
        directory = gitutil.hooks_dir(repo.root)
    except gitutil.GitError:
        return []
    actions: list[str] = []
    for name in GIT_HOOKS:
        path = os.path.join(directory, name)
        chained = path + CHAIN_SUFFIX
        if os.path.islink(path) or not is_ours(_read(path)):
            continue
        txn.delete(path)
        actions.append(f"removed {name} hook")
        if os.path.lexists(chained):
            txn.rename(chained, path)
            actions.append(f"restored the chained {name} hook")
    return actions


def git_hooks_installed(repo: Repo) -> dict[str, bool]:
    directory = gitutil.hooks_dir(repo.root)
    return {name: is_ours(_read(os.path.join(directory, name))) for name in GIT_HOOKS}


def ensure_git_hooks(repo: Repo) -> str:
    """Called by agent hooks: install the git hooks when missing (a teammate's clone, husky rewrite)."""
    sd = StateDir(repo.state_dir)
    marker = sd.read_json("hooks.json")
    if (
        isinstance(marker, dict)
        and isinstance(marker.get("dir"), str)
        and all(is_ours(_read_head(os.path.join(marker["dir"], name))) for name in GIT_HOOKS)
    ):
        return ""
    txn = Transaction()
    try:
        actions = plan_git_hooks(repo, txn)
        txn.commit()
    except InstallError as exc:
        return f"git hooks not installed: {exc.message}"
    sd.ensure()
    sd.write_json("hooks.json", {"dir": gitutil.hooks_dir(repo.root)})
    return "; ".join(actions)


def _read_head(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(400)
    except OSError:
        return None


# -- agent configs ------------------------------------------------------------------------------
def claude_command(event: str) -> str:
    return f"command -v tracemark >/dev/null 2>&1 && tracemark hook claude {event} || true"


def cursor_command(event: str) -> str:
    # Cursor expects JSON on stdout on every path: `{}` comes from us, or from printf without the CLI.
    return f"command -v tracemark >/dev/null 2>&1 && tracemark hook cursor {event} || printf '{{}}'"


def _claude_ours(hook: object) -> bool:
    return isinstance(hook, dict) and "tracemark hook claude" in str(hook.get("command", ""))


def _cursor_ours(hook: object) -> bool:
    return isinstance(hook, dict) and "tracemark hook cursor" in str(hook.get("command", ""))


def load_json_config(path: str) -> tuple[dict[str, Any] | None, bytes | None]:
    """(parsed object, raw bytes); (None, None) when missing; InstallError when not a JSON object."""
    raw = _read(path)
    if raw is None:
        return None, None
    try:
        data = json.loads(raw.decode("utf-8-sig")) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise InstallError(
            f"{path} is not valid JSON ({exc})", "fix or remove the file and run the command again; nothing was changed"
        ) from exc
    if not isinstance(data, dict):
        raise InstallError(f"{path} does not hold a JSON object", "fix the file and run the command again")
    return data, raw


def _indent_of(raw: bytes | None) -> int | str:
    if raw:
        for line in raw.decode("utf-8", "replace").splitlines()[1:]:
            stripped = line.lstrip(" \t")
            if stripped and len(stripped) != len(line):
                prefix = line[: len(line) - len(stripped)]
                return "\t" if prefix.startswith("\t") else len(prefix)
    return 2


def dump_json(data: object, raw: bytes | None) -> bytes:
    text = json.dumps(data, indent=_indent_of(raw), ensure_ascii=False)
    if raw is None or raw.endswith(b"\n"):
        text += "\n"
    return text.encode("utf-8")


def merge_claude(data: dict[str, Any]) -> dict[str, Any]:
    hooks = data.get("hooks")
    if hooks is None:
        hooks = {}
    if not isinstance(hooks, dict):
        raise InstallError('.claude/settings.json: "hooks" is not an object', "fix the file and run init again")
    merged = dict(data)
    merged_hooks = dict(hooks)
    for event, matcher, timeout in CLAUDE_EVENTS:
        group: dict[str, Any] = {}
        if matcher:
            group["matcher"] = matcher
        group["hooks"] = [{"type": "command", "command": claude_command(event), "timeout": timeout}]
        groups = merged_hooks.get(event, [])
        if not isinstance(groups, list):
            raise InstallError(
                f'.claude/settings.json: hooks "{event}" is not a list', "fix the file and run init again"
            )
        merged_hooks[event] = _put_ours(
            groups, group, lambda g: isinstance(g, dict) and any(map(_claude_ours, g.get("hooks") or []))
        )
    merged["hooks"] = merged_hooks
    return merged


def _put_ours(items: list[Any], ours: Any, is_ours: Callable[[Any], bool]) -> list[Any]:
    """`items` with our entry in place of the first of ours (later copies dropped), else appended:
    re-running init changes nothing and foreign entries keep their order."""
    positions = [index for index, item in enumerate(items) if is_ours(item)]
    if not positions:
        return [*items, ours]
    out = list(items)
    out[positions[0]] = ours
    for index in reversed(positions[1:]):
        del out[index]
    return out


def unmerge_claude(data: dict[str, Any]) -> dict[str, Any]:
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return data
    out_hooks: dict[str, Any] = {}
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            out_hooks[event] = groups
            continue
        kept = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                remaining = [h for h in group["hooks"] if not _claude_ours(h)]
                if not remaining and group["hooks"]:
                    continue
                if len(remaining) != len(group["hooks"]):
                    kept.append({**group, "hooks": remaining})
                    continue
            kept.append(group)
        if kept or not groups:
            out_hooks[event] = kept
    out = dict(data)
    if out_hooks:
        out["hooks"] = out_hooks
    else:
        out.pop("hooks", None)
    return out


def merge_cursor(data: dict[str, Any]) -> dict[str, Any]:
    hooks = data.get("hooks")
    if hooks is None:
        hooks = {}
    if not isinstance(hooks, dict):
        raise InstallError('.cursor/hooks.json: "hooks" is not an object', "fix the file and run init again")
    merged = dict(data)
    merged.setdefault("version", 1)
    merged_hooks = dict(hooks)
    for event, timeout in CURSOR_EVENTS:
        entry = {"command": cursor_command(event), "timeout": timeout}
        entries = merged_hooks.get(event, [])
        if not isinstance(entries, list):
            raise InstallError(f'.cursor/hooks.json: hooks "{event}" is not a list', "fix the file and run init again")
        merged_hooks[event] = _put_ours(entries, entry, _cursor_ours)
    merged["hooks"] = merged_hooks
    return merged


def unmerge_cursor(data: dict[str, Any]) -> dict[str, Any]:
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return data
    out_hooks: dict[str, Any] = {}
    for event, entries in hooks.items():
        if isinstance(entries, list):
            kept = [e for e in entries if not _cursor_ours(e)]
            if kept or not entries:
                out_hooks[event] = kept
        else:
            out_hooks[event] = entries
    return {**data, "hooks": out_hooks}


def _agent_files(claude: bool, cursor: bool) -> list[tuple[str, Any, Any]]:
    files = []
    if claude:
        files.append((CLAUDE_SETTINGS, merge_claude, unmerge_claude))
    if cursor:
        files.append((CURSOR_HOOKS, merge_cursor, unmerge_cursor))
    return files


def plan_agent_configs(repo: Repo, txn: Transaction, claude: bool, cursor: bool, manifest: dict[str, Any]) -> list[str]:
    """Queue merges of our entries into the agent configs; record originals in `manifest`."""
    actions = []
    for relpath, merge, _unmerge in _agent_files(claude, cursor):
        path = os.path.join(repo.root, relpath)
        data, raw = load_json_config(path)
        merged = merge(data or {})
        if data is not None and merged == data:
            continue
        new_raw = dump_json(merged, raw)
        txn.write(path, new_raw, _mode_of(path))
        entry = manifest.setdefault(relpath, {})
        if "created" not in entry:
            entry["created"] = raw is None
            entry["original"] = None if raw is None else raw.decode("utf-8", "surrogateescape")
        entry["written_sha256"] = sha256_hex(new_raw)
        actions.append(f"{'created' if raw is None else 'updated'} {relpath}")
    return actions


def plan_agent_removal(repo: Repo, txn: Transaction, manifest: dict[str, Any]) -> list[str]:
    actions = []
    for relpath, _merge, unmerge in _agent_files(True, True):
        path = os.path.join(repo.root, relpath)
        try:
            data, raw = load_json_config(path)
        except InstallError as exc:
            actions.append(f"left {relpath} alone: {exc.message}")
            continue
        if data is None or raw is None:
            continue
        entry = manifest.get(relpath) if isinstance(manifest.get(relpath), dict) else None
        if entry and entry.get("written_sha256") == sha256_hex(raw):
            if entry.get("created"):
                txn.delete(path)
                txn.rmdir_if_empty(os.path.dirname(path))
                actions.append(f"deleted {relpath} (created by init)")
            else:
                txn.write(path, str(entry.get("original") or "").encode("utf-8", "surrogateescape"), _mode_of(path))
                actions.append(f"restored {relpath}")
            continue
        cleaned = unmerge(data)
        if cleaned == data:
            continue
        if entry and entry.get("created") and not cleaned.get("hooks") and set(cleaned) <= {"hooks", "version"}:
            txn.delete(path)
            txn.rmdir_if_empty(os.path.dirname(path))
            actions.append(f"deleted {relpath} (created by init)")
        else:
            txn.write(path, dump_json(cleaned, raw), _mode_of(path))
            actions.append(f"removed our entries from {relpath}")
    return actions


def _mode_of(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o644


def agent_hooks_installed(repo: Repo) -> dict[str, bool]:
    status = {}
    for relpath, ours in ((CLAUDE_SETTINGS, "tracemark hook claude"), (CURSOR_HOOKS, "tracemark hook cursor")):
        raw = _read(os.path.join(repo.root, relpath))
        status[relpath] = raw is not None and ours.encode() in raw
    return status
