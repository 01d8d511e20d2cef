"""Fuzz suite fixtures: a deterministic Hypothesis profile, and the real `tracemark serve` on a free
loopback port (the pattern of tests/e2e/conftest.py: a subprocess bound to 127.0.0.1 that stops
itself), with an organisation, an org-admin token and a member token minted through the API."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fuzzkit import FuzzStack

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"tracemark serve exited early:\n{out}")
        try:
            if requests.get(f"{url}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("tracemark serve did not answer /healthz within 90 s")


def _post(url: str, token: str, body: dict[str, object], expect: int = 201) -> dict[str, object]:
    response = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == expect, f"POST {url}: {response.status_code} {response.text}"
    result: dict[str, object] = response.json()
    return result


@pytest.fixture(scope="session")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzStack]:
    admin_token = "fuzz-admin-" + secrets.token_urlsafe(32)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MOTO_", "POWERTOOLS_")) and key != "TRACEMARK_ROOT"
    }
    env.update(
        {
            "TRACEMARK_ADMIN_TOKEN": admin_token,
            "TRACEMARK_GITHUB_WEBHOOK_SECRET": secrets.token_hex(20),
            "TRACEMARK_SERVE_MAX_SECONDS": "900",
        }
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path_factory.mktemp("fuzz-serve-data")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracemark",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_healthy(process, url)
        # The org user token is made the way docs/api.md describes: the server admin creates an
        # organisation (its answer carries an org-admin token), which mints a member token.
        created = _post(f"{url}/v1/orgs", admin_token, {"name": "fuzz", "admin_subject": "fuzz-admin"})
        org_admin = str(created["token"])
        _post(f"{url}/v1/projects", org_admin, {"name": "web"})
        member = _post(f"{url}/v1/tokens", org_admin, {"subject": "fuzz-member", "kind": "user"})
        yield FuzzStack(
            url=url,
            admin_token=admin_token,
            org="fuzz",
            org_admin_token=org_admin,
            member_token=str(member["token"]),
            project="web",
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
