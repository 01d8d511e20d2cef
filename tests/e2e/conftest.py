"""End-to-end fixtures: the real `tracemark serve` in a subprocess on a free loopback port, with the
fake GitHub as its GitHub API. Servers bind 127.0.0.1 only and stop themselves."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tracemark_local.fake_github import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_ID = "4242"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServedStack:
    url: str
    admin_token: str
    webhook_secret: str
    data_dir: Path
    github: FakeGitHub
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/github/webhook"

    def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracemark", "serve", "--port", str(port), "--data-dir", str(self.data_dir)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.process.kill()
            self.process.communicate()
            self.process = None
            raise

    def _wait_until_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read() if self.process.stdout else ""
                raise RuntimeError(f"tracemark serve exited early:\n{out}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("tracemark serve did not answer /healthz within 90 s")

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns the exit code and keeps the output."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.output.append(out)
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def restart_and_report(self) -> int:
        """Stop with Ctrl-C, start again on the same data dir; the exit code of the stop."""
        code = self.stop()
        self.start()
        return code

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@pytest.fixture(scope="session")
def github_app_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("gh") / "app.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public.decode()


@pytest.fixture(scope="session")
def served_stack(tmp_path_factory: pytest.TempPathFactory, github_app_key: tuple[Path, str]) -> Iterator[ServedStack]:
    """One `tracemark serve` for the e2e session (tests isolate themselves by org name)."""
    key_path, public_pem = github_app_key
    github = FakeGitHub(app_id=APP_ID, public_key_pem=public_pem, max_lifetime_seconds=1800).start()
    admin_token = "e2e-admin-" + secrets.token_urlsafe(32)
    webhook_secret = secrets.token_hex(20)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MOTO_", "POWERTOOLS_")) and key != "TRACEMARK_ROOT"
    }
    env.update(
        {
            "TRACEMARK_ADMIN_TOKEN": admin_token,
            "TRACEMARK_GITHUB_APP_ID": APP_ID,
            "TRACEMARK_GITHUB_PRIVATE_KEY": str(key_path),
            "TRACEMARK_GITHUB_WEBHOOK_SECRET": webhook_secret,
            "GITHUB_API_URL": github.url,
            "TRACEMARK_SERVE_MAX_SECONDS": "1800",
        }
    )
    stack = ServedStack(
        url=f"http://127.0.0.1:{free_port()}",
        admin_token=admin_token,
        webhook_secret=webhook_secret,
        data_dir=tmp_path_factory.mktemp("serve-data"),
        github=github,
        env=env,
    )
    stack.start()
    try:
        yield stack
    finally:
        if stack.process is not None:
            stack.stop()
        github.stop()
