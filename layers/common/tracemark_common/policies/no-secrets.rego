# METADATA
# title: No secrets in the session
# description: >-
#   No secret was found (and redacted) in the session's transcript, prompts, tool calls or
#   commit messages. Reads the redaction counts per rule that the Tracemark CLI records in
#   input.tracemark.redaction.rules ({rule: count}); also accepts
#   input.data.conversation.tracemark_redactions as {rule: count} or {rules: {rule: count}}.
#   Skipped when the evidence carries no redaction counts (e.g. Chainloop's own evidence).
# custom:
#   name: no-secrets
#   category: ai
#   reads: [input.tracemark.redaction.rules, input.data.conversation.tracemark_redactions]
#   inputs:
#     - name: ignore_rules
#       description: Comma-separated redaction rule ids that do not count.
#       default: ""
package main

import rego.v1

_counts := input.tracemark.redaction.rules if is_object(input.tracemark.redaction.rules)

_counts := _legacy.rules if {
	not is_object(input.tracemark.redaction.rules)
	is_object(_legacy.rules)
}

_counts := _legacy if {
	not is_object(input.tracemark.redaction.rules)
	not is_object(_legacy.rules)
}

_legacy := input.data.conversation.tracemark_redactions if is_object(input.data.conversation.tracemark_redactions)

valid_input if is_object(_counts)

_ignored := {s | some s in input.args.ignore_rules} if is_array(input.args.ignore_rules)

_ignored := {s | some s in split(input.args.ignore_rules, ",")} if is_string(input.args.ignore_rules)

_ignored := set() if not input.args.ignore_rules

violations contains msg if {
	some rule, n in _counts
	is_number(n)
	n > 0
	not rule in _ignored
	msg := sprintf("%v secret(s) matching rule '%s' were found in the session (redacted before upload)", [n, rule])
}
