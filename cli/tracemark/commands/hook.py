"""`tracemark hook claude|cursor <event>` and `tracemark hook git <name> [args]` (SPEC §2.3-2.4).

The hot path: it runs on every agent tool call, so it imports only the stdlib and the capture
modules, never raises, exits 0 for agent hooks (Cursor hooks always print `{}`), and writes one line
per invocation to `<git common dir>/tracemark/log.txt`.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from tracemark.capture.agent import Outcome

NAME = "hook"
HELP = "run a capture hook (called by agents and git; reads the hook's JSON on stdin)"
USAGE = "usage: tracemark hook {claude,cursor} <event> < payload.json | tracemark hook git <name> [args]"
STDIN_LIMIT = 16 * 1024 * 1024


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=["claude", "cursor", "git"], help="who calls the hook")
    parser.add_argument("event", help="the agent's event name or the git hook's name")
    parser.add_argument("args", nargs="*", help="the git hook's arguments")


def run(args: argparse.Namespace) -> int:
    return main([args.source, args.event, *args.args])


def read_stdin(limit: int = STDIN_LIMIT) -> bytes:
    """Up to `limit` + 1 bytes of stdin; the rest is drained so the writer never blocks or breaks."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return b""
    try:
        if stream.isatty():
            return b""
        data = stream.read(limit + 1)
        while stream.read(1024 * 1024):
            pass
    except (OSError, ValueError):
        return b""
    return data or b""


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    source = argv[0] if argv else ""
    if source == "git":
        return _git(argv[1:], started)
    if source not in ("claude", "cursor") or len(argv) < 2:
        print(USAGE, file=sys.stderr)
        if source == "cursor":
            sys.stdout.write("{}")
        return 0
    event = argv[1]
    outcome = None
    try:
        from tracemark.capture import agent

        outcome = agent.handle(source, event, read_stdin())
    except Exception as exc:  # an agent hook never breaks the agent
        outcome = _crash(source, event, exc)
    finally:
        if source == "cursor":
            sys.stdout.write("{}")
            sys.stdout.flush()
    if outcome is not None and outcome.sd is not None:
        outcome.sd.log(
            source,
            event,
            outcome.session,
            outcome.result,
            (time.perf_counter() - started) * 1000,
            detail=outcome.detail,
        )
    return 0


def _crash(source: str, event: str, exc: Exception) -> Outcome:
    from tracemark.capture import agent
    from tracemark.capture.state import StateDir, is_traced

    repo = agent.locate_repo(None, source == "cursor")
    sd = StateDir(repo.state_dir) if repo is not None and is_traced(repo) else None
    return agent.Outcome("error", "", f"{type(exc).__name__}: {exc}", sd)


def _git(argv: list[str], started: float) -> int:
    from tracemark import gitutil
    from tracemark.capture import githooks
    from tracemark.capture.state import StateDir, is_traced

    name = argv[0] if argv else ""
    args = argv[1:]
    repo = gitutil.discover_for_hook()
    if repo is None or not is_traced(repo):
        if name in ("pre-push", "post-rewrite"):
            read_stdin()
        return 0
    sd = StateDir(repo.state_dir)
    sd.ensure()
    code, result, detail = 0, "ok", ""
    try:
        if name == "commit-msg" and args:
            result, detail = githooks.commit_msg(repo, sd, args[0])
        elif name == "post-commit":
            result, detail = githooks.post_commit(repo, sd)
        elif name == "post-rewrite":
            result, detail = githooks.post_rewrite(repo, sd, args[0] if args else "", read_stdin())
        elif name == "pre-push":
            remote = args[0] if args else ""
            url = args[1] if len(args) > 1 else ""
            code, result, detail = githooks.pre_push(repo, sd, remote, url, read_stdin())
        else:
            result, detail = "ignored", f"unknown git hook {name[:40]!r}"
    except Exception as exc:  # a capture problem never blocks a commit
        result, detail = "error", f"{type(exc).__name__}: {exc}"
    sd.log("git", name, "", result, (time.perf_counter() - started) * 1000, detail=detail)
    return code


if __name__ == "__main__":  # `python -m tracemark.commands.hook ...`: what installed git hooks run (no CLI parser)
    sys.exit(main(sys.argv[1:]))
