"""The backend of `template.yaml` on moto, with every Lambda handler running in this process.

Used two ways, by the same code:
- tests: inside `moto.mock_aws(config=MOTO_CONFIG)`, no sockets (`tests/conftest.py`);
- `tracemark serve`: against moto's ThreadedMotoServer on loopback (`AWS_ENDPOINT_URL`).

Resources are created from the template: DynamoDB tables, S3 buckets, one Lambda function per
`AWS::Serverless::Function` (moto's Docker-less backend, whose `invoke` we replace so it calls the
real handler), and the state machine with its `DefinitionSubstitutions`. Lambda runs one event
per execution environment, and Powertools keeps per-invocation state in module globals, so each
function gets a lock.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config

from tracemark_local.template import (
    ACCOUNT,
    REGION,
    Resolver,
    TemplateError,
    function_properties,
    load_template,
    resources_of_type,
)

# moto: run state machines for real and never reach for Docker.
MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
# Lambda's limits, enforced locally too.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024

Handler = Callable[[Any, Any], Any]


def repo_root() -> Path:
    """The checkout that holds template.yaml: $TRACEMARK_ROOT, else the one this package is in."""
    if os.environ.get("TRACEMARK_ROOT"):
        return Path(os.environ["TRACEMARK_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent.parent
    if (here / "template.yaml").exists():
        return here
    cwd = Path.cwd()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "template.yaml").exists():
            return candidate
    raise TemplateError("template.yaml not found: run from the Tracemark checkout or set TRACEMARK_ROOT")


def table_name(logical_id: str) -> str:
    return f"tracemark-{logical_id}"


def bucket_name(logical_id: str) -> str:
    return f"tracemark-{logical_id.lower()}"


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"


def state_machine_arn(logical_id: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}"


class LambdaContext:
    """What Powertools and handlers read from the Lambda context object."""

    def __init__(self, function_name: str, memory_mb: int, timeout_s: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(function_name)
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    logical_id: str
    handler: Handler
    memory_mb: int
    timeout_s: int
    lock: threading.Lock


class HandlerError(Exception):
    """A handler raised: Lambda reports it as an Unhandled function error named after the type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class LocalStack:
    def __init__(
        self,
        root: Path | None = None,
        *,
        parameters: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """`secrets` maps template parameter names (e.g. `AdminTokenSecretArn`) to secret VALUES;
        each is stored in Secrets Manager and the parameter gets the secret's ARN."""
        self.root = (root or repo_root()).resolve()
        self.template = load_template(self.root / "template.yaml")
        self._parameters = dict(parameters or {})
        self._secret_values = dict(secrets or {})
        self._extra_env = dict(extra_env or {})
        self.functions: dict[str, LocalFunction] = {}
        self.env: dict[str, str] = {}
        self.resolver: Resolver | None = None
        self.tables: dict[str, str] = {}
        self.buckets: dict[str, str] = {}
        self.state_machines: dict[str, str] = {}

    # ------------------------------------------------------------------ set-up
    @property
    def admin_token(self) -> str:
        return self._secret_values.get("AdminTokenSecretArn", "")

    def secret_value(self, parameter: str) -> str:
        return self._secret_values[parameter]

    @property
    def settings(self) -> Any:
        from tracemark_common.settings import get_settings

        return get_settings()

    def set_env(self, key: str, value: str) -> None:
        """Change one function environment variable (e.g. GITHUB_API_URL to a fake GitHub)."""
        self.env[key] = value
        os.environ[key] = value
        from tracemark_common.settings import get_settings

        get_settings.cache_clear()

    def close(self) -> None:
        """Stop dispatching Lambda invokes to this stack."""
        if self in _STACKS:
            _STACKS.remove(self)

    def boto3_client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, config=Config(retries={"max_attempts": 2}))  # type: ignore[call-overload]

    def provision(self) -> LocalStack:
        """Create every resource, set the functions' environment, load and register handlers."""
        _install_dispatcher(self)
        secrets = self.boto3_client("secretsmanager")
        for parameter, value in self._secret_values.items():
            name = f"tracemark-local/{parameter}"
            try:
                arn = secrets.create_secret(Name=name, SecretString=value)["ARN"]
            except secrets.exceptions.ResourceExistsException:
                arn = secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"]
            self._parameters[parameter] = arn
        self.resolver = resolver = Resolver(self.template, parameters=dict(self._parameters))
        self._name_resources(resolver)
        self._create_tables(resolver)
        self._create_buckets()
        self._set_environment(resolver)
        self._load_functions(resolver)
        self._create_state_machines(resolver)
        return self

    def _name_resources(self, resolver: Resolver) -> None:
        for logical_id, spec in self.template["Resources"].items():
            kind = spec["Type"]
            if kind in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
                resolver.refs[logical_id] = self.tables[logical_id] = table_name(logical_id)
            elif kind == "AWS::S3::Bucket":
                resolver.refs[logical_id] = self.buckets[logical_id] = bucket_name(logical_id)
                resolver.attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{bucket_name(logical_id)}"
            elif kind == "AWS::Serverless::Function":
                resolver.refs[logical_id] = logical_id
                resolver.attrs[(logical_id, "Arn")] = function_arn(logical_id)
            elif kind == "AWS::Serverless::StateMachine":
                arn = state_machine_arn(logical_id)
                resolver.refs[logical_id] = self.state_machines[logical_id] = arn
                resolver.attrs[(logical_id, "Name")] = logical_id
                resolver.attrs[(logical_id, "Arn")] = arn
            elif kind == "AWS::CloudFront::Distribution":
                # The dashboard is served by `tracemark serve` itself.
                origin = self._parameters.get("DashboardOrigin", "http://127.0.0.1")
                resolver.attrs[(logical_id, "DomainName")] = origin.split("://", 1)[-1]
            else:
                resolver.refs.setdefault(logical_id, f"local-{logical_id}")

    def _create_tables(self, resolver: Resolver) -> None:
        client = self.boto3_client("dynamodb")
        existing = set(client.list_tables().get("TableNames", []))
        for logical_id, spec in resources_of_type(self.template, "AWS::DynamoDB::Table").items():
            props = resolver.resolve(spec["Properties"])
            name = self.tables[logical_id]
            if name in existing:
                continue
            kwargs: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            client.create_table(**kwargs)
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )

    def _create_buckets(self) -> None:
        client = self.boto3_client("s3")
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for name in self.buckets.values():
            if name not in existing:
                client.create_bucket(Bucket=name)

    def _set_environment(self, resolver: Resolver) -> None:
        """One process hosts every function, so a variable must mean the same in all of them."""
        env: dict[str, str] = {}
        owner: dict[str, str] = {}
        for logical_id in resources_of_type(self.template, "AWS::Serverless::Function"):
            props = resolver.resolve(function_properties(self.template, logical_id))
            for key, value in ((props.get("Environment") or {}).get("Variables") or {}).items():
                text = str(value)
                if key in env and env[key] != text:
                    raise TemplateError(
                        f"{key} differs between {owner[key]} ({env[key]!r}) and {logical_id} ({text!r}); "
                        "functions share one process locally"
                    )
                env[key] = text
                owner[key] = logical_id
        env.update(self._extra_env)
        self.env = env
        os.environ.update(env)
        from tracemark_common.settings import get_settings

        get_settings.cache_clear()

    def _execution_role(self) -> str:
        iam = self.boto3_client("iam")
        name = "tracemark-local"
        try:
            return str(iam.get_role(RoleName=name)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])

    def _load_functions(self, resolver: Resolver) -> None:
        self._add_layers_to_path(resolver)
        role = self._execution_role()
        lambda_client = self.boto3_client("lambda")
        existing = {fn["FunctionName"] for fn in lambda_client.list_functions().get("Functions", [])}
        for logical_id in resources_of_type(self.template, "AWS::Serverless::Function"):
            props = resolver.resolve(function_properties(self.template, logical_id))
            module_file, attr = props["Handler"].rsplit(".", 1)
            path = self.root / props["CodeUri"] / f"{module_file.replace('.', '/')}.py"
            handler = getattr(_load_module(f"tracemark_fn_{logical_id}", path), attr)
            self.functions[logical_id] = LocalFunction(
                logical_id=logical_id,
                handler=handler,
                memory_mb=int(props.get("MemorySize", 128)),
                timeout_s=int(props.get("Timeout", 3)),
                lock=threading.Lock(),
            )
            if logical_id not in existing:
                lambda_client.create_function(
                    FunctionName=logical_id,
                    Runtime=props.get("Runtime", "python3.11"),
                    Role=role,
                    Handler=props["Handler"],
                    Code={"ZipFile": _dummy_zip()},
                    Timeout=int(props.get("Timeout", 3)),
                )

    def _add_layers_to_path(self, resolver: Resolver) -> None:
        for spec in resources_of_type(self.template, "AWS::Serverless::LayerVersion").values():
            content = self.root / resolver.resolve(spec["Properties"]["ContentUri"])
            # With a BuildMethod, sam build copies ContentUri into python/ (it is /opt/python).
            path = content if (spec.get("Metadata") or {}).get("BuildMethod") else content / "python"
            if str(path) not in sys.path:
                sys.path.append(str(path))

    def _create_state_machines(self, resolver: Resolver) -> None:
        client = self.boto3_client("stepfunctions")
        existing = {sm["name"] for sm in client.list_state_machines().get("stateMachines", [])}
        for logical_id, spec in resources_of_type(self.template, "AWS::Serverless::StateMachine").items():
            definition = self.state_machine_definition(logical_id, resolver)
            if logical_id in existing:
                client.update_state_machine(stateMachineArn=self.state_machines[logical_id], definition=definition)
                continue
            client.create_state_machine(
                name=logical_id,
                definition=definition,
                roleArn=self._execution_role(),
                type=(spec["Properties"].get("Type") or "STANDARD"),
            )

    def state_machine_definition(self, logical_id: str, resolver: Resolver | None = None) -> str:
        resolver = resolver or self.resolver
        assert resolver is not None
        props = self.template["Resources"][logical_id]["Properties"]
        text = (self.root / props["DefinitionUri"]).read_text()
        substitutions = {
            key: str(resolver.resolve(value)) for key, value in (props.get("DefinitionSubstitutions") or {}).items()
        }
        for key, value in substitutions.items():
            text = text.replace("${" + key + "}", value)
        json.loads(text)  # fail here, clearly, rather than inside moto
        return str(text)

    # ------------------------------------------------------------------ invoking
    def invoke(self, logical_id: str, event: Any) -> Any:
        """Run one function's handler on `event`, as Lambda would (one event at a time)."""
        function = self.functions.get(logical_id)
        if function is None:
            raise HandlerError("ResourceNotFoundException", f"Function not found: {logical_id}")
        context = LambdaContext(logical_id, function.memory_mb, function.timeout_s)
        # Lambda hands the handler a fresh copy of the JSON event.
        payload = json.loads(json.dumps(event))
        with function.lock:
            try:
                return function.handler(payload, context)
            except Exception as exc:
                raise HandlerError(type(exc).__name__, str(exc)) from exc

    def invoke_http(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, str], Any]:
        """One request through the HTTP API emulator, without sockets."""
        from werkzeug.test import Client

        from tracemark_local.emulator import HttpApiEmulator

        client = Client(HttpApiEmulator(self))
        data = json.dumps(json_body).encode() if json_body is not None else body
        request_headers = dict(headers or {})
        if json_body is not None:
            request_headers.setdefault("Content-Type", "application/json")
        response = client.open(path, method=method, data=data, headers=request_headers, query_string=query)
        text = response.get_data(as_text=True)
        try:
            parsed: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return response.status_code, dict(response.headers), parsed


def _load_module(name: str, path: Path) -> ModuleType:
    if not path.exists():
        raise TemplateError(f"handler file {path} does not exist")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TemplateError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# the local stack runs the real handler in-process\n")
    return buffer.getvalue()


# Stacks provisioned in this process (tests may build a small one beside the session's): a Lambda
# invoke goes to the newest stack that has a function of that name.
_STACKS: list[LocalStack] = []
_PATCHED = False


def _stack_for(function_name: str) -> LocalStack | None:
    return next((stack for stack in reversed(_STACKS) if function_name in stack.functions), None)


_DYNAMODB_LOCK = threading.RLock()
_DYNAMODB_OPERATIONS = (
    "put_item", "get_item", "update_item", "delete_item", "query", "scan",
    "transact_write_items", "transact_get_items", "batch_write_item", "batch_get_item",
    "execute_statement", "execute_transaction", "batch_execute_statement",
    "create_table", "delete_table", "update_table", "describe_table", "list_tables",
)  # fmt: skip


def _serialize(backend: Any, operations: tuple[str, ...], lock: threading.RLock) -> None:
    """Wrap each of `backend`'s `operations` so that it runs under `lock` (once per class)."""
    import functools

    if backend.__dict__.get("_tracemark_serialized", False):
        return
    for name in operations:
        original = getattr(backend, name)

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        setattr(backend, name, functools.wraps(original)(locked))
    backend._tracemark_serialized = True


def _serialize_dynamodb() -> None:
    """DynamoDB is linearizable; moto's backend is not thread-safe (a transaction deep-copies the
    table while another thread writes: `dictionary changed size during iteration`). Handlers run
    on many threads locally, so every backend operation takes one process-wide lock."""
    from moto.dynamodb.models import DynamoDBBackend

    _serialize(DynamoDBBackend, _DYNAMODB_OPERATIONS, _DYNAMODB_LOCK)


_STEPFUNCTIONS_LOCK = threading.RLock()


def _serialize_step_functions_starts() -> None:
    """StartExecution is atomic on AWS: a second start with the same name either returns the
    running execution (same input) or fails with ExecutionAlreadyExists. moto checks the name and
    then appends, so two concurrent starts (two webhook copies at once) could both create an
    execution; one lock around each start restores AWS's behaviour."""
    from moto.stepfunctions.models import StepFunctionBackend
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    for backend in (StepFunctionBackend, StepFunctionsParserBackend):
        _serialize(backend, ("start_execution",), _STEPFUNCTIONS_LOCK)


def _install_dispatcher(stack: LocalStack) -> None:
    """Make moto's Docker-less Lambda backend run our handlers: Step Functions Task states,
    `lambda:invoke` integrations and boto3 `invoke` calls all land here."""
    global _PATCHED  # noqa: PLW0603 - moto's backend is process-global
    if stack not in _STACKS:
        _STACKS.append(stack)
    _serialize_dynamodb()
    _serialize_step_functions_starts()
    if _PATCHED:
        return
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(  # noqa: PLR0917 - moto's signature
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.rsplit(":function:", maxsplit=1)[-1].split(":", maxsplit=1)[0]
        owner = _stack_for(name)
        if owner is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": name}).encode()
        if body and len(body) > LAMBDA_PAYLOAD_LIMIT:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "RequestTooLargeException", "errorMessage": "payload over 6 MB"}).encode()
        try:
            result = owner.invoke(name, json.loads(body or "null"))
        except HandlerError as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": exc.error_type, "errorMessage": exc.message}).encode()
        return json.dumps(result).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    _PATCHED = True


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def skip_state_machine_sleeps() -> None:
    """Tests only: make Retry back-off and Wait states instantaneous in moto's executor."""
    import types

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    retrier_decl.time = types.SimpleNamespace(sleep=lambda _seconds: None)  # type: ignore[assignment,attr-defined]
    WaitFunction._wait_interval = lambda _self, _env, _seconds: None  # type: ignore[method-assign,assignment]


def wait_for_execution(client: Any, execution_arn: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll until a Step Functions execution leaves RUNNING (moto runs it on a worker thread)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described: dict[str, Any] = client.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.02)
