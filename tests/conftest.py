"""Shared fixtures. moto is imported and fake credentials are set before anything creates a boto3
client (a client made before moto is imported escapes the mock)."""

from __future__ import annotations

import os

for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "MOTO_PORT"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import moto  # noqa: E402  (must precede any boto3 client)
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def stack() -> Iterator[object]:
    """The whole backend of template.yaml on moto in-process, handlers loaded (no sockets).

    Session-scoped for speed: tests isolate themselves with unique org/project names."""
    from tracemark_local.secrets_local import local_secrets
    from tracemark_local.stack import MOTO_CONFIG, LocalStack, skip_state_machine_sleeps

    mock = moto.mock_aws(config=MOTO_CONFIG)
    mock.start()
    try:
        skip_state_machine_sleeps()
        local = LocalStack(
            REPO_ROOT,
            parameters={
                "GitHubAppId": "12345",
                "GitHubApiUrl": "http://127.0.0.1:9",
                "DashboardOrigin": "http://testserver",
            },
            secrets=local_secrets(None, env={}),
            extra_env={"PUBLIC_BASE_URL": "http://testserver"},
        ).provision()
        try:
            yield local
        finally:
            local.close()
    finally:
        mock.stop()
