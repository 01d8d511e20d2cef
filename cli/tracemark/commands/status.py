"""`tracemark status [--json]` (SPEC §2.6): initialised?, hooks installed?, sessions, spool, server."""
# os.path throughout, like the capture modules it drives
# ruff: noqa: PTH109, PTH112, PTH118, PTH208

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any

NAME = "status"
HELP = "show whether capture is set up here, what was recorded, what is pending, and if the server answers"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.add_argument("--no-server", action="store_true", help="do not contact the server")


def _server_check(server: str | None) -> dict[str, Any]:
    if not server:
        return {"url": None, "reachable": None, "detail": "no server configured (tracemark auth login)"}
    import urllib.error
    import urllib.request

    url = server.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - http(s) URL from our own config
            return {"url": server, "reachable": True, "detail": f"HTTP {response.status}"}
    except urllib.error.HTTPError as exc:
        return {"url": server, "reachable": True, "detail": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"url": server, "reachable": False, "detail": str(getattr(exc, "reason", exc))}


def collect(root: str, contact_server: bool = True) -> dict[str, Any]:
    from tracemark import gitutil, installer
    from tracemark.capture.records import list_sessions, load_commit_records
    from tracemark.config import config_path, load_config
    from tracemark.errors import UserError

    repo = gitutil.discover(root)
    if repo is None:
        raise UserError("not inside a git repository")
    config_file = config_path(repo.root)
    config_error = None
    config = None
    try:
        config = load_config(repo.root)
    except UserError as exc:
        config_error = exc.message
    try:
        git_hooks: dict[str, bool] = installer.git_hooks_installed(repo)
        hooks_dir = gitutil.hooks_dir(repo.root)
    except gitutil.GitError:
        git_hooks, hooks_dir = {}, ""
    spool_dir = os.path.join(repo.state_dir, "spool")
    pending = sorted(n for n in os.listdir(spool_dir) if n.endswith(".json")) if os.path.isdir(spool_dir) else []
    rejected_dir = os.path.join(spool_dir, "rejected")
    rejected = [n for n in os.listdir(rejected_dir) if n.endswith(".json")] if os.path.isdir(rejected_dir) else []
    server = os.environ.get("TRACEMARK_SERVER") or None
    if not server:
        try:
            from tracemark.credentials import load_credentials

            creds = load_credentials()
            server = creds.server if creds else None
        except UserError:
            server = None
    server = server or (config.server if config else None)
    return {
        "repository": repo.root,
        "initialised": config is not None and os.path.isdir(repo.state_dir),
        "config": {"path": config_file, "project": config.project_name if config else None, "error": config_error},
        "git_hooks": {"dir": hooks_dir, "installed": git_hooks},
        "agent_hooks": installer.agent_hooks_installed(repo),
        "sessions": len(list_sessions(repo)),
        "commits_recorded": len(load_commit_records(repo)),
        "spool": {"pending": len(pending), "rejected": len(rejected)},
        "server": _server_check(server) if contact_server else {"url": server, "reachable": None, "detail": "skipped"},
        "log": os.path.join(repo.state_dir, "log.txt"),
        # Agent hooks run `tracemark` from PATH: without it they silently do nothing (by design).
        "cli_on_path": shutil.which("tracemark"),
    }


def run(args: argparse.Namespace) -> int:
    info = collect(os.getcwd(), contact_server=not args.no_server)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    yes = {True: "yes", False: "no", None: "-"}
    hooks = info["git_hooks"]["installed"]
    missing = [name for name, ok in hooks.items() if not ok]
    print(f"repository:     {info['repository']}")
    print(
        f"initialised:    {yes[info['initialised']]}"
        + (f" ({info['config']['error']})" if info["config"]["error"] else "")
    )
    print(f"project:        {info['config']['project'] or '-'}")
    print(f"git hooks:      {'all installed' if hooks and not missing else 'missing: ' + ', '.join(missing)}")
    agents = [name for name, ok in info["agent_hooks"].items() if ok]
    print(f"agent hooks:    {', '.join(agents) or 'none'}")
    print(f"sessions:       {info['sessions']} recorded, {info['commits_recorded']} commit record(s)")
    print(f"spool:          {info['spool']['pending']} pending, {info['spool']['rejected']} rejected")
    server = info["server"]
    print(f"server:         {server['url'] or '-'} reachable={yes[server['reachable']]} ({server['detail']})")
    print(f"log:            {info['log']}")
    if not info["cli_on_path"]:
        print("warning: `tracemark` is not on PATH, so agent hooks cannot run it; install it on PATH")
    return 0
