"""Secrets handling, storage protection and supply chain (docs/security.md §T4.4, §T11, §T12)."""

from __future__ import annotations

import json
import logging
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Tenant, call
from tracemark_common.observability import logger
from tracemark_common.prs.signature import signature_for
from tracemark_local.secrets_local import local_secrets
from tracemark_local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(load_template(REPO_ROOT / "template.yaml"))


def _resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template["Resources"][name]["Properties"])


def test_secrets_are_references_and_each_function_reads_only_its_own(template: dict[str, Any]) -> None:
    """T11.1: secrets are Secrets Manager ARNs (never values, never defaults); functions get
    GetSecretValue on exactly the secrets they use; environment variables hold ids only."""
    params = template["Parameters"]
    for name in (
        "JwtSigningKeySecretArn",
        "AdminTokenSecretArn",
        "GitHubPrivateKeySecretArn",
        "GitHubWebhookSecretArn",
    ):
        assert params[name].get("Default", "") == "", name
        assert "Secrets Manager ARN" in params[name]["Description"]
        pattern = re.compile(params[name]["AllowedPattern"])  # CloudFormation refuses a pasted value
        assert pattern.fullmatch("arn:aws:secretsmanager:eu-west-1:123456789012:secret:tracemark/key-AbCdEf")
        for value in ("-----BEGIN PRIVATE KEY-----", "s3cr3t-value-of-forty-characters-0123456", "arn:aws:s3:::b"):
            assert not pattern.fullmatch(value), (name, value)
    env = json.dumps(template["Globals"]["Function"]["Environment"])
    assert "SECRET_ID" in env and "BEGIN" not in env
    readers: dict[str, set[str]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        policies = json.dumps(resource["Properties"].get("Policies", []))
        readers[logical_id] = set(re.findall(r'"SecretArn": \{"Ref": "(\w+)"\}', policies))
    assert readers["WebhookFunction"] == {"GitHubWebhookSecretArn"}
    assert "GitHubPrivateKeySecretArn" not in readers["ApiFunction"]
    assert "GitHubWebhookSecretArn" not in readers["ApiFunction"]
    assert all("AdminTokenSecretArn" not in used for name, used in readers.items() if name.startswith("Publish"))


def test_data_at_rest_is_encrypted_private_and_expires(template: dict[str, Any]) -> None:
    """T4.4/T11.2: SSE-KMS with a rotating key, public access blocked, TLS only, transcripts expire
    after TranscriptRetentionDays, upload staging after a day; tables KMS-encrypted with PITR."""
    assert _resource(template, "DataKey")["EnableKeyRotation"] is True
    bucket = _resource(template, "EvidenceBucket")
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] == "aws:kms"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    expiry = {r["Prefix"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert expiry["transcripts/"]["ExpirationInDays"] == {"Ref": "TranscriptRetentionDays"}
    assert expiry["uploads/"]["ExpirationInDays"] == 1
    policy = json.dumps(_resource(template, "EvidenceBucketPolicy")["PolicyDocument"])
    assert '"aws:SecureTransport": "false"' in policy and '"Effect": "Deny"' in policy
    table = _resource(template, "AppTable")
    assert table["SSESpecification"]["SSEType"] == "KMS"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    cors = _resource(template, "HttpApi")["CorsConfiguration"]
    assert "*" not in json.dumps(cors["AllowOrigins"]) and cors["AllowHeaders"] == ["Authorization", "Content-Type"]


class _Capture(logging.Handler):
    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[_Capture]:
    inner = logger._logger  # the stdlib logger behind Powertools' Logger
    formatter = inner.handlers[0].formatter if inner.handlers else None
    handler = _Capture(formatter)
    level = inner.level
    inner.addHandler(handler)
    inner.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        inner.removeHandler(handler)
        inner.setLevel(level)


def test_no_secret_reaches_the_logs(stack: Any, new_tenant: Callable[[], Tenant], captured_logs: _Capture) -> None:
    """T11.3: tokens, the webhook secret and the JWT key never appear in log lines, whether a request
    succeeds, fails authentication, or fails a signature check."""
    tenant = new_tenant()
    member = tenant.member("dev")
    call(stack, "POST", "/v1/attestations", member.token, json_body=tenant.envelope(member, "log-1"))
    call(stack, "GET", "/v1/whoami", member.token[:-4] + "AAAA")
    call(stack, "GET", "/v1/whoami", "x" * 40)
    webhook_secret = stack.secret_value("GitHubWebhookSecretArn")
    stack.invoke_http(
        "POST",
        "/github/webhook",
        body=b"{}",
        headers={
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-log",
            "X-Hub-Signature-256": signature_for("wrong", b"{}"),
        },
    )
    body = b'{"zen": "x", "hook_id": 1}'
    stack.invoke_http(
        "POST",
        "/github/webhook",
        body=body,
        headers={
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-log2",
            "X-Hub-Signature-256": signature_for(webhook_secret, body),
        },
    )
    text = "\n".join(captured_logs.lines)
    assert captured_logs.lines, "the handlers logged nothing: the capture is broken"
    for secret in (
        member.token,
        tenant.admin,
        stack.admin_token,
        webhook_secret,
        stack.secret_value("JwtSigningKeySecretArn"),
        signature_for(webhook_secret, body),
    ):
        assert secret not in text


def test_local_secrets_are_private_files(tmp_path: Path) -> None:
    """T11.4: `tracemark serve` generates its secrets into <data dir>/secrets/ with mode 0600."""
    values = local_secrets(tmp_path, env={})
    files = list((tmp_path / "secrets").iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert len(values["AdminTokenSecretArn"]) >= 32 and len(values["JwtSigningKeySecretArn"]) >= 32


def test_dependencies_are_pinned_and_the_dashboard_is_self_contained() -> None:
    """T12: every dependency is pinned (==) in constraints.txt, the Lambda layer's requirements are
    generated from it, and the dashboard loads nothing from a third party."""
    pins = [line.strip() for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()]
    pins = [line for line in pins if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[A-Za-z0-9_.+-]+", line) for line in pins), pins
    layer = (REPO_ROOT / "layers/common/requirements.txt").read_text().splitlines()
    locked = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in pins}
    for line in layer:
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert locked[name.lower().replace("_", "-")] == version, line
    assert "regopy==1.3.0" in pins
    for path in (REPO_ROOT / "dashboard").iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert not re.search(r"""import\s*\(?\s*["']https?://""", text), path


def test_tokens_are_returned_once_and_never_stored(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T11.5: a minted JWT is in the response only; the table keeps its id (jti), never the token."""
    tenant = new_tenant()
    member = tenant.member("dev")
    client = stack.boto3_client("dynamodb")
    dump = ""
    for table in stack.tables.values():
        for page in client.get_paginator("scan").paginate(TableName=table):
            dump += json.dumps(page["Items"], default=repr)  # binary rollup details as repr
    assert member.token_id in dump  # the scan really sees the token items
    for token in (member.token, tenant.admin):
        assert token not in dump and token.split(".")[2] not in dump
