# METADATA
# title: Token budget
# description: >-
#   The session's total tokens (input + output, cache excluded, as in Chainloop) stay within a budget.
# custom:
#   name: token-budget
#   category: ai
#   reads: [input.data.usage.total_tokens]
#   inputs:
#     - name: max_tokens
#       description: Largest allowed input.data.usage.total_tokens.
#       default: "500000"
package main

import rego.v1

valid_input if is_number(input.data.usage.total_tokens)

_budget := to_number(input.args.max_tokens)

violations contains msg if {
	input.data.usage.total_tokens > _budget
	msg := sprintf("Session used %v tokens, over the budget of %v", [input.data.usage.total_tokens, _budget])
}
