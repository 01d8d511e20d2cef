"""A small HTTP server on 127.0.0.1 for the dashboard's browser tests: it serves `dashboard/`
and the three API routes the dashboard calls. `GET /v1/dashboard/ai` answers from the REAL
rollup writer and query (in-memory store); the sessions routes return canned sessions."""

from __future__ import annotations

import importlib.util
import json
import mimetypes
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tracemark_common.errors import TracemarkError
from tracemark_common.rollups import InMemoryRollupStore
from tracemark_common.rollups.query import query_dashboard

DASHBOARD = Path(__file__).resolve().parents[3] / "dashboard"


def load_reference() -> Any:
    """The brute-force reference of tests/unit/rollups (loaded by path: tests are not packages)."""
    name = "rollup_reference_for_browser"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[2] / "unit" / "rollups" / "rollup_reference.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


DETAIL_ONLY = ("evidence", "commit_shas", "attestations", "policy_results", "rewritten_from", "transcript")


def _list_item(session: dict[str, Any]) -> dict[str, Any]:
    """A list row as `GET /v1/sessions` gives it: summary fields flat, score as a number."""
    item = {k: v for k, v in session.items() if k not in DETAIL_ONLY}
    item["score"] = (session.get("score") or {}).get("score")
    item["prs"] = len(session.get("prs") or [])
    return item


STATUS = {"BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404}


class StubApi:
    def __init__(
        self, store: InMemoryRollupStore, tokens: dict[str, str], sessions: list[dict[str, Any]], now: datetime
    ):
        self.store, self.tokens, self.sessions, self.now = store, tokens, sessions, now
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StubApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                api.requests.append(self.path)
                if parts.path.startswith("/v1/"):
                    self._api(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})
                else:
                    self._static(parts.path)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, body: Any) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _static(self, path: str) -> None:
                name = "index.html" if path in {"", "/"} else unquote(path).lstrip("/")
                target = (DASHBOARD / name).resolve()
                if DASHBOARD not in target.parents or not target.is_file():
                    self._json(404, {"error": {"code": "not_found", "message": "no such file"}})
                    return
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                self._send(200, target.read_bytes(), kind)

            def _api(self, path: str, query: dict[str, str]) -> None:
                auth = self.headers.get("Authorization", "")
                org = api.tokens.get(auth.removeprefix("Bearer ").strip())
                if org is None:
                    self._json(401, {"error": {"code": "invalid_token", "message": "the bearer token is not valid"}})
                    return
                try:
                    self._json(200, self._route(org, path, query))
                except TracemarkError as exc:
                    self._json(
                        STATUS.get(type(exc).__name__, 500), {"error": {"code": exc.code, "message": exc.message}}
                    )

            def _route(self, org: str, path: str, query: dict[str, str]) -> Any:
                if path == "/v1/dashboard/ai":
                    return query_dashboard(api.store, org, query.get("range", "7d"), query.get("project"), api.now)
                mine = [s for s in api.sessions if s["org"] == org]
                if path == "/v1/sessions":
                    if query.get("user"):
                        mine = [s for s in mine if s.get("user") == query["user"]]
                    limit, start = int(query.get("limit", "50")), int(query.get("cursor") or 0)
                    page = [_list_item(s) for s in mine[start : start + limit]]
                    more = start + limit < len(mine)
                    return {"items": page, "next_cursor": str(start + limit) if more else None}
                if path.startswith("/v1/sessions/"):
                    wanted = unquote(path.removeprefix("/v1/sessions/"))
                    for session in mine:
                        if session["id"] == wanted:
                            return session
                from tracemark_common.errors import NotFound

                raise NotFound(f"no route or session for {path[:80]}")

        return Handler
