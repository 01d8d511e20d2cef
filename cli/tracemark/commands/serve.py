"""`tracemark serve`: the whole backend locally, on moto (no AWS account, no Docker)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tracemark.errors import UserError

NAME = "serve"
HELP = "run the whole backend locally (moto, in-process Lambdas, HTTP API emulator, dashboard)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787; 0 picks a free one)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".tracemark-data"),
        help="where items and objects are kept across restarts (default ./.tracemark-data)",
    )
    parser.add_argument("--root", type=Path, default=None, help="checkout holding template.yaml (default: found)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a TCP port (0-65535)")
    try:
        from tracemark_local.serve import ServeError, ServeOptions
        from tracemark_local.serve import run as serve
    except ImportError as exc:
        raise UserError(
            f"`tracemark serve` needs the server extra ({exc.name} is missing)",
            hint="pip install 'tracemark[server]' from a Tracemark checkout (or run `make serve`)",
        ) from exc
    from tracemark_local.template import TemplateError

    try:
        return serve(
            ServeOptions(host=args.host, port=args.port, data_dir=args.data_dir, root=args.root, quiet=args.quiet)
        )
    except (ServeError, TemplateError) as exc:
        raise UserError(str(exc)) from exc
