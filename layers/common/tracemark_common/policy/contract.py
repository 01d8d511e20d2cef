"""Contracts: which policies apply to a project's sessions, with which arguments, and which gate.

Accepts Chainloop's `kind: Contract` (`apiVersion: chainloop.dev/v1`, or our `tracemark.dev/v1`)
and Chainloop's older `schemaVersion: v1` crafting schema. Policies attach under
`spec.policies.materials[]`, each with exactly one of `ref:` (`builtin:<name>` or
`policy:<name>`; the server fetches nothing, so URLs and files are refused) or `embedded:` (Rego,
or a Policy document), plus optional `with:`, `gate:`, `selector:`, `disabled:`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracemark_common.errors import Unprocessable
from tracemark_common.policy.documents import (
    MATERIAL_KIND,
    PolicySource,
    check_arguments,
    load_yaml,
    normalise_with,
    parse_policy_text,
    policy_from_document,
    require_mapping,
)

CONTRACT_API_VERSIONS = ("chainloop.dev/v1", "tracemark.dev/v1")
MAX_ATTACHMENTS = 50
_ATTACHMENT_KEYS = {"ref", "embedded", "with", "gate", "selector", "disabled", "requirements", "name"}


@dataclass(frozen=True)
class Attachment:
    """One policy attached to the session material."""

    ref: str  # "builtin:<name>", "policy:<name>" or "embedded"
    name: str  # shown in results
    with_args: Mapping[str, str] = field(default_factory=dict)
    gate: bool | None = None  # None: the org's gate_default decides
    source: PolicySource | None = None  # the parsed policy, for `embedded:` only

    @property
    def kind(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def target(self) -> str:
        return self.ref.split(":", 1)[1] if ":" in self.ref else self.name

    def gated(self, gate_default: bool) -> bool:
        return gate_default if self.gate is None else self.gate


@dataclass(frozen=True)
class Contract:
    name: str
    attachments: tuple[Attachment, ...]


def _parse_ref(ref: Any, where: str, org_policy_names: Collection[str]) -> tuple[str, str]:
    from tracemark_common.policy.builtins import builtin_names

    if not isinstance(ref, str) or not ref.strip():
        raise Unprocessable(f"{where}.ref must be 'builtin:<name>' or 'policy:<name>'")
    ref = ref.strip()
    scheme, sep, name = ref.partition(":")
    if sep and scheme == "builtin":
        if name not in builtin_names():
            raise Unprocessable(
                f"{where}.ref: there is no built-in policy {name!r} (built-ins: {', '.join(builtin_names())})"
            )
        return "builtin", name
    if sep and scheme == "policy":
        if name not in org_policy_names:
            known = ", ".join(sorted(org_policy_names)) or "none uploaded yet"
            raise Unprocessable(
                f"{where}.ref: the organisation has no policy {name!r} (upload it with PUT /v1/policies/{name}; "
                f"known: {known})"
            )
        return "policy", name
    hint = ""
    if "://" in ref or ref.startswith(("/", ".", "~")) or ref.endswith((".yaml", ".yml", ".rego")):
        hint = " Tracemark fetches nothing: upload the policy and use 'policy:<name>', or put it in 'embedded:'."
    elif not sep and ref in builtin_names():
        hint = f" Did you mean 'builtin:{ref}'?"
    elif not sep and ref in org_policy_names:
        hint = f" Did you mean 'policy:{ref}'?"
    raise Unprocessable(f"{where}.ref must be 'builtin:<name>' or 'policy:<name>', got {ref!r}.{hint}")


def _parse_embedded(embedded: Any, where: str, index: int) -> PolicySource:
    default_name = f"embedded-{index}"
    if isinstance(embedded, str):
        return parse_policy_text(embedded, where=f"{where}.embedded", default_name=default_name)
    if isinstance(embedded, Mapping):
        return policy_from_document(embedded, where=f"{where}.embedded")
    raise Unprocessable(f"{where}.embedded must be Rego text or a Policy document")


def _parse_attachment(item: Any, index: int, org_policy_names: Collection[str]) -> Attachment | None:
    where = f"spec.policies.materials[{index}]"
    entry = require_mapping(item, where)
    unknown = sorted(set(entry) - _ATTACHMENT_KEYS)
    if unknown:
        raise Unprocessable(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_ATTACHMENT_KEYS))})"
        )
    if ("ref" in entry) == ("embedded" in entry):
        raise Unprocessable(f"{where} needs exactly one of 'ref' or 'embedded'")
    gate = entry.get("gate")
    if gate is not None and not isinstance(gate, bool):
        raise Unprocessable(f"{where}.gate must be true or false")
    disabled = entry.get("disabled", False)
    if not isinstance(disabled, bool):
        raise Unprocessable(f"{where}.disabled must be true or false")
    with_args = normalise_with(entry.get("with"), f"{where}.with")
    if "embedded" in entry:
        source = _parse_embedded(entry["embedded"], where, index)
        check_arguments(source, with_args, where)
        attachment = Attachment(ref="embedded", name=source.name, with_args=with_args, gate=gate, source=source)
    else:
        kind, name = _parse_ref(entry["ref"], where, org_policy_names)
        if kind == "builtin":
            from tracemark_common.policy.builtins import get_builtin

            check_arguments(get_builtin(name), with_args, where)
        attachment = Attachment(ref=f"{kind}:{name}", name=name, with_args=with_args, gate=gate)
    return None if disabled else attachment


def _session_material_names(materials: Any) -> set[str] | None:
    """Names of the contract's session materials; None when the contract lists no materials."""
    if materials is None:
        return None
    if not isinstance(materials, list):
        raise Unprocessable("spec.materials must be a list")
    names: set[str] = set()
    for index, item in enumerate(materials):
        material = require_mapping(item, f"spec.materials[{index}]")
        if material.get("type") == MATERIAL_KIND and isinstance(material.get("name"), str):
            names.add(material["name"])
    return names


def _applies(item: Any, material_names: set[str] | None) -> bool:
    """A `selector: {name}` that names another material leaves the attachment out."""
    if not isinstance(item, Mapping) or material_names is None or not material_names:
        return True
    selector = item.get("selector")
    if selector is None:
        return True
    selector = require_mapping(selector, "selector")
    name = selector.get("name")
    if not isinstance(name, str):
        return True
    if selector.get("match_mode", "EXACT") == "PREFIX":
        return any(material.startswith(name) for material in material_names)
    return name in material_names


def contract_from_document(document: Any, org_policy_names: Collection[str]) -> Contract:
    doc = require_mapping(document, "contract")
    if "schemaVersion" in doc:  # Chainloop's older crafting schema: everything at the top level
        if doc.get("schemaVersion") != "v1":
            raise Unprocessable(f"contract.schemaVersion must be 'v1', got {doc.get('schemaVersion')!r}")
        name, spec = "contract", doc
    else:
        api_version = doc.get("apiVersion")
        if api_version not in CONTRACT_API_VERSIONS:
            raise Unprocessable(
                f"contract.apiVersion must be one of {', '.join(CONTRACT_API_VERSIONS)}, got {api_version!r}"
            )
        if doc.get("kind") != "Contract":
            raise Unprocessable(f"contract.kind must be 'Contract', got {doc.get('kind')!r}")
        metadata = require_mapping(doc.get("metadata") or {}, "contract.metadata")
        raw_name = metadata.get("name")
        name = raw_name if isinstance(raw_name, str) else "contract"
        spec = require_mapping(doc.get("spec") or {}, "contract.spec")
    if spec.get("policy_groups"):
        raise Unprocessable("spec.policy_groups are not supported: attach the policies one by one")
    policies = require_mapping(spec.get("policies") or {}, "spec.policies")
    if policies.get("attestation"):
        raise Unprocessable(
            "spec.policies.attestation is not supported: Tracemark evaluates the session evidence; "
            "attach policies under spec.policies.materials"
        )
    items = policies.get("materials") or []
    if not isinstance(items, list):
        raise Unprocessable("spec.policies.materials must be a list")
    if len(items) > MAX_ATTACHMENTS:
        raise Unprocessable(f"spec.policies.materials has {len(items)} entries; the limit is {MAX_ATTACHMENTS}")
    material_names = _session_material_names(spec.get("materials"))
    attachments: list[Attachment] = []
    for index, item in enumerate(items):
        attachment = _parse_attachment(item, index, org_policy_names)
        if attachment is not None and _applies(item, material_names):
            attachments.append(attachment)
    return Contract(name=name, attachments=tuple(attachments))


def parse_contract_structure(yaml_text: str, org_policy_names: Collection[str]) -> Contract:
    """Parse and validate a contract without compiling its embedded Rego."""
    if not isinstance(yaml_text, str) or not yaml_text.strip():
        raise Unprocessable("the contract is empty")
    return contract_from_document(load_yaml(yaml_text, "the contract"), org_policy_names)
