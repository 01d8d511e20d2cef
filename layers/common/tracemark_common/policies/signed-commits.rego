# METADATA
# title: Signed commits
# description: >-
#   Every commit of the session carries a signature git accepts. Reads the `%G?` code git
#   reports for each commit: G good, U good with unknown validity, X good but expired,
#   Y made by an expired key, R made by a revoked key, E cannot be checked (missing key),
#   B bad, N no signature.
# custom:
#   name: signed-commits
#   category: ai
#   reads: ["input.data.git_context.tracemark_commits[].signature", "input.data.git_context.tracemark_commits[].sha"]
#   inputs:
#     - name: accepted_signatures
#       description: Comma-separated `%G?` codes that pass.
#       default: "G,U"
package main

import rego.v1

_commits := input.data.git_context.tracemark_commits

valid_input if {
	is_array(_commits)
	count(_commits) > 0
}

_accepted := [upper(trim_space(s)) | some s in input.args.accepted_signatures] if is_array(input.args.accepted_signatures)

_accepted := [upper(trim_space(s)) | some s in split(input.args.accepted_signatures, ",")] if is_string(input.args.accepted_signatures)

_meaning := {
	"G": "a good signature",
	"U": "a good signature of unknown validity",
	"X": "a good signature that has expired",
	"Y": "a signature made by an expired key",
	"R": "a signature made by a revoked key",
	"E": "a signature that cannot be checked (missing key)",
	"B": "a bad signature",
	"N": "no signature",
}

_sha(commit) := commit.sha if is_string(commit.sha)

_sha(commit) := "?" if not is_string(commit.sha)

_code(commit) := upper(commit.signature) if is_string(commit.signature)

_code(commit) := "N" if not is_string(commit.signature)

violations contains msg if {
	some commit in _commits
	code := _code(commit)
	not code in _accepted
	msg := concat("", [
		"Commit ", substring(_sha(commit), 0, 12), " has ",
		object.get(_meaning, code, "an unknown signature status"),
		" (git %G? = '", code, "')",
	])
}
