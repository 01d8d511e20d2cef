"""Policies: contracts, Policy documents, the Rego engine, built-ins and evaluation (SPEC §3.3).

Pure domain: no AWS, no HTTP. regopy is imported lazily, so this package imports with the CLI's
dependencies alone; evaluating without it yields `neutral` results (`engine_unavailable`) and
`check_policy` / `parse_contract` raise `Unavailable` with the install hint.
"""

from tracemark_common.policy.builtins import BUILTIN_CONTRACT_NAME, builtin_names
from tracemark_common.policy.contract import Attachment, Contract
from tracemark_common.policy.documents import MATERIAL_KIND, PolicySource, parse_policy_text
from tracemark_common.policy.evaluate import (
    MAX_INPUT_BYTES,
    PolicyReport,
    builtin_contract,
    check_policy,
    evaluate_contract,
    evaluate_session,
    parse_contract,
    rego_input,
)

__all__ = [
    "BUILTIN_CONTRACT_NAME",
    "MATERIAL_KIND",
    "MAX_INPUT_BYTES",
    "Attachment",
    "Contract",
    "PolicyReport",
    "PolicySource",
    "builtin_contract",
    "builtin_names",
    "check_policy",
    "evaluate_contract",
    "evaluate_session",
    "parse_contract",
    "parse_policy_text",
    "rego_input",
]
