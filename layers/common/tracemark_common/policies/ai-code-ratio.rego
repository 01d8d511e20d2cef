# METADATA
# title: AI code ratio
# description: The share of added lines written by AI stays at or under a maximum percentage.
# custom:
#   name: ai-code-ratio
#   category: ai
#   reads: [input.data.code_changes.ai_lines_added, input.data.code_changes.lines_added]
#   inputs:
#     - name: max_ratio
#       description: Largest allowed percentage of AI-added lines (0-100).
#       default: "80"
package main

import rego.v1

valid_input if {
	is_number(input.data.code_changes.ai_lines_added)
	input.data.code_changes.lines_added > 0
}

_ratio := (input.data.code_changes.ai_lines_added * 100) / input.data.code_changes.lines_added

_max := to_number(input.args.max_ratio)

violations contains msg if {
	_ratio > _max
	msg := sprintf("AI-generated code ratio %v%% exceeds the maximum of %v%%", [round(_ratio * 10) / 10, _max])
}
