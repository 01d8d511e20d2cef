# METADATA
# title: Agents allowed
# description: The session's coding agent is on the allowed list.
# custom:
#   name: agents-allowed
#   category: ai
#   reads: [input.data.agent.name]
#   inputs:
#     - name: allowed_agents
#       description: Comma-separated agent names (claude-code, cursor, opencode, pi, ...).
#       required: true
package main

import rego.v1

valid_input if is_string(input.data.agent.name)

_allowed := [s | some s in input.args.allowed_agents] if is_array(input.args.allowed_agents)

_allowed := [s | some s in split(input.args.allowed_agents, ",")] if is_string(input.args.allowed_agents)

violations contains msg if {
	not input.data.agent.name in _allowed
	msg := concat("", ["Agent '", input.data.agent.name, "' is not allowed (allowed: ", concat(", ", _allowed), ")"])
}
