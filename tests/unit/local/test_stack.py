"""The local stack's machinery on a tiny template of its own: provisioning from the template,
in-process Lambda dispatch (direct, through Step Functions, through boto3), and the HTTP API
emulator's API Gateway v2 events. moto in-process, no sockets."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import moto
import pytest

from tracemark_local.stack import MOTO_CONFIG, LocalStack, skip_state_machine_sleeps, wait_for_execution
from tracemark_local.template import TemplateError

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
  Secret: {Type: String}
Conditions:
  IsHello: !Equals [!Ref Greeting, hello]
Globals:
  Function:
    Runtime: python3.11
    Timeout: 5
    Environment:
      Variables:
        TABLE: !Ref Items
        GREETING: !If [IsHello, !Sub "${Greeting}-world", other]
        SECRET_ID: !Ref Secret
Resources:
  Items:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      Handler: app.lambda_handler
      Events:
        Get: {Type: HttpApi, Properties: {Path: "/things/{id}", Method: GET}}
        Default: {Type: HttpApi}
  Step:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/step/
      Handler: app.lambda_handler
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/flow.asl.json
      DefinitionSubstitutions:
        StepArn: !GetAtt Step.Arn
"""

ECHO = """
import json, os, boto3
def lambda_handler(event, context):
    if event.get("rawPath") == "/boom":
        raise ValueError("boom")
    boto3.client("dynamodb").put_item(TableName=os.environ["TABLE"], Item={"pk": {"S": event["rawPath"]}})
    return {"statusCode": 201, "headers": {"x-fn": context.function_name},
            "body": json.dumps({"event": event, "greeting": os.environ["GREETING"]})}
"""

STEP = """
def lambda_handler(event, context):
    if event.get("fail"):
        raise KeyError("no such thing")
    return {"doubled": event["n"] * 2, "remaining_ms": context.get_remaining_time_in_millis()}
"""

FLOW = {
    "StartAt": "Double",
    "States": {
        "Double": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${StepArn}", "Payload.$": "$"},
            "ResultSelector": {"doubled.$": "$.Payload.doubled"},
            "Retry": [{"ErrorEquals": ["KeyError"], "MaxAttempts": 2, "IntervalSeconds": 1}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "End": True,
        },
        "Failed": {"Type": "Fail", "Error": "StepFailed"},
    },
}


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[LocalStack]:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    for name, code in (("echo", ECHO), ("step", STEP)):
        (tmp_path / "functions" / name).mkdir(parents=True)
        (tmp_path / "functions" / name / "app.py").write_text(textwrap.dedent(code))
    (tmp_path / "statemachine").mkdir()
    (tmp_path / "statemachine" / "flow.asl.json").write_text(json.dumps(FLOW))
    with moto.mock_aws(config=MOTO_CONFIG):
        skip_state_machine_sleeps()
        stack = LocalStack(tmp_path, secrets={"Secret": "s3cr3t"}).provision()
        try:
            yield stack
        finally:
            stack.close()


def test_resources_come_from_the_template(tiny: LocalStack) -> None:
    # Given the provisioned tiny stack
    # Then the table, the function and the state machine exist under their local names
    assert "tracemark-Items" in boto3.client("dynamodb").list_tables()["TableNames"]
    names = [fn["FunctionName"] for fn in boto3.client("lambda").list_functions()["Functions"]]
    assert {"Echo", "Step"} <= set(names)
    machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    assert "Flow" in [machine["name"] for machine in machines]
    # And the environment is resolved: Ref, Sub, If, and the secret parameter holds an ARN
    assert tiny.env["TABLE"] == "tracemark-Items"
    assert tiny.env["GREETING"] == "hello-world"
    secret_arn = tiny.env["SECRET_ID"]
    assert secret_arn.startswith("arn:aws:secretsmanager:")
    assert boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"] == "s3cr3t"


def test_http_request_becomes_an_api_gateway_v2_event(tiny: LocalStack) -> None:
    # When a request reaches a templated route
    status, headers, body = tiny.invoke_http(
        "GET", "/things/42", headers={"Authorization": "Bearer x", "X-Multi": "a"}, query="a=1&a=2&b=3"
    )
    # Then the handler saw a payload-2.0 event and its response is mapped back
    assert status == 201
    assert headers["x-fn"] == "Echo"
    event = body["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /things/{id}"
    assert event["rawPath"] == "/things/42"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"a": "1,2", "b": "3"}
    assert event["headers"]["authorization"] == "Bearer x"
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["stage"] == "$default"
    # And the handler really wrote to the moto table
    item = boto3.client("dynamodb").get_item(TableName="tracemark-Items", Key={"pk": {"S": "/things/42"}})
    assert "Item" in item


def test_unknown_paths_go_to_the_default_route(tiny: LocalStack) -> None:
    status, _, body = tiny.invoke_http("POST", "/nowhere", json_body={"x": 1})
    assert status == 201
    assert body["event"]["routeKey"] == "$default"
    assert json.loads(body["event"]["body"]) == {"x": 1}


def test_binary_bodies_are_base64_encoded(tiny: LocalStack) -> None:
    _, _, body = tiny.invoke_http(
        "POST", "/nowhere", body=b"\xff\x00binary", headers={"Content-Type": "application/octet-stream"}
    )
    assert body["event"]["isBase64Encoded"] is True


def test_a_crashing_handler_is_a_bare_500(tiny: LocalStack) -> None:
    status, _, body = tiny.invoke_http("GET", "/boom")
    assert status == 500
    assert body == {"message": "Internal Server Error"}


def test_oversize_bodies_get_413(tiny: LocalStack) -> None:
    status, _, body = tiny.invoke_http("POST", "/nowhere", body=b"x" * (6 * 1024 * 1024 + 10))
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_state_machine_runs_the_real_handlers(tiny: LocalStack) -> None:
    # When the state machine runs
    client = boto3.client("stepfunctions")
    arn = tiny.state_machines["Flow"]
    run = client.start_execution(stateMachineArn=arn, name="ok-1", input=json.dumps({"n": 21}))
    # Then the Task state ran our Step handler in-process
    done = wait_for_execution(client, run["executionArn"])
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {"doubled": 42}


def test_handler_errors_reach_retry_and_catch(tiny: LocalStack) -> None:
    # Given a handler that raises KeyError
    client = boto3.client("stepfunctions")
    run = client.start_execution(stateMachineArn=tiny.state_machines["Flow"], name="fail-1", input='{"fail": true}')
    done = wait_for_execution(client, run["executionArn"])
    # Then the error name is the exception type: retried (1 + 2 attempts), then caught
    assert done["status"] == "FAILED"
    assert done.get("error") == "StepFailed"
    history = client.get_execution_history(executionArn=run["executionArn"])["events"]
    scheduled = [event for event in history if event["type"] in ("LambdaFunctionScheduled", "TaskScheduled")]
    assert len(scheduled) == 3


def test_boto3_invoke_runs_the_handler(tiny: LocalStack) -> None:
    result = boto3.client("lambda").invoke(FunctionName="Step", Payload=json.dumps({"n": 2}))
    assert json.loads(result["Payload"].read())["doubled"] == 4
    failed = boto3.client("lambda").invoke(FunctionName="Step", Payload=json.dumps({"fail": True}))
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "KeyError"


def test_missing_parameter_value_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    with moto.mock_aws(config=MOTO_CONFIG), pytest.raises(TemplateError, match="Secret"):
        LocalStack(tmp_path).provision()
