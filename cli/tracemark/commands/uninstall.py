"""`tracemark uninstall [--yes]` (SPEC §2.2): remove our hooks and entries, restore chained hooks, drop state."""
# os.path throughout, like the capture modules it drives
# ruff: noqa: PTH109, PTH112, PTH113, PTH118, PTH123, PTH208

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

NAME = "uninstall"
HELP = "remove tracemark's git hooks, agent hook entries and local state from this repository"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _plan_config_removal(root: str, txn: Any, manifest: dict[str, Any]) -> list[str]:
    """Delete the project config only when this clone's init created it, unchanged and never committed."""
    from tracemark import gitutil
    from tracemark.capture.state import sha256_hex
    from tracemark.config import CONFIG_NAMES

    actions = []
    for name in CONFIG_NAMES:
        entry = manifest.get(name)
        path = os.path.join(root, name)
        if not isinstance(entry, dict) or not entry.get("created") or not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            unchanged = sha256_hex(handle.read()) == entry.get("written_sha256")
        tracked = gitutil.git(root, "ls-files", "--", name, check=False).strip()
        if unchanged and not tracked:
            txn.delete(path)
            actions.append(f"deleted {name} (created by init, never committed)")
        else:
            actions.append(
                f"kept {name} (committed or edited; delete it yourself if the project no longer uses tracemark)"
            )
    return actions


def run(args: argparse.Namespace) -> int:
    from tracemark import gitutil, installer
    from tracemark.capture.state import StateDir
    from tracemark.errors import UserError

    top = gitutil.toplevel(os.getcwd())
    repo = gitutil.discover(top) if top else None
    if repo is None:
        raise UserError("not inside a git repository")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError("uninstall needs confirmation", "run `tracemark uninstall --yes`")
        answer = input(f"Remove tracemark hooks and local state from {repo.root}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted; nothing changed")
            return 1
    sd = StateDir(repo.state_dir)
    manifest_raw = sd.read_json(installer.MANIFEST)
    manifest = manifest_raw if isinstance(manifest_raw, dict) else {}
    txn = installer.Transaction()
    try:
        actions = installer.plan_git_hooks_removal(repo, txn)
        actions += installer.plan_agent_removal(repo, txn, manifest)
        actions += _plan_config_removal(repo.root, txn, manifest)
        txn.commit()
    except installer.InstallError as exc:
        raise UserError(exc.message, exc.hint) from exc
    if os.path.isdir(sd.root):
        spool = sd.path("spool")
        pending = [n for n in os.listdir(spool) if n.endswith(".json")] if os.path.isdir(spool) else []
        if pending:
            print(f"warning: deleting {len(pending)} attestation(s) not yet delivered", file=sys.stderr)
        shutil.rmtree(sd.root)
        actions.append(f"deleted {sd.root}")
    for action in actions or ["nothing to remove"]:
        print(f"  {action}")
    return 0
