"""`tracemark init` checks token, organisation and project with the server before writing anything."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from capture_workspace import Workspace
from test_install import tree_bytes


class FakeApi:
    """A loopback HTTP server answering /v1/whoami and /v1/projects/<name>; stops with the test."""

    def __init__(self) -> None:
        self.whoami: tuple[int, dict[str, object]] = (200, {"org": "acme", "subject": "dev", "role": "member"})
        self.projects: dict[str, int] = {"demo": 200}
        self.auth_headers: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.auth_headers.append(self.headers.get("Authorization", ""))
                if self.path == "/v1/whoami":
                    status, body = api.whoami
                elif self.path.startswith("/v1/projects/"):
                    status = api.projects.get(self.path.rsplit("/", 1)[1], 404)
                    body = {"name": self.path.rsplit("/", 1)[1]} if status == 200 else {"error": "not found"}
                else:
                    status, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


def _init(ws: Workspace, server: str, *args: str) -> tuple[int, str]:
    ws.env.update({"TRACEMARK_SERVER": server, "TRACEMARK_TOKEN": "tok-123"})
    proc = ws.tracemark("init", "--project", "demo", *args)
    return proc.returncode, proc.stderr.decode()


def test_valid_token_org_and_project(bare_repo: Workspace, api: FakeApi) -> None:
    code, err = _init(bare_repo, api.url, "--org", "acme")
    assert code == 0, err
    assert "checked token, organisation and project" in err
    assert api.auth_headers == ["Bearer tok-123", "Bearer tok-123"]
    assert (bare_repo.root / ".tracemark.yml").exists()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda api: setattr(api, "whoami", (401, {"error": "bad token"})), (), "rejected the token"),
        (lambda api: None, ("--org", "other"), "belongs to organisation 'acme'"),
        (lambda api: api.projects.clear(), (), "does not exist"),
    ],
    ids=["bad-token", "wrong-org", "missing-project"],
)
def test_server_refusals_change_nothing(bare_repo: Workspace, api: FakeApi, setup, args, message) -> None:
    setup(api)
    before = tree_bytes(bare_repo.root)
    code, err = _init(bare_repo, api.url, *args)
    assert code == 1
    assert message in err
    assert tree_bytes(bare_repo.root) == before


def test_unreachable_server_suggests_offline(bare_repo: Workspace) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before init runs: nothing listens there
    before = tree_bytes(bare_repo.root)
    code, err = _init(bare_repo, f"http://127.0.0.1:{port}")
    assert code == 1
    assert "cannot reach" in err and "--offline" in err
    assert tree_bytes(bare_repo.root) == before
    code, err = _init(bare_repo, f"http://127.0.0.1:{port}", "--offline")
    assert code == 0
    assert "warning: --offline" in err


def test_no_credentials_skips_the_check(bare_repo: Workspace, tmp_path: Path) -> None:
    proc = bare_repo.tracemark("init", "--project", "demo")
    assert proc.returncode == 0
    assert b"no credentials" in proc.stderr


def test_server_other_than_the_tokens_is_a_warning_and_no_request(bare_repo: Workspace, api: FakeApi) -> None:
    code, err = _init(bare_repo, api.url, "--server", "https://tracemark.other.example")
    assert code == 0, err
    assert "never sent with that token" in err
    assert api.auth_headers == []
    assert "server: https://tracemark.other.example" in (bare_repo.root / ".tracemark.yml").read_text()
