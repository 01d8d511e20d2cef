# METADATA
# title: Approved models
# description: Every model used in the session (main thread and subagents) is on the approved list.
# custom:
#   name: approved-models
#   category: ai
#   reads: [input.data.model.models_used, input.data.model.primary]
#   inputs:
#     - name: allowed_models
#       description: >-
#         Comma-separated model ids. A trailing '*' matches a prefix (claude-*).
#       required: true
package main

import rego.v1

_models contains m if some m in input.data.model.models_used

_models contains input.data.model.primary if is_string(input.data.model.primary)

valid_input if count(_models) > 0

_allowed := [s | some s in input.args.allowed_models] if is_array(input.args.allowed_models)

_allowed := [s | some s in split(input.args.allowed_models, ",")] if is_string(input.args.allowed_models)

_approved(model) if {
	some pattern in _allowed
	pattern == model
}

_approved(model) if {
	some pattern in _allowed
	endswith(pattern, "*")
	startswith(model, trim_suffix(pattern, "*"))
}

violations contains msg if {
	some model in _models
	is_string(model)
	not _approved(model)
	msg := concat("", ["Model '", model, "' is not approved (allowed: ", concat(", ", _allowed), ")"])
}
