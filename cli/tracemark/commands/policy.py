"""`tracemark policy eval|check|builtins`: develop and try policies locally (SPEC §3.3).

`eval` works like `chainloop policy develop eval`: exit 0 when every policy passes (or skips),
1 when one reports violations, 2 on any error (bad file, Rego that fails, timeout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tracemark.errors import UserError

NAME = "policy"
HELP = "evaluate Rego policies and contracts locally against session evidence"

MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024
MAX_POLICY_FILE_BYTES = 1024 * 1024


class PolicyError(UserError):
    """A problem with the files or the engine: exit code 2, like `chainloop policy develop eval`."""

    exit_code = 2


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION")
    ev = sub.add_parser("eval", help="evaluate a policy or a contract against an evidence file")
    ev.add_argument(
        "--policy",
        required=True,
        metavar="FILE",
        help="a Rego file, a Policy YAML, a Contract YAML, or builtin:<name>",
    )
    ev.add_argument(
        "--input",
        required=True,
        metavar="EVIDENCE",
        help="evidence envelope JSON (a DSSE envelope or in-toto statement is unwrapped)",
    )
    ev.add_argument(
        "--with", dest="with_args", action="append", default=[], metavar="KEY=VALUE", help="policy argument"
    )
    ev.add_argument(
        "--org-policy",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="resolve a contract's policy:<NAME> to FILE (repeatable)",
    )
    ev.add_argument("--gate-default", action="store_true", help="treat attachments without gate: as gated")
    ev.add_argument("--timeout", type=float, default=2.0, help="seconds per non-built-in policy (default 2)")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ck = sub.add_parser("check", help="check that a policy or contract file is valid and compiles")
    ck.add_argument("file", metavar="FILE")
    ck.add_argument("--org-policy", action="append", default=[], metavar="NAME=FILE")
    sub.add_parser("builtins", help="list the built-in policies and their inputs")


def _read_text(path: str, what: str, limit: int) -> str:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > limit:
            raise PolicyError(f"{what} {path} is larger than {limit // (1024 * 1024)} MiB")
        data = file.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise PolicyError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise PolicyError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{what} {path} is not UTF-8 text") from None


def _unwrap(document: Any, path: str) -> Any:
    """Accept the evidence envelope itself, an in-toto statement, or a DSSE envelope."""
    import base64
    import binascii

    if isinstance(document, dict) and "payloadType" in document and "payload" in document:
        try:
            document = json.loads(base64.b64decode(str(document["payload"]), validate=True))
        except (binascii.Error, ValueError):
            raise PolicyError(f"{path}: the DSSE payload is not base64-encoded JSON") from None
    if isinstance(document, dict) and "predicate" in document and "_type" in document:
        predicate = document["predicate"]
        if not isinstance(predicate, dict) or not isinstance(predicate.get("evidence"), dict):
            raise PolicyError(f"{path}: the statement's predicate has no `evidence` object")
        document = predicate["evidence"]
    if not isinstance(document, dict):
        raise PolicyError(f"{path}: the evidence must be a JSON object")
    return document


def _load_input(path: str) -> dict[str, Any]:
    text = _read_text(path, "input", MAX_INPUT_FILE_BYTES)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"input {path} is not valid JSON: {exc}") from None
    result: dict[str, Any] = _unwrap(document, path)
    return result


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PolicyError(f"{flag} expects KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs


def _org_policies(items: list[str]) -> dict[str, str]:
    return {
        name: _read_text(path, "policy", MAX_POLICY_FILE_BYTES) for name, path in _pairs(items, "--org-policy").items()
    }


def _is_contract(text: str) -> bool:
    import re

    return (
        re.search(r"^kind:\s*['\"]?Contract['\"]?\s*$", text, re.M) is not None
        or re.search(r"^schemaVersion:", text, re.M) is not None
    )


def _require_engine() -> None:
    import importlib.util

    if importlib.util.find_spec("regopy") is None:
        raise PolicyError("policy evaluation needs the Rego engine (regopy)", "pip install 'tracemark[policy]'")


def _build_contract(args: argparse.Namespace, org_policies: dict[str, str]) -> Any:
    from tracemark_common.errors import TracemarkError
    from tracemark_common.policy import Attachment, Contract, builtin_names, parse_policy_text
    from tracemark_common.policy.contract import parse_contract_structure
    from tracemark_common.policy.documents import check_arguments

    with_args = _pairs(args.with_args, "--with")
    try:
        if args.policy.startswith("builtin:"):
            name = args.policy.removeprefix("builtin:")
            if name not in builtin_names():
                raise PolicyError(f"there is no built-in policy {name!r}", f"built-ins: {', '.join(builtin_names())}")
            from tracemark_common.policy.builtins import get_builtin

            check_arguments(get_builtin(name), with_args, "--with")
            return Contract(name=name, attachments=(Attachment(ref=args.policy, name=name, with_args=with_args),))
        text = _read_text(args.policy, "policy", MAX_POLICY_FILE_BYTES)
        if _is_contract(text):
            if with_args:
                raise PolicyError("--with applies to a single policy; a contract sets arguments with `with:`")
            return parse_contract_structure(text, org_policies.keys())
        source = parse_policy_text(text, where=args.policy, default_name=Path(args.policy).stem.lower() or "policy")
        check_arguments(source, with_args, "--with")
        attachment = Attachment(ref="embedded", name=source.name, with_args=with_args, source=source)
        return Contract(name=source.name, attachments=(attachment,))
    except TracemarkError as exc:
        raise PolicyError(exc.message) from None


_LABELS = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP", "neutral": "ERROR"}


def _print_report(report: Any) -> None:
    for result in report.results:
        line = f"{_LABELS.get(result['status'], result['status'].upper()):<5} {result['policy']}"
        if result["status"] in {"skipped", "neutral"}:
            line += f" ({result.get('reason')}{': ' + result['detail'] if result.get('detail') else ''})"
        if result["gate"]:
            line += " [gate]"
        print(line)
        for violation in result["violations"]:
            print(f"      - {violation}")
    if not report.results:
        print("no policies apply")


def _eval(args: argparse.Namespace) -> int:
    _require_engine()
    from tracemark_common.policy import evaluate_contract

    org_policies = _org_policies(args.org_policy)
    contract = _build_contract(args, org_policies)
    envelope = _load_input(args.input)
    if not 0 < args.timeout <= 600:
        raise PolicyError("--timeout must be between 0 and 600 seconds")
    report = evaluate_contract(contract, org_policies, args.gate_default, envelope, timeout=args.timeout)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_report(report)
    if report.errored:
        return 2
    return 1 if report.violated else 0


def _check(args: argparse.Namespace) -> int:
    _require_engine()
    from tracemark_common.errors import TracemarkError
    from tracemark_common.policy import check_policy, parse_contract

    text = _read_text(args.file, "file", MAX_POLICY_FILE_BYTES)
    try:
        if _is_contract(text):
            org_policies = _org_policies(args.org_policy)
            for policy_text in org_policies.values():
                check_policy(policy_text)
            contract = parse_contract(text, org_policies.keys())
            print(f"contract {contract.name!r} is valid ({len(contract.attachments)} policies attached)")
        else:
            check_policy(text)
            print(f"{args.file}: the policy is valid")
    except TracemarkError as exc:
        raise PolicyError(exc.message) from None
    return 0


def _builtins() -> int:
    from tracemark_common.policy import builtin_names
    from tracemark_common.policy.builtins import get_builtin

    for name in builtin_names():
        source = get_builtin(name)
        print(f"builtin:{name}")
        if source.description:
            print(f"    {' '.join(source.description.split())}")
        for spec in source.inputs:
            flags = (
                "required" if spec.required else f"default {spec.default!r}" if spec.default is not None else "optional"
            )
            print(f"    --with {spec.name}=...  ({flags}) {spec.description}".rstrip())
    return 0


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "policy_command", None)
    if command == "eval":
        return _eval(args)
    if command == "check":
        return _check(args)
    if command == "builtins":
        return _builtins()
    raise PolicyError("choose an action: tracemark policy eval|check|builtins", "tracemark policy --help")
