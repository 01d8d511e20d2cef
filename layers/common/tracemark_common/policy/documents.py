"""Policy documents: Chainloop `kind: Policy` YAML or raw Rego, their declared inputs, and `with:` arguments.

Pure parsing, no regopy: a policy's text becomes a `PolicySource` (name, Rego, package, declared
inputs). Raw Rego declares its inputs in its package METADATA annotation under
`custom.inputs` (the built-ins do); Policy YAML declares them under `spec.inputs`, as in Chainloop.
Every problem raises `tracemark_common.errors.Unprocessable` with a message naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from tracemark_common.errors import Unprocessable

MATERIAL_KIND = "CHAINLOOP_AI_CODING_SESSION"
POLICY_API_VERSIONS = ("chainloop.dev/v1", "workflowcontract.chainloop.dev/v1", "tracemark.dev/v1")
MAX_DOCUMENT_BYTES = 512 * 1024  # a contract or a policy; Rego sources are small

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1123 label, as Chainloop names
_INPUT_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
_PACKAGE_RE = re.compile(
    r"^[ \t]*package[ \t]+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*(?:#.*)?$", re.M
)

ArgValue = str | list[str]


@dataclass(frozen=True)
class PolicyInput:
    """One declared input (`spec.inputs[]` in Chainloop's Policy)."""

    name: str
    description: str = ""
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class PolicySource:
    """A compilable policy: its Rego module and what it declares."""

    name: str
    rego: str
    package: str
    description: str = ""
    inputs: tuple[PolicyInput, ...] = field(default=())
    declares_inputs: bool = False  # False: no declaration at all, `with:` passes through unchecked


# --------------------------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases (no billion-laughs expansion) and without duplicate keys."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise Unprocessable(
                f"YAML aliases (*{getattr(event, 'anchor', '')}) are not allowed (line {event.start_mark.line + 1})",
                code="invalid_yaml",
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise Unprocessable(
                    f"unhashable YAML mapping key at line {key_node.start_mark.line + 1}", code="invalid_yaml"
                ) from None
            if duplicate:
                raise Unprocessable(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1}", code="invalid_yaml"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, what: str) -> Any:
    """Parse one YAML document strictly; `what` names it in error messages."""
    if not isinstance(text, str):
        raise Unprocessable(f"{what} must be text", code="invalid_yaml")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise Unprocessable(f"{what} is larger than {MAX_DOCUMENT_BYTES // 1024} KiB", code="too_large")
    if "\x00" in text:
        raise Unprocessable(f"{what} contains a NUL character", code="invalid_yaml")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except Unprocessable:
        raise
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise Unprocessable(f"{what} is not valid YAML{line}: {exc.problem}", code="invalid_yaml") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise Unprocessable(f"{what} is not valid YAML: {exc}", code="invalid_yaml") from None


# ------------------------------------------------------------------------------------------ helpers


def require_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Unprocessable(f"{where} must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise Unprocessable(f"{where}: keys must be strings, got {key!r}")
    return value


def optional_str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Unprocessable(f"{where} must be a string")
    return value


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise Unprocessable(
            f"{where} must be a lowercase name of letters, digits and '-' (at most 63 characters), got {name!r}"
        )
    return name


def rego_package(rego: str, where: str) -> str:
    match = _PACKAGE_RE.search(rego)
    if match is None:
        raise Unprocessable(f"{where}: Rego has no `package` declaration")
    return match.group(1)


def looks_like_rego(text: str) -> bool:
    return _PACKAGE_RE.search(text) is not None


# ---------------------------------------------------------------------------------- declared inputs


def _parse_inputs(raw: Any, where: str) -> tuple[PolicyInput, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise Unprocessable(f"{where} must be a list")
    inputs: list[PolicyInput] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        spot = f"{where}[{index}]"
        entry = require_mapping(item, spot)
        name = entry.get("name")
        if not isinstance(name, str) or not _INPUT_NAME_RE.match(name):
            raise Unprocessable(f"{spot}.name must match {_INPUT_NAME_RE.pattern}, got {name!r}")
        if name in names:
            raise Unprocessable(f"{spot}: input {name!r} is declared twice")
        names.add(name)
        required = entry.get("required", False)
        if not isinstance(required, bool):
            raise Unprocessable(f"{spot}.required must be true or false")
        default = entry.get("default")
        if default is not None:
            default = scalar_text(default, f"{spot}.default")
        if required and default is not None:
            raise Unprocessable(f"{spot}: input {name!r} cannot be both required and have a default")
        inputs.append(
            PolicyInput(
                name=name,
                description=optional_str(entry.get("description"), f"{spot}.description"),
                required=required,
                default=default,
            )
        )
    return tuple(inputs)


def rego_metadata(rego: str) -> Mapping[str, Any]:
    """The first `# METADATA` annotation block of a Rego module, parsed as YAML (empty if none)."""
    lines = rego.splitlines()
    for start, line in enumerate(lines):
        if line.strip() == "# METADATA":
            body: list[str] = []
            for follower in lines[start + 1 :]:
                stripped = follower.lstrip()
                if not stripped.startswith("#"):
                    break
                text = stripped[1:]
                body.append(text[1:] if text.startswith(" ") else text)
            try:
                meta = yaml.load("\n".join(body), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
            except (yaml.YAMLError, Unprocessable) as exc:
                raise Unprocessable(f"the Rego METADATA annotation is not valid YAML: {exc}") from None
            return require_mapping(meta or {}, "METADATA")
    return {}


# ------------------------------------------------------------------------------------------ parsing


def parse_policy_text(text: str, *, where: str = "policy", default_name: str = "policy") -> PolicySource:
    """A Policy YAML document or raw Rego → `PolicySource`. Raises `Unprocessable`."""
    if not isinstance(text, str) or not text.strip():
        raise Unprocessable(f"{where} is empty")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise Unprocessable(f"{where} is larger than {MAX_DOCUMENT_BYTES // 1024} KiB", code="too_large")
    if looks_like_rego(text) and not text.lstrip().startswith(("apiVersion", "kind", "---")):
        return policy_from_rego(text, where=where, default_name=default_name)
    document = load_yaml(text, where)
    if not isinstance(document, Mapping):
        raise Unprocessable(f"{where} is neither Rego (no `package` declaration) nor a Policy YAML document")
    return policy_from_document(document, where=where)


def policy_from_rego(rego: str, *, where: str, default_name: str) -> PolicySource:
    if "\x00" in rego:
        raise Unprocessable(f"{where} contains a NUL character")
    package = rego_package(rego, where)
    meta = rego_metadata(rego)
    custom = meta.get("custom") or {}
    custom = require_mapping(custom, f"{where}: METADATA custom")
    raw_inputs = custom.get("inputs")
    name = custom.get("name", default_name)
    return PolicySource(
        name=check_name(name, f"{where}: METADATA custom.name") if "name" in custom else default_name,
        rego=rego,
        package=package,
        description=optional_str(meta.get("description") or meta.get("title"), f"{where}: METADATA description"),
        inputs=_parse_inputs(raw_inputs, f"{where}: METADATA custom.inputs"),
        declares_inputs=raw_inputs is not None,
    )


def policy_from_document(document: Any, *, where: str) -> PolicySource:
    """A parsed `kind: Policy` mapping → `PolicySource` (the script for our material kind)."""
    doc = require_mapping(document, where)
    api_version = doc.get("apiVersion")
    if api_version not in POLICY_API_VERSIONS:
        raise Unprocessable(f"{where}.apiVersion must be one of {', '.join(POLICY_API_VERSIONS)}, got {api_version!r}")
    if doc.get("kind") != "Policy":
        raise Unprocessable(f"{where}.kind must be 'Policy', got {doc.get('kind')!r}")
    metadata = require_mapping(doc.get("metadata") or {}, f"{where}.metadata")
    name = check_name(metadata.get("name"), f"{where}.metadata.name")
    spec = require_mapping(doc.get("spec") or {}, f"{where}.spec")
    scripts = spec.get("policies")
    if not isinstance(scripts, list) or not scripts:
        raise Unprocessable(f"{where}.spec.policies must be a non-empty list of {{kind, embedded}} entries")
    chosen: str | None = None
    kinds: list[str] = []
    for index, item in enumerate(scripts):
        spot = f"{where}.spec.policies[{index}]"
        script = require_mapping(item, spot)
        kind = script.get("kind", MATERIAL_KIND)
        kinds.append(str(kind))
        for remote in ("ref", "path"):
            if remote in script:
                raise Unprocessable(
                    f"{spot}.{remote} is not supported: Tracemark fetches nothing; put the Rego in `embedded:`"
                )
        if kind != MATERIAL_KIND:
            continue
        embedded = script.get("embedded")
        if not isinstance(embedded, str) or not embedded.strip():
            raise Unprocessable(f"{spot}.embedded must be the Rego source (a string)")
        if chosen is not None:
            raise Unprocessable(f"{where}.spec.policies has more than one script for kind {MATERIAL_KIND}")
        chosen = embedded
    if chosen is None:
        raise Unprocessable(
            f"{where} has no script for material kind {MATERIAL_KIND} (kinds found: {', '.join(kinds) or 'none'})"
        )
    raw_inputs = spec.get("inputs")
    return PolicySource(
        name=name,
        rego=chosen,
        package=rego_package(chosen, f"{where}.spec.policies"),
        description=optional_str(metadata.get("description"), f"{where}.metadata.description"),
        inputs=_parse_inputs(raw_inputs, f"{where}.spec.inputs"),
        declares_inputs=raw_inputs is not None,
    )


# ----------------------------------------------------------------------------------------- arguments


def scalar_text(value: Any, where: str) -> str:
    """`with:` values are strings in Chainloop; YAML numbers and booleans are accepted and stringified."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise Unprocessable(f"{where} must be a string, a number or a list of them")


def normalise_with(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    mapping = require_mapping(raw, where)
    return {key: scalar_text(value, f"{where}.{key}") for key, value in mapping.items()}


def _arg_value(text: str) -> ArgValue:
    """Chainloop's multivalued arguments: a value with commas or newlines becomes a list."""
    if "," in text or "\n" in text:
        return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]
    return text.strip()


def check_arguments(policy: PolicySource, with_args: Mapping[str, str], where: str) -> None:
    """Reject unknown and missing required arguments (at contract upload, with a precise message)."""
    if not policy.declares_inputs:
        return
    declared = {spec.name for spec in policy.inputs}
    unknown = sorted(set(with_args) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise Unprocessable(
            f"{where}: policy {policy.name!r} has no input {', '.join(repr(u) for u in unknown)} (declared: {known})"
        )
    for spec in policy.inputs:
        if spec.required and not with_args.get(spec.name, "").strip():
            raise Unprocessable(f"{where}: policy {policy.name!r} requires the input {spec.name!r}")


def compute_arguments(policy: PolicySource, with_args: Mapping[str, str]) -> dict[str, ArgValue]:
    """`input.args`: declared inputs with their defaults; undeclared policies get `with:` as given."""
    if not policy.declares_inputs:
        return {key: _arg_value(value) for key, value in with_args.items()}
    args: dict[str, ArgValue] = {}
    for spec in policy.inputs:
        value = with_args.get(spec.name)
        if value is None or not value.strip():
            value = spec.default
        if value is None:
            if spec.required:
                raise Unprocessable(f"policy {policy.name!r} requires the input {spec.name!r}")
            continue
        args[spec.name] = _arg_value(value)
    return args
