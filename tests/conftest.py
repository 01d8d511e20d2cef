"""Shared fixtures. moto is imported and fake credentials are set before anything creates a boto3
client (a client made before moto is imported escapes the mock)."""

from __future__ import annotations

import os
import shutil

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
from typing import Any  # noqa: E402

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


# ---- the browser: Debian's chromium driven by Playwright (never `playwright install`) ------------
# One session-wide instance for every folder that drives a page (Playwright's sync API cannot be
# started twice in one thread).

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed: run `make chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (test artefacts, never committed): $TRACEMARK_TEST_ARTIFACTS or a temp dir."""
    configured = os.environ.get("TRACEMARK_TEST_ARTIFACTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
