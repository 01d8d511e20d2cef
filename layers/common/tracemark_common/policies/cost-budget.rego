# METADATA
# title: Cost budget
# description: >-
#   The session's estimated cost in USD stays within a budget: input.data.usage.estimated_cost_usd,
#   or else the sum of input.data.usage.by_model[*].estimated_cost_usd.
# custom:
#   name: cost-budget
#   category: ai
#   reads: [input.data.usage.estimated_cost_usd, "input.data.usage.by_model[*].estimated_cost_usd"]
#   inputs:
#     - name: max_cost_usd
#       description: Largest allowed estimated cost in USD.
#       default: "25"
package main

import rego.v1

_by_model := [c | some usage in input.data.usage.by_model; c := usage.estimated_cost_usd; is_number(c)]

_cost := input.data.usage.estimated_cost_usd if is_number(input.data.usage.estimated_cost_usd)

_cost := sum(_by_model) if {
	not is_number(input.data.usage.estimated_cost_usd)
	count(_by_model) > 0
}

valid_input if is_number(_cost)

_budget := to_number(input.args.max_cost_usd)

violations contains msg if {
	_cost > _budget
	msg := sprintf("Session cost an estimated $%v, over the budget of $%v", [round(_cost * 100) / 100, _budget])
}
