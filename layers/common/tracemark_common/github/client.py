"""The GitHub REST client of the GitHub App (SPEC §3.4, reference formats.md §4).

- App JWT (RS256, `iss` = app id, `iat` backdated 60 s, expiring within 10 minutes).
- Installation tokens cached in memory until five minutes before they expire.
- One `requests.Session`, a versioned User-Agent, the API version header, timeouts.
- Retries with backoff on 5xx, 429, secondary rate limits and network errors, honouring
  `Retry-After` and `x-ratelimit-reset`; the sleep is injectable so tests never wait. A create
  (comment, check run) is not sent again after a 5xx or a network error, which may have been
  applied: `GitHubUnavailable` at once, and the workflow step, retried, finds what it created.
- `Link` pagination that refuses a `next` link on another scheme, host or port.
- Every URL is built here from validated ids (`owner/name`, numbers, shas), never from payloads.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

API_VERSION = "2022-11-28"
PER_PAGE = 100
# The pulls endpoint lists at most this many commits; bigger pull requests go through compare.
PULL_COMMITS_LIMIT = 250
MAX_PAGES = 200
TOKEN_REFRESH_MARGIN_SECONDS = 300
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540  # exp = now + 9 min: at most 10 minutes after the backdated iat

_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tracemark")
    except Exception:  # pragma: no cover - only when the distribution is not installed
        return "0.0.0"


USER_AGENT = f"tracemark/{_version()} (+https://tracemark.dev)"


class GitHubError(Exception):
    """A GitHub call failed for good (after retries when they apply)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class GitHubNotFound(GitHubError):
    """404: the pull request, comment or repository is gone (or the App lost access)."""


class GitHubUnavailable(GitHubError):
    """5xx, rate limits or network errors that outlasted the retries; try again later."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class PaginationError(GitHubError):
    """A `Link` header pointed somewhere we do not follow."""


def check_full_name(full_name: str) -> str:
    if not isinstance(full_name, str) or not _FULL_NAME.fullmatch(full_name) or ".." in full_name:
        raise GitHubError(f"not a repository full name: {full_name!r}")
    return full_name


def check_sha(sha: str) -> str:
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise GitHubError(f"not a commit sha: {sha!r}")
    return sha


def _number(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GitHubError(f"not a {what}: {value!r}")
    return value


def _repo_path(full_name: str) -> str:
    owner, name = check_full_name(full_name).split("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key_pem: str


@dataclass
class _CachedToken:
    token: str
    expires_at: float


@dataclass
class TokenCache:
    """Installation tokens, in memory only, shared by the clients of one process."""

    _tokens: dict[tuple[str, str, int], _CachedToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[str, str, int], now: float) -> str | None:
        with self._lock:
            cached = self._tokens.get(key)
            if cached is None or cached.expires_at - TOKEN_REFRESH_MARGIN_SECONDS <= now:
                return None
            return cached.token

    def put(self, key: tuple[str, str, int], token: str, expires_at: float) -> None:
        with self._lock:
            self._tokens[key] = _CachedToken(token, expires_at)

    def drop(self, key: tuple[str, str, int]) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


DEFAULT_TOKEN_CACHE = TokenCache()


def parse_link_header(value: str) -> dict[str, str]:
    """`<url>; rel="next", <url>; rel="last"` → {"next": url, "last": url}."""
    links: dict[str, str] = {}
    for part in value.split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
        if not match:
            continue
        rel = re.search(r'rel="?([^";]+)"?', match.group(2))
        if rel:
            for name in rel.group(1).split():
                links[name] = match.group(1)
    return links


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class GitHubClient:
    """A small client for the endpoints the PR workflow needs. Thread-safe for reads."""

    def __init__(
        self,
        base_url: str,
        credentials: AppCredentials,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        token_cache: TokenCache | None = None,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        max_wait_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GitHubError(f"GITHUB_API_URL must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self.credentials = credentials
        self.session = session or requests.Session()
        self.sleep = sleep
        self.clock = clock
        self.tokens = token_cache if token_cache is not None else DEFAULT_TOKEN_CACHE
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_wait_seconds = max_wait_seconds
        self.timeout_seconds = timeout_seconds

    # -- authentication ------------------------------------------------------------------------

    def app_jwt(self) -> str:
        import jwt  # server-only dependency, kept off the import path of the CLI

        now = int(self.clock())
        claims = {"iat": now - JWT_BACKDATE_SECONDS, "exp": now + JWT_LIFETIME_SECONDS, "iss": self.credentials.app_id}
        return jwt.encode(claims, self.credentials.private_key_pem, algorithm="RS256")

    def _token_key(self, installation_id: int) -> tuple[str, str, int]:
        return (self.base_url, self.credentials.app_id, installation_id)

    def installation_token(self, installation_id: int) -> str:
        _number(installation_id, "installation id")
        key = self._token_key(installation_id)
        cached = self.tokens.get(key, self.clock())
        if cached is not None:
            return cached
        url = f"{self.base_url}/app/installations/{installation_id}/access_tokens"
        try:
            response = self._send("POST", url, auth=f"Bearer {self.app_jwt()}")
        except GitHubNotFound as exc:  # the installation is gone: not the same as a missing PR
            raise GitHubError(f"installation {installation_id} not found (uninstalled?)", 404) from exc
        body = response.json()
        token = body.get("token") if isinstance(body, dict) else None
        expires = body.get("expires_at") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires, str):
            raise GitHubError("GitHub answered the installation token request without a token", response.status_code)
        try:
            expires_at = _parse_time(expires)
        except ValueError as exc:
            raise GitHubError(f"unreadable expires_at {expires!r} in the installation token") from exc
        self.tokens.put(key, token, expires_at)
        return token

    # -- transport -----------------------------------------------------------------------------

    def _retry_wait(self, response: requests.Response | None, attempt: int) -> float | None:
        """Seconds to wait before retrying `response`, or None when it is not retryable."""
        backoff = self.backoff_seconds * float(1 << attempt)
        if response is None:
            return backoff
        status = response.status_code
        retry_after = response.headers.get("Retry-After")
        if status == 429 or (status == 403 and self._rate_limited(response)):
            if retry_after is not None:
                try:
                    return max(0.0, float(retry_after))
                except ValueError:
                    return max(60.0, backoff)
            if response.headers.get("x-ratelimit-remaining") == "0":
                try:
                    return max(0.0, float(response.headers.get("x-ratelimit-reset", "0")) - self.clock())
                except ValueError:
                    return max(60.0, backoff)
            return max(60.0, backoff)
        if status >= 500:
            if retry_after is not None:
                try:
                    return max(0.0, float(retry_after))
                except ValueError:
                    return backoff
            return backoff
        return None

    @staticmethod
    def _rate_limited(response: requests.Response) -> bool:
        if "Retry-After" in response.headers or response.headers.get("x-ratelimit-remaining") == "0":
            return True
        return "rate limit" in response.text[:2000].lower()

    def _send(
        self,
        method: str,
        url: str,
        *,
        auth: str,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        resend_after_server_error: bool = True,
    ) -> requests.Response:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
            "Authorization": auth,
        }
        last_error = "no attempt made"
        last_status: int | None = None
        wait: float | None = None
        for attempt in range(self.max_attempts):
            response: requests.Response | None
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    params=params,
                    timeout=self.timeout_seconds,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                response = None
                last_error = f"{type(exc).__name__}: {exc}"
                last_status = None
            if response is not None and response.status_code < 300:  # 3xx: not followed, an error
                return response
            if response is not None:
                last_status = response.status_code
                last_error = f"{response.status_code} {_error_text(response)}"
                if response.status_code == 404:
                    raise GitHubNotFound(f"{method} {_path_of(url)}: not found", 404)
            wait = self._retry_wait(response, attempt)
            if wait is None:
                raise GitHubError(f"{method} {_path_of(url)} failed: {last_error}", last_status)
            if not resend_after_server_error and (response is None or response.status_code >= 500):
                raise GitHubUnavailable(
                    f"{method} {_path_of(url)} failed and may have been applied; not sent again: {last_error}",
                    last_status,
                )
            if attempt + 1 >= self.max_attempts or wait > self.max_wait_seconds:
                break
            self.sleep(wait)
        raise GitHubUnavailable(
            f"{method} {_path_of(url)} failed after retries: {last_error}", last_status, retry_after=wait
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        installation_id: int,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        resend_after_server_error: bool = True,
    ) -> requests.Response:
        """`path` is built by this module's helpers; never pass a URL taken from a payload.
        `resend_after_server_error=False` for requests that must not be applied twice."""
        if not path.startswith("/") or "//" in path or "/../" in path or path.endswith("/.."):
            raise GitHubError(f"refusing to call path {path!r}")
        return self._authorised(
            method,
            f"{self.base_url}{path}",
            installation_id,
            json=json,
            params=params,
            resend_after_server_error=resend_after_server_error,
        )

    def _authorised(
        self,
        method: str,
        url: str,
        installation_id: int,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        resend_after_server_error: bool = True,
    ) -> requests.Response:
        token = self.installation_token(installation_id)
        resend = resend_after_server_error
        try:
            return self._send(
                method, url, auth=f"token {token}", json=json, params=params, resend_after_server_error=resend
            )
        except GitHubError as exc:
            if exc.status != 401:
                raise
        # The token was revoked or expired early: fetch a new one, once.
        self.tokens.drop(self._token_key(installation_id))
        token = self.installation_token(installation_id)
        return self._send(
            method, url, auth=f"token {token}", json=json, params=params, resend_after_server_error=resend
        )

    def _check_link(self, url: str) -> None:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        if origin != self._origin:
            raise PaginationError(
                f"pagination stopped: the next page is on {parts.scheme}://{parts.netloc}, not the API"
            )

    def pages(self, path: str, *, installation_id: int, params: Mapping[str, str | int] | None = None) -> Iterator[Any]:
        """Each page's parsed JSON, following `Link: rel="next"` on the API's own origin only."""
        response = self.request("GET", path, installation_id=installation_id, params=params)
        for _ in range(MAX_PAGES):
            yield response.json()
            next_url = parse_link_header(response.headers.get("Link", "")).get("next")
            if not next_url:
                return
            self._check_link(next_url)
            response = self._authorised("GET", next_url, installation_id)
        raise PaginationError(f"pagination stopped after {MAX_PAGES} pages of {path}")

    # -- endpoints -------------------------------------------------------------------------------

    def get_pull(self, installation_id: int, full_name: str, number: int) -> dict[str, Any]:
        path = f"{_repo_path(full_name)}/pulls/{_number(number, 'pull request number')}"
        body = self.request("GET", path, installation_id=installation_id).json()
        if not isinstance(body, dict):
            raise GitHubError(f"GET {path}: expected an object")
        return body

    def list_pull_commits(
        self,
        installation_id: int,
        full_name: str,
        number: int,
        *,
        base_sha: str = "",
        head_sha: str = "",
        total: int | None = None,
    ) -> list[dict[str, Any]]:
        """All commits of a pull request, oldest first: the pulls endpoint up to 250, compare beyond."""
        if total is not None and total > PULL_COMMITS_LIMIT and base_sha and head_sha:
            return self.compare_commits(installation_id, full_name, base_sha, head_sha)
        path = f"{_repo_path(full_name)}/pulls/{_number(number, 'pull request number')}/commits"
        commits: list[dict[str, Any]] = []
        for page in self.pages(path, installation_id=installation_id, params={"per_page": PER_PAGE}):
            if not isinstance(page, list):
                raise GitHubError(f"GET {path}: expected a list")
            commits.extend(item for item in page if isinstance(item, dict))
        if len(commits) >= PULL_COMMITS_LIMIT and base_sha and head_sha:
            return self.compare_commits(installation_id, full_name, base_sha, head_sha)
        return commits

    def compare_commits(self, installation_id: int, full_name: str, base: str, head: str) -> list[dict[str, Any]]:
        path = f"{_repo_path(full_name)}/compare/{check_sha(base)}...{check_sha(head)}"
        commits: list[dict[str, Any]] = []
        for page in self.pages(path, installation_id=installation_id, params={"per_page": PER_PAGE}):
            if not isinstance(page, dict) or not isinstance(page.get("commits"), list):
                raise GitHubError(f"GET {path}: expected an object with commits")
            commits.extend(item for item in page["commits"] if isinstance(item, dict))
        return commits

    def list_issue_comments(self, installation_id: int, full_name: str, number: int) -> Iterator[dict[str, Any]]:
        path = f"{_repo_path(full_name)}/issues/{_number(number, 'issue number')}/comments"
        for page in self.pages(path, installation_id=installation_id, params={"per_page": PER_PAGE}):
            if not isinstance(page, list):
                raise GitHubError(f"GET {path}: expected a list")
            yield from (item for item in page if isinstance(item, dict))

    def create_issue_comment(self, installation_id: int, full_name: str, number: int, body: str) -> dict[str, Any]:
        path = f"{_repo_path(full_name)}/issues/{_number(number, 'issue number')}/comments"
        return _object(
            self.request(
                "POST", path, installation_id=installation_id, json={"body": body}, resend_after_server_error=False
            )
        )

    def update_issue_comment(self, installation_id: int, full_name: str, comment_id: int, body: str) -> dict[str, Any]:
        path = f"{_repo_path(full_name)}/issues/comments/{_number(comment_id, 'comment id')}"
        return _object(self.request("PATCH", path, installation_id=installation_id, json={"body": body}))

    def create_check_run(self, installation_id: int, full_name: str, fields: dict[str, Any]) -> dict[str, Any]:
        check_sha(str(fields.get("head_sha", "")))
        path = f"{_repo_path(full_name)}/check-runs"
        return _object(
            self.request("POST", path, installation_id=installation_id, json=fields, resend_after_server_error=False)
        )

    def update_check_run(
        self, installation_id: int, full_name: str, check_run_id: int, fields: dict[str, Any]
    ) -> dict[str, Any]:
        path = f"{_repo_path(full_name)}/check-runs/{_number(check_run_id, 'check run id')}"
        return _object(self.request("PATCH", path, installation_id=installation_id, json=fields))

    def find_check_run(self, installation_id: int, full_name: str, head_sha: str, name: str) -> int | None:
        """The id of this App's check run called `name` on commit `head_sha`, if there is one."""
        path = f"{_repo_path(full_name)}/commits/{check_sha(head_sha)}/check-runs"
        params: dict[str, str | int] = {"check_name": name, "filter": "latest", "per_page": PER_PAGE}
        if self.credentials.app_id.isdigit():
            params["app_id"] = self.credentials.app_id
        body = self.request("GET", path, installation_id=installation_id, params=params).json()
        runs = body.get("check_runs") if isinstance(body, dict) else None
        for run in runs if isinstance(runs, list) else []:
            if not isinstance(run, dict) or run.get("name") != name or not isinstance(run.get("id"), int):
                continue
            app = run.get("app")
            app_id = app.get("id") if isinstance(app, dict) else None
            if app_id is not None and str(app_id) != self.credentials.app_id:
                continue  # another App's check run of the same name
            return int(run["id"])
        return None


def _object(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise GitHubError("expected a JSON object from GitHub", response.status_code)
    return body


def _path_of(url: str) -> str:
    return urlsplit(url).path


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:200]
    return response.text[:200]
