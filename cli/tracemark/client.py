"""HTTPS client for the Tracemark API: bearer token, timeouts, bounded retries (SPEC §2.6).

Only `requests` is used. Retries cover network errors, timeouts, 408, 429 and 5xx (honouring
`Retry-After` up to a cap); every other answer is returned to the caller, who decides whether it
is transient (spool) or final (rejected). Presigned upload URLs get the bytes but never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import requests

from tracemark import __version__
from tracemark.credentials import normalize_server

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_STATUSES = frozenset({401, 403, 408, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER = 10.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class _Bearer(requests.auth.AuthBase):
    """Our token as the Authorization header. Passing an auth object also stops requests from
    replacing it with credentials from ~/.netrc; proxies from the environment still work."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class TransportError(Exception):
    """The server could not be reached (network, DNS, TLS, timeout) after every retry."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                code = error.get("code")
                return f"{error['message']} ({code})" if isinstance(code, str) else error["message"]
            if isinstance(error, str):
                return error
        return self.text[:500] or f"HTTP {self.status}"


def _retry_after(response: requests.Response, attempt: int, backoff: float) -> float:
    header = str(response.headers.get("Retry-After", ""))
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(header)))
    except ValueError:
        return min(MAX_RETRY_AFTER, backoff * (2.0**attempt))


class ApiClient:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = normalize_server(server)
        self.token = token
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.session = session or requests.Session()
        self.sleep = sleep

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        last: Exception | None = None
        data = kwargs.get("data")
        for attempt in range(self.retries):
            if attempt and data is not None and hasattr(data, "seek"):
                data.seek(0)
            try:
                response = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                if attempt + 1 < self.retries:
                    self.sleep(self.backoff * (2.0**attempt))
                continue
            except requests.RequestException as exc:
                raise TransportError(f"request to {urlsplit(url).netloc} failed: {exc}") from exc
            if response.status_code in RETRY_STATUSES and attempt + 1 < self.retries:
                self.sleep(_retry_after(response, attempt, self.backoff))
                continue
            return response
        kind = "timed out" if isinstance(last, requests.Timeout) else "could not connect"
        raise TransportError(f"{kind}: {urlsplit(url).netloc} ({type(last).__name__})")

    def request(self, method: str, path: str, *, json_body: Any = None) -> ApiResponse:
        headers = {"Accept": "application/json", "User-Agent": f"tracemark-cli/{__version__}"}
        response = self._send(method, self.server + path, json=json_body, headers=headers, auth=_Bearer(self.token))
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return ApiResponse(status=response.status_code, body=body, text=response.text[:2000])

    def put_upload(self, url: str, data: IO[bytes] | bytes, headers: Mapping[str, str] | None = None) -> ApiResponse:
        """PUT bytes to a presigned URL (no Authorization header)."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK):
            return ApiResponse(status=0, body=None, text=f"refusing to upload to a non-https URL: {parts.scheme}://")
        response = self._send("PUT", url, data=data, headers=dict(headers or {}), auth=_Bearer(None))
        return ApiResponse(status=response.status_code, body=None, text=response.text[:2000])
