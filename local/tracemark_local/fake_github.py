"""A fake GitHub REST API on loopback, for tests and local demos (`GITHUB_API_URL`).

It implements the endpoints the Tracemark GitHub client calls, with the shapes of the real
exchanges in `tests/fixtures/github/`, over real HTTP (werkzeug, threaded, port 0):

- `POST /app/installations/{id}/access_tokens` (App JWT, checked against the App's public key
  when one is given)
- `GET /repos/{o}/{r}/pulls/{n}`, `GET .../pulls/{n}/commits` (paginated, at most 250),
  `GET .../compare/{base}...{head}` (paginated)
- `GET|POST .../issues/{n}/comments`, `PATCH .../issues/comments/{id}` (65,536-character limit)
- `POST .../check-runs`, `PATCH .../check-runs/{id}`, `GET .../commits/{ref}/check-runs`
- `GET .../issues/{n}/labels`

Every call is recorded (`calls`); faults can be injected per endpoint (`fail(...)`, or over HTTP
with `POST /_fake/faults`): the next N requests matching a method and a path regex answer any
status with any headers (`Retry-After`, `x-ratelimit-*`), the secondary-rate-limit 403, or a
hostile `Link` header. Tests set up a small in-memory model: repositories, pull requests, commits
with messages, labels.

    with FakeGitHub() as gh:
        gh.add_repo("acme/app", repo_id=42, installation_id=7)
        pr = gh.add_pull("acme/app", 1, ["feat: x\n\nTracemark-Sessions: s1"])
        ...  # point GITHUB_API_URL at gh.url
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

COMMENT_LIMIT = 65_536
PULL_COMMITS_CAP = 250
APP_SLUG = "tracemark"


def _now_iso(clock: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if clock is None else clock, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_sha(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()


@dataclass
class FakeCommit:
    sha: str
    message: str
    parents: list[str] = field(default_factory=list)
    author: str = "dev"


@dataclass
class FakePull:
    number: int
    title: str
    base_sha: str
    commits: list[FakeCommit]
    state: str = "open"
    merged: bool = False
    draft: bool = False
    labels: list[str] = field(default_factory=list)
    head_ref: str = "feature"
    base_ref: str = "main"
    deleted: bool = False

    @property
    def head_sha(self) -> str:
        return self.commits[-1].sha if self.commits else self.base_sha


@dataclass
class FakeRepo:
    full_name: str
    repo_id: int
    installation_id: int
    pulls: dict[int, FakePull] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    apply: bool = False  # the request takes effect, then the error is answered


class FakeGitHub:
    """The fake server and its model. Thread-safe; stops itself after `max_lifetime_seconds`."""

    def __init__(
        self,
        *,
        app_id: str = "1",
        public_key_pem: str | None = None,
        max_lifetime_seconds: float = 600.0,
        port: int = 0,
    ) -> None:
        self.app_id = app_id
        self.public_key_pem = public_key_pem
        self.repos: dict[str, FakeRepo] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.tokens: dict[str, float] = {}
        self.faults: list[Fault] = []
        self.link_base: str | None = None  # when set, `Link` headers point there (a hostile server)
        self.token_lifetime_seconds = 3600.0
        self._ids = itertools.count(1_000_001)
        self._lock = threading.RLock()
        self._max_lifetime = max_lifetime_seconds
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.url = ""

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        self._server = make_server("127.0.0.1", self._port, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-github", daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self._max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the model -----------------------------------------------------------------------------------

    def add_repo(self, full_name: str, *, repo_id: int = 1, installation_id: int = 1) -> FakeRepo:
        with self._lock:
            repo = FakeRepo(full_name, repo_id, installation_id)
            self.repos[full_name] = repo
            return repo

    def add_pull(
        self,
        full_name: str,
        number: int,
        messages: list[str],
        *,
        title: str = "A change",
        labels: list[str] | None = None,
        shas: list[str] | None = None,
    ) -> FakePull:
        """A pull request with one commit per message (`shas` fixes their ids)."""
        with self._lock:
            base = fake_sha(full_name, "base", number)
            pull = FakePull(number, title, base, [], labels=list(labels or []))
            self.repos[full_name].pulls[number] = pull
            self._append(full_name, pull, messages, shas)
            return pull

    def push(self, full_name: str, number: int, messages: list[str], *, shas: list[str] | None = None) -> str:
        """New commits on the pull request's branch; returns the new head sha."""
        with self._lock:
            pull = self.repos[full_name].pulls[number]
            self._append(full_name, pull, messages, shas)
            return pull.head_sha

    def _append(self, full_name: str, pull: FakePull, messages: list[str], shas: list[str] | None) -> None:
        for index, message in enumerate(messages):
            parent = pull.head_sha
            sha = shas[index] if shas else fake_sha(full_name, pull.number, len(pull.commits), message, parent)
            pull.commits.append(FakeCommit(sha, message, [parent]))

    def pull(self, full_name: str, number: int) -> FakePull:
        return self.repos[full_name].pulls[number]

    def comments_on(self, full_name: str, number: int) -> list[dict[str, Any]]:
        issue_url = f"/repos/{full_name}/issues/{number}"
        with self._lock:
            return [c for c in self.comments.values() if c["issue_url"].endswith(issue_url)]

    def check_runs_for(self, full_name: str, head_sha: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r
                for r in self.check_runs.values()
                if r["_repo"] == full_name and (head_sha is None or r["head_sha"] == head_sha)
            ]

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        apply: bool = False,
    ) -> None:
        """The next `times` calls matching `method` and `path_regex` (searched) answer `status`.
        With `apply`, each such request takes effect first (a gateway timing out after GitHub
        wrote the comment, say): the client cannot tell whether it did."""
        default = {"message": "Server Error"} if status >= 500 else {"message": f"injected {status}"}
        with self._lock:
            self.faults.append(
                Fault(
                    method.upper(), re.compile(path_regex), status, times, dict(headers or {}), body or default, apply
                )
            )

    def fail_secondary_rate_limit(self, method: str, path_regex: str, *, retry_after: int = 1, times: int = 1) -> None:
        self.fail(
            method,
            path_regex,
            403,
            times=times,
            headers={"Retry-After": str(retry_after)},
            body={
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            },
        )

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        pattern = re.compile(path_regex)
        return [c for c in self.calls if c.method == method.upper() and pattern.search(c.path)]

    def api_calls(self) -> list[Call]:
        """Calls other than installation-token requests."""
        return [c for c in self.calls if not c.path.startswith("/app/")]

    # -- HTTP ------------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = Call(request.method, request.path, dict(request.args), body, dict(request.headers))
        with self._lock:
            control = request.path.startswith("/_fake/")  # the control API is not GitHub's
            if not control:
                self.calls.append(call)
            fault = None if control else self._fault(request)
            if fault is None or fault.apply:
                response = self._route(request, body)
            if fault is not None:
                response = _json(fault.status, fault.body, fault.headers)
        call.status = response.status_code
        return response

    def _fault(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.path.search(request.path):
                fault.times -= 1
                return fault
        return None

    def _route(self, request: Request, body: Any) -> Response:
        path = request.path
        method = request.method
        if path.startswith("/_fake/"):
            return self._control(method, path, body)
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if match and method == "POST":
            return self._access_token(request, int(match.group(1)))
        if not self._authorised(request):
            return _json(401, {"message": "Bad credentials", "status": "401"})
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)", path)
        if not match or match.group(1) not in self.repos:
            return _not_found()
        repo = self.repos[match.group(1)]
        return self._repo_route(request, repo, match.group(2), body)

    def _repo_route(self, request: Request, repo: FakeRepo, rest: str, body: Any) -> Response:  # noqa: PLR0911
        method = request.method
        if m := re.fullmatch(r"/pulls/(\d+)", rest):
            pull = self._live_pull(repo, int(m.group(1)))
            return _json(200, self._pull_json(repo, pull)) if pull and method == "GET" else _not_found()
        if m := re.fullmatch(r"/pulls/(\d+)/commits", rest):
            pull = self._live_pull(repo, int(m.group(1)))
            if not pull or method != "GET":
                return _not_found()
            items = [self._commit_json(repo, c) for c in pull.commits[:PULL_COMMITS_CAP]]
            return self._paged(request, items)
        if m := re.fullmatch(r"/compare/([0-9a-f]+)\.\.\.([0-9a-f]+)", rest):
            return self._compare(request, repo, m.group(1), m.group(2))
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            if not self._live_pull(repo, int(m.group(1))):
                return _not_found()
            if method == "GET":
                return self._paged(request, [_public(c) for c in self.comments_on(repo.full_name, int(m.group(1)))])
            if method == "POST":
                return self._create_comment(repo, int(m.group(1)), body)
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            return self._update_comment(repo, int(m.group(1)), body)
        if m := re.fullmatch(r"/issues/(\d+)/labels", rest):
            pull = self._live_pull(repo, int(m.group(1)))
            return self._paged(request, [{"name": n} for n in pull.labels]) if pull else _not_found()
        if rest == "/check-runs" and method == "POST":
            return self._create_check_run(repo, body)
        if (m := re.fullmatch(r"/check-runs/(\d+)", rest)) and method == "PATCH":
            return self._update_check_run(repo, int(m.group(1)), body)
        if (m := re.fullmatch(r"/commits/([^/]+)/check-runs", rest)) and method == "GET":
            runs = [_public(r) for r in self.check_runs_for(repo.full_name, m.group(1))]
            name = request.args.get("check_name")
            runs = [r for r in runs if name is None or r["name"] == name]
            return _json(200, {"total_count": len(runs), "check_runs": runs})
        return _not_found()

    def _control(self, method: str, path: str, body: Any) -> Response:
        """The model over HTTP, for demos driven from another process (never part of GitHub's API):
        `POST /_fake/repos {"full_name", "repo_id", "installation_id"}`,
        `POST /_fake/pulls {"full_name", "number", "messages", "shas"?, "title"?, "head_ref"?, "labels"?}`
        (`shas`: the commits' real ids, one per message, e.g. from a local repository),
        `POST /_fake/push {"full_name", "number", "messages"}`,
        `POST /_fake/labels {"full_name", "number", "labels"}`, `POST /_fake/close {"full_name", "number"}`,
        `POST /_fake/faults {"method", "path", "status", "times"?, "headers"?, "body"?, "apply"?}` (`fail`),
        `DELETE /_fake/faults` (clear them), `GET /_fake/state` (comments, check runs, calls, faults)."""
        data = body if isinstance(body, dict) else {}
        try:
            if method == "GET" and path == "/_fake/state":
                return _json(
                    200,
                    {
                        "comments": list(self.comments.values()),
                        "check_runs": [_public(r) for r in self.check_runs.values()],
                        "calls": [{"method": c.method, "path": c.path, "status": c.status} for c in self.calls],
                        "faults": [
                            {"method": f.method, "path": f.path.pattern, "status": f.status, "remaining": f.times}
                            for f in self.faults
                        ],
                    },
                )
            if path == "/_fake/faults":
                return self._control_faults(method, data)
            if method != "POST":
                return _not_found()
            if path == "/_fake/repos":
                repo = self.add_repo(
                    data["full_name"], repo_id=int(data["repo_id"]), installation_id=int(data["installation_id"])
                )
                return _json(201, {"full_name": repo.full_name})
            if path == "/_fake/pulls":
                pull = self.add_pull(
                    data["full_name"],
                    int(data["number"]),
                    list(data["messages"]),
                    title=str(data.get("title") or "A change"),
                    labels=list(data.get("labels") or []),
                    shas=_shas(data.get("shas"), len(data["messages"])),
                )
                if data.get("head_ref"):
                    pull.head_ref = str(data["head_ref"])
                return _json(201, {"number": pull.number, "head_sha": pull.head_sha})
            pull = self.pull(data["full_name"], int(data["number"]))
            if path == "/_fake/push":
                return _json(200, {"head_sha": self.push(data["full_name"], pull.number, list(data["messages"]))})
            if path == "/_fake/labels":
                pull.labels = [str(label) for label in data["labels"]]
                return _json(200, {"labels": pull.labels})
            if path == "/_fake/close":
                pull.state = "closed"
                return _json(200, {"state": pull.state})
        except (KeyError, TypeError, ValueError, re.error) as exc:
            return _json(422, {"message": f"bad control request: {exc!r}"})
        return _not_found()

    def _control_faults(self, method: str, data: dict[str, Any]) -> Response:
        """`POST /_fake/faults` adds one (as `fail`), `DELETE /_fake/faults` clears them."""
        if method == "DELETE":
            self.faults.clear()
            return _json(200, {"faults": 0})
        if method != "POST":
            return _not_found()
        headers = data.get("headers") or {}
        if not isinstance(headers, dict):
            raise TypeError("headers must be an object")
        self.fail(
            str(data["method"]),
            str(data["path"]),
            int(data["status"]),
            times=int(data.get("times", 1)),
            headers={str(k): str(v) for k, v in headers.items()},
            body=data.get("body"),
            apply=bool(data.get("apply", False)),
        )
        return _json(201, {"faults": len(self.faults)})

    def _live_pull(self, repo: FakeRepo, number: int) -> FakePull | None:
        pull = repo.pulls.get(number)
        return None if pull is None or pull.deleted else pull

    def _access_token(self, request: Request, installation_id: int) -> Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not self._valid_app_jwt(auth[len("Bearer ") :]):
            return _json(401, {"message": "A JSON web token could not be decoded"})
        if not any(r.installation_id == installation_id for r in self.repos.values()):
            return _not_found()
        token = f"ghs_fake{next(self._ids)}"
        expires = time.time() + self.token_lifetime_seconds
        self.tokens[token] = expires
        return _json(
            201,
            {
                "token": token,
                "expires_at": _now_iso(expires),
                "permissions": {"checks": "write", "contents": "read", "metadata": "read", "pull_requests": "write"},
                "repository_selection": "selected",
            },
        )

    def _valid_app_jwt(self, token: str) -> bool:
        import jwt

        try:
            if self.public_key_pem is None:
                claims = jwt.decode(token, options={"verify_signature": False})
            else:
                claims = jwt.decode(token, self.public_key_pem, algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        exp, iat = claims.get("exp"), claims.get("iat")
        return (
            str(claims.get("iss")) == self.app_id
            and isinstance(exp, int)
            and isinstance(iat, int)
            and exp - iat <= 600
            and exp > time.time()
        )

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        expires = self.tokens.get(token)
        return expires is not None and expires > time.time()

    def _paged(self, request: Request, items: list[Any]) -> Response:
        try:
            per_page = max(1, min(100, int(request.args.get("per_page", "30"))))
            page = max(1, int(request.args.get("page", "1")))
        except ValueError:
            return _json(422, {"message": "Invalid pagination"})
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = self._link_headers(request, page, last, per_page)
        return _json(200, chunk, headers)

    def _link_headers(self, request: Request, page: int, last: int, per_page: int) -> dict[str, str]:
        base = (self.link_base or self.url) + request.path
        extra = {k: v for k, v in request.args.items() if k not in ("page", "per_page")}

        def link(n: int, rel: str) -> str:
            return f'<{base}?{urlencode({**extra, "per_page": per_page, "page": n})}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return {"Link": ", ".join(links)} if links else {}

    def _compare(self, request: Request, repo: FakeRepo, base: str, head: str) -> Response:
        for pull in repo.pulls.values():
            shas = [c.sha for c in pull.commits]
            if pull.base_sha == base and head in shas:
                commits = [self._commit_json(repo, c) for c in pull.commits[: shas.index(head) + 1]]
                paged = self._paged(request, commits)
                page_items = json.loads(paged.get_data())
                body = {
                    "status": "ahead",
                    "ahead_by": len(commits),
                    "behind_by": 0,
                    "total_commits": len(commits),
                    "commits": page_items,
                    "files": [],
                }
                return _json(200, body, {k: v for k, v in paged.headers.items() if k == "Link"})
        return _not_found()

    def _create_comment(self, repo: FakeRepo, number: int, body: Any) -> Response:
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return _json(422, {"message": 'Invalid request.\n\n"body" wasn\'t supplied.'})
        if len(text) > COMMENT_LIMIT:
            return _json(422, {"message": "Body is too long (maximum is 65536 characters)"})
        comment_id = next(self._ids)
        now = _now_iso()
        base = f"{self.url}/repos/{repo.full_name}"
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"{base}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{repo.full_name}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"{base}/issues/{number}",
            "user": {"login": f"{APP_SLUG}[bot]", "id": 1, "type": "Bot"},
            "created_at": now,
            "updated_at": now,
            "author_association": "NONE",
            "body": text,
            "performed_via_github_app": {"id": int(self.app_id) if self.app_id.isdigit() else 1, "slug": APP_SLUG},
        }
        self.comments[comment_id] = comment
        return _json(201, comment)

    def _update_comment(self, repo: FakeRepo, comment_id: int, body: Any) -> Response:
        comment = self.comments.get(comment_id)
        if comment is None or f"/repos/{repo.full_name}/" not in comment["url"]:
            return _not_found()
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return _json(422, {"message": 'Invalid request.\n\n"body" wasn\'t supplied.'})
        if len(text) > COMMENT_LIMIT:
            return _json(422, {"message": "Body is too long (maximum is 65536 characters)"})
        comment["body"] = text
        comment["updated_at"] = _now_iso()
        return _json(200, comment)

    def _create_check_run(self, repo: FakeRepo, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body.get("head_sha"):
            return _json(422, {"message": "Invalid request. name and head_sha are required"})
        problem = _check_run_problem(body)
        if problem:
            return _json(422, {"message": problem})
        run_id = next(self._ids)
        run: dict[str, Any] = {
            "id": run_id,
            "node_id": f"CR_{run_id}",
            "head_sha": body["head_sha"],
            "external_id": body.get("external_id", ""),
            "url": f"{self.url}/repos/{repo.full_name}/check-runs/{run_id}",
            "html_url": f"https://github.com/{repo.full_name}/runs/{run_id}",
            "details_url": body.get("details_url"),
            "status": body.get("status", "queued"),
            "conclusion": body.get("conclusion"),
            "started_at": body.get("started_at", _now_iso()),
            "completed_at": body.get("completed_at"),
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0},
            "name": body["name"],
            "check_suite": {"id": 1},
            "app": {"id": int(self.app_id) if self.app_id.isdigit() else 1, "slug": APP_SLUG},
            "pull_requests": [],
            "_repo": repo.full_name,
        }
        _apply_output(run, body)
        if run["conclusion"] and run["status"] != "completed":
            run["status"] = "completed"
        self.check_runs[run_id] = run
        return _json(201, _public(run))

    def _update_check_run(self, repo: FakeRepo, run_id: int, body: Any) -> Response:
        run = self.check_runs.get(run_id)
        if run is None or run["_repo"] != repo.full_name or not isinstance(body, dict):
            return _not_found()
        problem = _check_run_problem({**run, **body})
        if problem:
            return _json(422, {"message": problem})
        for key in ("name", "status", "conclusion", "started_at", "completed_at", "details_url", "external_id"):
            if key in body:
                run[key] = body[key]
        if body.get("conclusion"):
            run["status"] = "completed"
        _apply_output(run, body)
        return _json(200, _public(run))

    def _pull_json(self, repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
        repo_json = {"id": repo.repo_id, "full_name": repo.full_name, "name": repo.full_name.split("/")[1]}
        return {
            "id": repo.repo_id * 100_000 + pull.number,
            "number": pull.number,
            "state": pull.state,
            "merged": pull.merged,
            "draft": pull.draft,
            "title": pull.title,
            "html_url": f"https://github.com/{repo.full_name}/pull/{pull.number}",
            "user": {"login": "dev", "type": "User"},
            "labels": [{"name": name} for name in pull.labels],
            "commits": len(pull.commits),
            "head": {"sha": pull.head_sha, "ref": pull.head_ref, "repo": repo_json},
            "base": {"sha": pull.base_sha, "ref": pull.base_ref, "repo": repo_json},
        }

    def _commit_json(self, repo: FakeRepo, commit: FakeCommit) -> dict[str, Any]:
        person = {"name": commit.author, "email": f"{commit.author}@example.com", "date": _now_iso()}
        return {
            "sha": commit.sha,
            "node_id": f"C_{commit.sha[:12]}",
            "commit": {
                "author": person,
                "committer": person,
                "message": commit.message,
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            "html_url": f"https://github.com/{repo.full_name}/commit/{commit.sha}",
            "author": {"login": commit.author},
            "committer": {"login": commit.author},
            "parents": [{"sha": p} for p in commit.parents],
        }


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: `calls` records every request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _apply_output(run: dict[str, Any], body: dict[str, Any]) -> None:
    output = body.get("output")
    if isinstance(output, dict):
        run["output"] = {
            "title": output.get("title"),
            "summary": output.get("summary"),
            "text": output.get("text"),
            "annotations_count": run["output"].get("annotations_count", 0) + len(output.get("annotations") or []),
        }


def _check_run_problem(body: dict[str, Any]) -> str | None:
    if body.get("status") == "completed" and not body.get("conclusion"):
        return "conclusion is required when status is completed"
    output = body.get("output")
    if isinstance(output, dict):
        if not output.get("title") or "summary" not in output:
            return "output.title and output.summary are required"
        for key in ("summary", "text"):
            if isinstance(output.get(key), str) and len(output[key]) > 65_535:
                return f"output.{key} is too long (maximum is 65535 characters)"
        if len(output.get("annotations") or []) > 50:
            return "at most 50 annotations per request"
    return None


def _shas(value: Any, count: int) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != count or not all(_SHA.fullmatch(str(v)) for v in value):
        raise ValueError("shas must be one 40-hex commit id per message")
    return [str(v) for v in value]


_SHA = re.compile(r"[0-9a-f]{40}")


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")
    response.headers["X-GitHub-Api-Version-Selected"] = "2022-11-28"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _not_found() -> Response:
    return _json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})


def main(argv: list[str] | None = None) -> int:
    """`python -m tracemark_local.fake_github [--port N] [--app-id ID] [--public-key PEM_FILE]`:
    run the fake GitHub for a local demo (point `GITHUB_API_URL` at the printed URL) until Ctrl-C
    or `--max-seconds`; set it up through the `/_fake/...` control endpoints."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="fake_github", description=main.__doc__)
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: any free port)")
    parser.add_argument("--app-id", default="1")
    parser.add_argument("--public-key", help="PEM file of the App's public key (JWTs are checked against it)")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    public = None
    if args.public_key:
        with open(args.public_key, encoding="utf-8") as handle:  # noqa: PTH123 - a CLI path
            public = handle.read()
    fake = FakeGitHub(
        app_id=args.app_id, public_key_pem=public, max_lifetime_seconds=args.max_seconds, port=args.port
    ).start()
    print(f"fake GitHub on {fake.url} (GITHUB_API_URL)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait(args.max_seconds)
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
