"""`tracemark init --project NAME [--org ORG] [--claude] [--cursor] [--require-trace] [--server URL]` (SPEC §2.1)."""
# os.path throughout, like the capture modules it drives
# ruff: noqa: PTH109, PTH119

from __future__ import annotations

import argparse
import os
import sys

NAME = "init"
HELP = "set up capture in this repository: .tracemark.yml, agent hooks and git hooks"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, help="project name (projectName in .tracemark.yml)")
    parser.add_argument("--org", help="organisation (stored as organization)")
    parser.add_argument("--claude", action="store_true", help="install Claude Code hooks (default)")
    parser.add_argument("--cursor", action="store_true", help="install Cursor hooks")
    parser.add_argument("--require-trace", action="store_true", help="block pushes whose attestation fails")
    parser.add_argument("--server", help="server URL to record in .tracemark.yml")
    parser.add_argument("--offline", action="store_true", help="skip checking token, organisation and project")


def _check_server(project: str, org: str | None, offline: bool, server: str | None) -> str:
    """Check token, organisation and project with the server before anything is written."""
    from tracemark.credentials import load_credentials, same_server
    from tracemark.errors import UserError

    creds = load_credentials()
    if creds is None:
        return "no credentials (run `tracemark auth login`); skipped the server check"
    if server and not same_server(server, creds.server):
        return (
            f"warning: your token is for {creds.server}, not {server}: attestations for this project will be "
            "spooled and never sent with that token (run `tracemark auth login --server` for it)"
        )
    if offline:
        return "warning: --offline: token, organisation and project were not checked"
    from tracemark.client import ApiClient, TransportError

    client = ApiClient(creds.server, creds.token, retries=1)
    try:
        who = client.request("GET", "/v1/whoami")
        if who.status in (401, 403):
            raise UserError(
                f"the server {creds.server} rejected the token ({who.status})", "run `tracemark auth login`"
            )
        if who.status != 200 or not isinstance(who.body, dict):
            raise UserError(f"the server {creds.server} answered {who.status} to /v1/whoami", "retry, or use --offline")
        token_org = str(who.body.get("org") or "")
        if org and token_org and org != token_org:
            raise UserError(f"the token belongs to organisation {token_org!r}, not {org!r}", "check --org")
        found = client.request("GET", f"/v1/projects/{project}")
        if found.status == 404:
            raise UserError(
                f"project {project!r} does not exist in organisation {token_org or org!r}",
                "ask an org admin to create it (POST /v1/projects), or use --offline",
            )
        if found.status != 200:
            raise UserError(f"the server answered {found.status} for project {project!r}", "retry, or use --offline")
    except TransportError as exc:
        raise UserError(f"cannot reach {creds.server}: {exc}", "retry later, or use --offline") from exc
    return f"checked token, organisation and project with {creds.server}"


def run(args: argparse.Namespace) -> int:
    from tracemark import gitutil, installer
    from tracemark.capture.state import StateDir, sha256_hex
    from tracemark.config import KEYS as CONFIG_KEYS
    from tracemark.config import render_config
    from tracemark.errors import UserError

    cwd = os.path.realpath(os.getcwd())
    top = gitutil.toplevel(cwd)
    if top is None:
        raise UserError("not inside a git repository", "run `git init` first, or cd into your repository")
    if top != cwd:
        raise UserError(f"run `tracemark init` from the repository root ({top})", f"cd {top}")
    repo = gitutil.discover(cwd)
    if repo is None:
        raise UserError("cannot find the .git directory of this repository")
    if not args.project.strip():
        raise UserError("--project must not be empty")
    server = None
    if args.server:
        from tracemark.credentials import normalize_server

        server = normalize_server(args.server)
    note = _check_server(args.project, args.org, args.offline, server)

    claude = args.claude or not args.cursor
    sd = StateDir(repo.state_dir)
    manifest_raw = sd.read_json(installer.MANIFEST)
    manifest = manifest_raw if isinstance(manifest_raw, dict) else {}
    txn = installer.Transaction()
    actions: list[str] = []
    try:
        updates = {
            "projectName": args.project,
            "organization": args.org,
            "requireTrace": True if args.require_trace else None,
            "server": server,
        }
        path, current, new = render_config(repo.root, updates)
        if current is None:
            defaults = {"requireTrace": False, "uploadTranscript": True}
            given = {key: value for key, value in updates.items() if value is not None}
            merged = {**defaults, **given}
            ordered = {key: merged[key] for key in CONFIG_KEYS if key in merged}
            path, current, new = render_config(repo.root, ordered)
        if new != current:
            txn.write(path, new, 0o644)
            actions.append(f"{'wrote' if current is None else 'updated'} {os.path.basename(path)}")
            entry = manifest.setdefault(os.path.basename(path), {})
            entry.setdefault("created", current is None)
            entry["written_sha256"] = sha256_hex(new)
        actions += installer.plan_agent_configs(repo, txn, claude, args.cursor, manifest)
        actions += installer.plan_git_hooks(repo, txn)
        txn.commit()
    except installer.InstallError as exc:
        raise UserError(exc.message, exc.hint) from exc
    sd.ensure()
    sd.write_json(installer.MANIFEST, manifest)
    sd.write_json("hooks.json", {"dir": gitutil.hooks_dir(repo.root)})
    print(f"tracemark: {note}", file=sys.stderr)
    for action in actions or ["already set up; nothing changed"]:
        print(f"  {action}")
    print("Commit .tracemark.yml and the agent config so teammates are onboarded by their first agent session.")
    return 0
