"""`tracemark push`: deliver the attestations waiting in the spool."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "push"
HELP = "send spooled attestations to the server (those a git push could not deliver)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path(), help="any path inside the repository (default: .)")


def run(args: argparse.Namespace) -> int:
    from tracemark.push import deliver_spool

    return deliver_spool(args.repo)
