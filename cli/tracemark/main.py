"""The `tracemark` command line.

Each module in `tracemark.commands` is one sub-command and exposes `NAME`, `HELP`,
`register(parser)` and `run(args) -> int`. Command modules keep heavy imports inside `run`, so
building the parser stays cheap. `tracemark hook ...` runs on every agent tool call and takes a
fast path that imports only the hook module (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from tracemark.errors import UserError

if TYPE_CHECKING:  # argparse and pkgutil load only when a parser is built, never on the hook path
    import argparse
    from collections.abc import Sequence
    from types import ModuleType


def _command_modules() -> list[ModuleType]:
    import pkgutil

    import tracemark.commands as package

    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_"))
    return [importlib.import_module(f"tracemark.commands.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from tracemark import __version__

    parser = argparse.ArgumentParser(prog="tracemark", description="Record, attest and review AI coding sessions.")
    parser.add_argument("--version", action="version", version=f"tracemark {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.register(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["hook"]:
            # Hot path: agent hooks run on every tool call. Import nothing else.
            hook = importlib.import_module("tracemark.commands.hook")
            return int(hook.main(args_list[1:]))
        parser = build_parser()
        args = parser.parse_args(args_list)
        run = getattr(args, "_run", None)
        if run is None:
            parser.print_help()
            return 2
        return int(run(args))
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tracemark: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
