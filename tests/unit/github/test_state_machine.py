"""The PR correlation state machine definition: JSONPath only, Retry and Catch on every Task,
every transition lands on a state, ARNs only through the template's substitutions."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEFINITION = ROOT / "statemachine" / "pr_correlation.asl.json"
SUBSTITUTIONS = {
    "LoadPullRequestFunctionArn",
    "CorrelateSessionsFunctionArn",
    "PublishCommentFunctionArn",
    "PublishCheckRunFunctionArn",
    "AppTableName",
}


def test_definition_shape() -> None:
    text = DEFINITION.read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= SUBSTITUTIONS
    machine = json.loads(text)
    assert "QueryLanguage" not in machine  # JSONPath (moto cannot run JSONata)
    states = machine["States"]
    assert machine["StartAt"] in states
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert set(tasks) == {"LoadPullRequest", "CorrelateSessions", "PublishComment", "PublishCheckRun"}
    for name, state in tasks.items():
        assert state["Retry"], name
        assert any("States.ALL" in c["ErrorEquals"] for c in state["Catch"]), name
        assert state["Resource"].startswith("${") and state["ResultPath"].startswith("$."), name
    targets = set()
    for state in states.values():
        targets.update(filter(None, [state.get("Next"), state.get("Default")]))
        targets.update(c["Next"] for c in state.get("Catch", []) + state.get("Choices", []))
    assert targets <= set(states)
    assert set(states) - targets == {machine["StartAt"]}  # nothing unreachable
    publish = [r for s in ("PublishComment", "PublishCheckRun") for r in tasks[s]["Retry"]]
    assert any("PublishBusy" in r["ErrorEquals"] for r in publish)
