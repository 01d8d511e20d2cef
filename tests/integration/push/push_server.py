"""A tiny Tracemark API stand-in on 127.0.0.1 for pre-push tests: real HTTP, scripted answers.

It implements just what the CLI calls (`POST /v1/keys`, `POST /v1/uploads`, `PUT /upload/<id>`,
`POST /v1/attestations`) and records every request. `mode` scripts the attestation answer.
The server runs in a daemon thread and is shut down by the fixture that starts it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracemark_common import dsse


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ServerState:
    mode: str = "ok"  # ok | 401 | 413 | 500 | 422 | timeout | gated | upload-500
    requests: list[Recorded] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest -> envelope
    uploads: dict[str, bytes] = field(default_factory=dict)
    upload_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    token: str = "test-token-0123456789"
    org: str = "acme"
    retry_after: str = ""
    delay: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def attestation_posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v1/attestations" and r.method == "POST"]


def make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 429 and state.retry_after:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {state.token}"

        def do_GET(self) -> None:
            state.requests.append(Recorded("GET", self.path, dict(self.headers), b""))
            if not self._authorised():
                self._send(401, {"error": {"code": "unauthorized", "message": "bad token"}})
            elif self.path == "/v1/whoami":
                self._send(200, {"org": state.org, "subject": "alice", "role": "member", "scopes": ["push"]})
            else:
                self._send(404, {"error": {"code": "not_found", "message": "no route"}})

        def do_PUT(self) -> None:
            body = self._body()
            state.requests.append(Recorded("PUT", self.path, dict(self.headers), body))
            upload_id = self.path.removeprefix("/upload/")
            if state.mode == "upload-500":
                self._send(500, {"error": {"code": "internal", "message": "boom"}})
                return
            if upload_id not in state.upload_meta or "Authorization" in self.headers:
                self._send(403, {"error": {"code": "forbidden", "message": "bad upload"}})
                return
            state.uploads[upload_id] = body
            self._send(200, {})

        def do_POST(self) -> None:
            body = self._body()
            state.requests.append(Recorded("POST", self.path, dict(self.headers), body))
            if not self._authorised():
                self._send(401, {"error": {"code": "unauthorized", "message": "bad token"}})
                return
            payload = json.loads(body or b"null")
            if self.path == "/v1/keys":
                key = dsse.load_public_key_pem(payload["public_key_pem"])
                kid = dsse.keyid(key)
                state.keys[kid] = payload["public_key_pem"]
                self._send(201, {"keyid": kid})
            elif self.path == "/v1/uploads":
                upload_id = f"up{len(state.upload_meta)}"
                state.upload_meta[upload_id] = payload
                host, port = self.server.server_address[:2]
                self._send(201, {"upload_id": upload_id, "url": f"http://{host}:{port}/upload/{upload_id}"})
            elif self.path == "/v1/attestations":
                self._attest(payload)
            else:
                self._send(404, {"error": {"code": "not_found", "message": "no route"}})

        def _attest(self, payload: Any) -> None:
            mode = state.mode
            if mode == "timeout":
                state.stop.wait(state.delay or 3.0)
                self._send(500, {"error": {"code": "late", "message": "too late"}})
                return
            if mode in ("401", "413", "500", "422", "403", "429"):
                self._send(int(mode), {"error": {"code": f"e{mode}", "message": f"scripted {mode}"}})
                return
            if isinstance(payload, dict) and "upload_id" in payload:
                payload = json.loads(state.uploads[payload["upload_id"]])
            digest = dsse.envelope_digest(payload)
            statement = json.loads(base64.b64decode(payload["payload"]))
            session = statement["predicate"]["evidence"]["data"]["session"]["id"]
            result = {
                "digest": digest,
                "sessions": [{"id": session, "url": f"http://127.0.0.1/sessions/{session}"}],
                "policy_results": [],
                "gated": False,
            }
            if mode == "gated":
                result["gated"] = True
                result["policy_results"] = [{"name": "token-budget", "violations": [{"message": "too many tokens"}]}]
            status = 200 if digest in state.stored else 201
            state.stored[digest] = payload
            self._send(status, result)

    return Handler


class PushServer:
    def __init__(self) -> None:
        self.state = ServerState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PushServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.state.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
