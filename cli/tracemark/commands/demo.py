"""`tracemark demo`: the five-minute tour against a running `tracemark serve`.

Kept tiny: the tour itself (`tracemark.tour`) is imported only when the command runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

NAME = "demo"
HELP = "the five-minute tour: replay a real Claude Code session into a sample repo, push, open a PR (needs serve)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=".tracemark-data",
        help="the data dir of the running `tracemark serve`; its serve.json says where the server is "
        "(default ./.tracemark-data, as `make serve`)",
    )
    parser.add_argument("--server", help="the server's URL (overrides serve.json)")
    parser.add_argument("--token", help="the server ADMIN token (overrides serve.json; default $TRACEMARK_ADMIN_TOKEN)")
    parser.add_argument(
        "--webhook-secret",
        help="the GitHub webhook secret serve uses (overrides serve.json; default $TRACEMARK_GITHUB_WEBHOOK_SECRET)",
    )
    parser.add_argument("--github-url", help="serve's fake GitHub (overrides serve.json; default $GITHUB_API_URL)")
    parser.add_argument(
        "--dir",
        help="where to create the sample repository (default: a new temporary directory); "
        "a directory an earlier demo made is emptied and reused",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the PR workflow (default 120)"
    )


def run(args: argparse.Namespace) -> int:
    from tracemark.tour import run_tour

    return run_tour(args)
