"""`tracemark serve`: the whole backend of template.yaml on one machine (SPEC §4).

One process: moto's server on an ephemeral loopback port (DynamoDB, S3, Secrets Manager, Lambda,
Step Functions with its ASL executor on), every Lambda handler in-process, the HTTP API emulator,
the static dashboard on the same origin, and `/_s3/...`, which forwards presigned S3 requests to
moto so presigned URLs point at the serve origin. Data lives in `--data-dir`.
"""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import secrets
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracemark_local import s3_gate

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from tracemark_local.fake_github import FakeGitHub

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_DATA_DIR = ".tracemark-data"
# Written into the data dir while serve runs (mode 0600), removed on a clean stop: how
# `tracemark demo` and other local scripts find the URL, the admin token and the GitHub side.
DISCOVERY_FILE = "serve.json"
FAKE_GITHUB_APP_ID = "1"


class ServeError(Exception):
    """A problem that stops `serve` from starting, with a message for the user."""


@dataclass
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    root: Path | None = None
    quiet: bool = False


class ServeApp:
    """Routes a request to the dashboard, the S3 forwarder or the HTTP API emulator."""

    def __init__(self, emulator: WSGIApplication, moto_app: WSGIApplication, moto_host: str, dashboard: Path) -> None:
        self.emulator = emulator
        self.moto_app = moto_app
        self.moto_host = moto_host
        self.dashboard = dashboard.resolve()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/_s3/"):
            denied = s3_gate.check(environ, s3_gate.Credentials.from_env())
            if denied is not None:  # moto checks no signature: only our own signed S3 requests pass
                return s3_gate.forbidden(denied, start_response)
            forwarded = dict(environ)
            forwarded["PATH_INFO"] = path[len("/_s3") :]
            for key in ("RAW_URI", "REQUEST_URI"):
                if str(forwarded.get(key, "")).startswith("/_s3/"):
                    forwarded[key] = str(forwarded[key])[len("/_s3") :]
            forwarded["HTTP_HOST"] = self.moto_host
            return self.moto_app(forwarded, start_response)
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            static = self._static_file(path)
            if static is not None:
                return self._serve_file(static, environ, start_response)
        return self.emulator(environ, start_response)

    def _static_file(self, path: str) -> Path | None:
        relative = "index.html" if path in ("", "/") else path.lstrip("/")
        if relative.startswith("dashboard/"):
            relative = relative[len("dashboard/") :] or "index.html"
        candidate = (self.dashboard / relative).resolve()
        if not candidate.is_relative_to(self.dashboard) or not candidate.is_file():
            return None
        return candidate

    @staticmethod
    def _serve_file(file: Path, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        data = file.read_bytes()
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        headers = [
            ("Content-Type", content_type + ("; charset=utf-8" if content_type.startswith("text/") else "")),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            (
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
            ),
        ]
        start_response("200 OK", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [data]


def _check_data_dir(path: Path) -> Path:
    path = path.expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ServeError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc
    return path


def _bind(host: str, port: int, app: WSGIApplication) -> Any:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if os.environ.get("TRACEMARK_ACCESS_LOG"):
                super().log_request(code, size)

    _probe_port(host, port)
    try:
        return make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE or "in use" in str(exc):
            raise ServeError(f"port {port} on {host} is already in use: pick another with --port") from exc
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except (socket.gaierror, SystemExit) as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from exc


def _probe_port(host: str, port: int) -> None:
    """werkzeug exits the process on a busy port; find out first and say so clearly."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} on {host} is already in use: pick another with --port") from exc
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _base_env() -> None:
    """Fake credentials and local-only Powertools settings, unless the user set their own."""
    # Metrics are disabled locally; Powertools still warns on every request that had none.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    defaults = {
        "AWS_ACCESS_KEY_ID": "tracemark-local",
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),  # signs what /_s3/ lets through (s3_gate)
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)


def _start_fake_github(private_key_pem: str, lifetime: str | None) -> FakeGitHub | None:
    """With no GitHub App configured (neither GITHUB_API_URL nor TRACEMARK_GITHUB_APP_ID), serve
    runs the fake GitHub on loopback, with the App key of the data dir, so `tracemark demo` can open
    pull requests and see the comment and check run the workflow publishes."""
    if os.environ.get("GITHUB_API_URL") or os.environ.get("TRACEMARK_GITHUB_APP_ID"):
        return None
    from cryptography.hazmat.primitives import serialization

    from tracemark_local.fake_github import FakeGitHub

    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    seconds = float(lifetime) + 60 if lifetime else 365 * 24 * 3600.0
    return FakeGitHub(app_id=FAKE_GITHUB_APP_ID, public_key_pem=public.decode(), max_lifetime_seconds=seconds).start()


def write_discovery(data_dir: Path, info: dict[str, Any]) -> Path:
    """`<data dir>/serve.json`, mode 0600 (it holds the admin token and the webhook secret)."""
    import json

    from tracemark_local.persist import atomic_write

    path = data_dir / DISCOVERY_FILE
    atomic_write(path, (json.dumps(info, indent=2) + "\n").encode())  # mkstemp: created 0600
    path.chmod(0o600)
    return path


def run(options: ServeOptions) -> int:  # noqa: PLR0915 - start-up reads best as one sequence
    started = time.monotonic()
    data_dir = _check_data_dir(options.data_dir)
    _base_env()
    from tracemark_local.secrets_local import SecretError, local_secrets

    try:
        secret_values = local_secrets(data_dir)
    except SecretError as exc:
        raise ServeError(str(exc)) from exc

    # Bind the public port first: a busy port is reported before anything else starts.
    holder: dict[str, Any] = {}

    def late_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        app = holder.get("app")
        if app is None:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": {"code": "starting", "message": "tracemark serve is starting"}}']
        return app(environ, start_response)  # type: ignore[no-any-return]

    server = _bind(options.host, options.port, late_app)
    public_host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host  # noqa: S104
    public_url = f"http://{public_host}:{server.server_port}"
    lifetime = os.environ.get("TRACEMARK_SERVE_MAX_SECONDS")
    fake_github = _start_fake_github(secret_values["GitHubPrivateKeySecretArn"], lifetime)

    from moto.core.config import default_user_config
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from tracemark_local.persist import DataDir, Flusher, WriteCounter
    from tracemark_local.stack import MOTO_CONFIG, LocalStack

    default_user_config.update({key: dict(value) for key, value in MOTO_CONFIG.items()})  # type: ignore[typeddict-item]
    moto_app = WriteCounter(DomainDispatcherApplication(create_backend_app))

    class QuietMotoHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    moto_server = make_server("127.0.0.1", 0, moto_app, threaded=True, request_handler=QuietMotoHandler)
    moto_port = moto_server.server_port
    moto_thread = threading.Thread(target=moto_server.serve_forever, name="moto", daemon=True)
    moto_thread.start()
    moto_url = f"http://127.0.0.1:{moto_port}"
    os.environ["AWS_ENDPOINT_URL"] = moto_url
    os.environ["MOTO_PORT"] = str(moto_port)  # moto's Step Functions executor calls Lambda here
    os.environ["AWS_ENDPOINT_URL_S3"] = f"{public_url}/_s3"  # presigned URLs at the serve origin

    github_api_url = fake_github.url if fake_github else os.environ.get("GITHUB_API_URL", "https://api.github.com")
    parameters = {
        "GitHubAppId": FAKE_GITHUB_APP_ID if fake_github else os.environ.get("TRACEMARK_GITHUB_APP_ID", ""),
        "GitHubApiUrl": github_api_url,
        "DashboardOrigin": public_url,
        "LogLevel": os.environ.get("TRACEMARK_LOG_LEVEL", "WARNING").upper(),
    }
    stack = LocalStack(
        options.root,
        parameters=parameters,
        secrets=secret_values,
        extra_env={"PUBLIC_BASE_URL": public_url, "DASHBOARD_URL": public_url},
    )
    os.environ["AWS_ENDPOINT_URL_S3"] = moto_url  # provisioning and restore talk to moto directly
    stack.provision()
    data = DataDir(data_dir, moto_url)
    restored = data.load(stack.tables.values(), stack.buckets.values())
    os.environ["AWS_ENDPOINT_URL_S3"] = f"{public_url}/_s3"
    flusher = Flusher(data, moto_app, list(stack.tables.values()), list(stack.buckets.values()))
    flusher.start()

    from tracemark_local.emulator import HttpApiEmulator

    holder["app"] = ServeApp(HttpApiEmulator(stack), moto_app, f"127.0.0.1:{moto_port}", stack.root / "dashboard")

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if lifetime:  # tests and demos: a server that always stops itself
        timer = threading.Timer(float(lifetime), stop.set)
        timer.daemon = True
        timer.start()
    # Before the first request is answered: whoever saw /healthz answer finds serve.json.
    discovery = write_discovery(
        data_dir,
        {
            "url": public_url,
            "dashboard_url": f"{public_url}/",
            "webhook_url": f"{public_url}/github/webhook",
            "admin_token": stack.admin_token,
            "webhook_secret": secret_values["GitHubWebhookSecretArn"],
            "github_api_url": github_api_url,
            "fake_github": fake_github is not None,
            "pid": os.getpid(),
        },
    )

    server_thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    server_thread.start()

    elapsed = time.monotonic() - started
    if not options.quiet:
        github_line = (
            f"  GitHub:       a fake GitHub at {github_api_url} (for `make demo`; set GITHUB_API_URL and "
            "TRACEMARK_GITHUB_APP_ID for a real App)"
            if fake_github
            else f"  GitHub:       {github_api_url}"
        )
        print(
            "\n".join(
                [
                    f"Tracemark is running at {public_url}  (started in {elapsed:.1f}s)",
                    f"  Dashboard:    {public_url}/",
                    f"  API:          {public_url}/v1/  (OpenAPI: {public_url}/v1/openapi.json)",
                    f"  Webhook URL:  {public_url}/github/webhook",
                    github_line,
                    f"  Admin token:  {stack.admin_token}",
                    f"  Data dir:     {data_dir}  (restored {restored['items']} items, {restored['objects']} objects)",
                    "Press Ctrl-C to stop.",
                ]
            ),
            flush=True,
        )
    stop.wait()
    if not options.quiet:
        print("\nstopping: saving data ...", flush=True)
    with contextlib.suppress(OSError):
        discovery.unlink()
    server.shutdown()
    flusher.stop()
    moto_server.shutdown()
    if fake_github is not None:
        fake_github.stop()
    if flusher.last_error:
        print(f"tracemark serve: could not save data: {flusher.last_error}", file=sys.stderr)
        return 1
    if not options.quiet:
        print(f"stopped; data saved in {data_dir}", flush=True)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0
