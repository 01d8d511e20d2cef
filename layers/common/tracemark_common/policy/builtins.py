"""The built-in policies shipped as `tracemark_common/policies/<name>.rego`, and the built-in contract.

Each built-in declares its inputs in its METADATA (`custom.inputs`). Built-ins run in-process on
warm interpreters, compiled once per process (`compiled(name)`), except when an attachment sets
one of the inputs listed under `custom.sandbox_inputs` (caller-supplied regular expressions),
which sends that evaluation to the sandbox like an org policy.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources

from tracemark_common.errors import Unprocessable
from tracemark_common.policy.documents import PolicySource, policy_from_rego, rego_metadata, require_mapping
from tracemark_common.policy.engine import CompiledPolicy

BUILTIN_CONTRACT_NAME = "ai-coding-session"
_CONTRACT_FILE = "ai-coding-session.contract.yaml"
_lock = threading.Lock()
_compiled: dict[str, CompiledPolicy] = {}


def _policies_dir() -> resources.abc.Traversable:
    return resources.files("tracemark_common").joinpath("policies")


@cache
def builtin_sources() -> dict[str, PolicySource]:
    """Every built-in policy by name."""
    sources: dict[str, PolicySource] = {}
    for entry in sorted(_policies_dir().iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".rego"):
            continue
        name = entry.name.removesuffix(".rego")
        source = policy_from_rego(entry.read_text(encoding="utf-8"), where=f"builtin:{name}", default_name=name)
        if source.name != name:
            raise RuntimeError(f"built-in {entry.name} declares the name {source.name!r}")
        sources[name] = source
    return sources


def builtin_names() -> list[str]:
    return sorted(builtin_sources())


def get_builtin(name: str) -> PolicySource:
    try:
        return builtin_sources()[name]
    except KeyError:
        known = ", ".join(builtin_names())
        raise Unprocessable(f"there is no built-in policy {name!r} (built-ins: {known})") from None


@cache
def sandbox_inputs(name: str) -> frozenset[str]:
    """Inputs of a built-in that, when set by a contract, move its evaluation to the sandbox."""
    custom = require_mapping(rego_metadata(get_builtin(name).rego).get("custom") or {}, "METADATA custom")
    raw = custom.get("sandbox_inputs") or []
    return frozenset(str(item) for item in raw) if isinstance(raw, list) else frozenset()


def compiled(name: str) -> CompiledPolicy:
    """The warm interpreter of a built-in (created on first use, then reused)."""
    with _lock:
        policy = _compiled.get(name)
        if policy is None:
            source = get_builtin(name)
            policy = CompiledPolicy(source.rego, source.package, module_name=f"{name}.rego")
            _compiled[name] = policy
        return policy


@cache
def builtin_contract_text() -> str:
    return _policies_dir().joinpath(_CONTRACT_FILE).read_text(encoding="utf-8")
