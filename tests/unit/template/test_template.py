"""Offline checks of template.yaml (SPEC §4): the SAM transform, cfn-lint on its output, a graph
check of every state machine definition, and the HTTP routes kept in step with the code."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracemark_common.routes import ROUTES
from tracemark_local.template import http_routes, load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load_template(ROOT / "template.yaml")
REQUIRED_PARAMETERS = {
    "JwtSigningKeySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tracemark/jwt-AbCdEf",
    "AdminTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tracemark/admin-AbCdEf",
    "GitHubPrivateKeySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tracemark/gh-key-AbCdEf",
    "GitHubWebhookSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tracemark/gh-hook-AbCdEf",
}


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def packaged_template() -> dict[str, Any]:
    """What `sam package` would upload: code URIs on S3, state machine definitions inline."""
    template = copy.deepcopy(TEMPLATE)
    for spec in template["Resources"].values():
        props = spec.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://tracemark-artifacts/{props[key].strip('/').replace('/', '-')}.zip"
        if isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((ROOT / props.pop("DefinitionUri")).read_text())
    return template


@pytest.fixture(scope="module")
def cloudformation(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: Any) -> Path:
    from samtranslator.translator.transform import transform

    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    parameters = {"AWS::Region": "eu-west-1", **REQUIRED_PARAMETERS}
    output = transform(packaged_template(), parameters, _NoManagedPolicies())
    path = tmp_path_factory.mktemp("cfn") / "template.json"
    path.write_text(json.dumps(output, indent=1))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_sam_transform_then_cfn_lint_reports_nothing(cloudformation: Path) -> None:
    # Given the template transformed by the SAM translator (it raises on invalid SAM)
    # When cfn-lint checks the generated CloudFormation
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--regions",
            "eu-west-1",
            "--format",
            "parseable",
            "--",
            str(cloudformation),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # Then it finds no errors and no warnings
    assert result.returncode == 0, result.stdout + result.stderr


def test_transform_produces_the_backend(cloudformation: Path) -> None:
    resources = json.loads(cloudformation.read_text())["Resources"]
    kinds = [spec["Type"] for spec in resources.values()]
    assert kinds.count("AWS::Lambda::Function") == 7
    assert kinds.count("AWS::StepFunctions::StateMachine") == 1
    assert kinds.count("AWS::DynamoDB::Table") == 2
    assert kinds.count("AWS::ApiGatewayV2::Api") == 1
    assert "AWS::Lambda::LayerVersion" in kinds
    api = next(spec for spec in resources.values() if spec["Type"] == "AWS::ApiGatewayV2::Api")
    paths = api["Properties"]["Body"]["paths"]
    routes = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert "X-AMAZON-APIGATEWAY-ANY-METHOD $default" in routes
    assert "POST /v1/attestations" in routes


def test_no_secret_values_in_the_template() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text)
    for name in (
        "GitHubPrivateKeySecretArn",
        "GitHubWebhookSecretArn",
        "JwtSigningKeySecretArn",
        "AdminTokenSecretArn",
    ):
        assert TEMPLATE["Parameters"][name].get("Default", "") == "", name


def test_common_layer_is_built_by_sam_without_a_python_folder() -> None:
    layer = TEMPLATE["Resources"]["CommonLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "tracemark_common" / "__init__.py").exists()
    assert (content / "requirements.txt").exists()
    assert not (content / "python").exists()


def test_template_routes_match_the_route_table() -> None:
    # The template, the API function's 405 logic and the OpenAPI document share one route list.
    declared = {
        (route.method, route.path, route.function) for route in http_routes(TEMPLATE) if route.path != "$default"
    }
    expected = {(route.method, route.path, route.function) for route in ROUTES}
    assert declared == expected


def test_every_function_has_its_handler_file() -> None:
    for logical_id, spec in resources_of_type(TEMPLATE, "AWS::Serverless::Function").items():
        module, _ = spec["Properties"]["Handler"].rsplit(".", 1)
        assert (ROOT / spec["Properties"]["CodeUri"] / f"{module}.py").exists(), logical_id


# ---------------------------------------------------------------------- state machines


def _targets(state: dict[str, Any]) -> list[str]:
    found = [state[key] for key in ("Next", "Default") if key in state]
    found += [choice["Next"] for choice in state.get("Choices", []) if "Next" in choice]
    found += [catch["Next"] for catch in state.get("Catch", [])]
    return found


def graph_problems(definition: dict[str, Any], where: str = "") -> list[str]:
    states: dict[str, Any] = definition.get("States", {})
    start = definition.get("StartAt")
    problems = [] if start in states else [f"{where}StartAt {start!r} is not a state"]
    for name, state in states.items():
        for target in _targets(state):
            if target not in states:
                problems.append(f"{where}{name} -> {target!r}: no such state")
        if state.get("Type") not in ("Choice", "Succeed", "Fail") and not state.get("End") and "Next" not in state:
            problems.append(f"{where}{name} has neither Next nor End")
        for index, branch in enumerate(state.get("Branches", [])):
            problems += graph_problems(branch, f"{where}{name}.Branches[{index}].")
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                problems += graph_problems(state[key], f"{where}{name}.{key}.")
    reachable: set[str] = set()
    todo = [start] if start in states else []
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        todo += [target for target in _targets(states[name]) if target in states]
    problems += [f"{where}{name} is unreachable" for name in states if name not in reachable]
    return problems


STATE_MACHINES = resources_of_type(TEMPLATE, "AWS::Serverless::StateMachine")


def test_every_asl_file_is_used_by_the_template() -> None:
    used = {(ROOT / spec["Properties"]["DefinitionUri"]).resolve() for spec in STATE_MACHINES.values()}
    on_disk = {path.resolve() for path in (ROOT / "statemachine").glob("*.asl.json")}
    assert on_disk == used


@pytest.mark.parametrize("logical_id", sorted(STATE_MACHINES))
def test_state_machine_graph(logical_id: str) -> None:
    props = STATE_MACHINES[logical_id]["Properties"]
    text = (ROOT / props["DefinitionUri"]).read_text()
    definition = json.loads(text)
    # every state reachable, every target exists
    assert graph_problems(definition) == []
    # every ${...} has a substitution, and every substitution is used
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    substitutions = set(props.get("DefinitionSubstitutions") or {})
    assert placeholders <= substitutions, placeholders - substitutions
    assert substitutions <= placeholders, substitutions - placeholders
    # JSONPath only: moto's executor (and our local stack) cannot run JSONata
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    # every Task has Retry and Catch
    tasks = {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}
    assert tasks
    for name, state in tasks.items():
        assert state.get("Retry"), f"{name} has no Retry"
        assert state.get("Catch"), f"{name} has no Catch"


def test_graph_check_catches_dangling_and_unreachable_states() -> None:
    broken = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "x", "Next": "Nowhere"},
            "B": {"Type": "Succeed"},
            "C": {"Type": "Pass"},
        },
    }
    problems = graph_problems(broken)
    assert "A -> 'Nowhere': no such state" in problems
    assert "B is unreachable" in problems
    assert "C has neither Next nor End" in problems
