"""pre-push against the real backend: the CLI's attestation goes through the HTTP API emulator
into the real ApiFunction (DSSE verification with the registered key, statement and schema
checks, storage on moto), and the presigned transcript upload lands in the evidence bucket.

The transport is a small adapter from the CLI's client interface to `stack.invoke_http`; the
presigned PUT goes to moto's S3 through `requests`, which `mock_aws` intercepts."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from push_helpers import git

from tracemark import credentials
from tracemark.capture.records import CommitRecord, FileChange, SessionLines, SessionState
from tracemark.client import ApiResponse
from tracemark.push import ZERO_SHA, run_pre_push
from tracemark_common import dsse

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "claude" / "claude_transcript_edits_structuredpatch.jsonl"
SERVER = "https://api.tracemark.test"


class StackClient:
    """The CLI client interface, served by the in-process stack."""

    def __init__(self, stack: Any, token: str) -> None:
        self.stack, self.token = stack, token

    def request(self, method: str, path: str, *, json_body: Any = None) -> ApiResponse:
        status, _, body = self.stack.invoke_http(
            method, path, json_body=json_body, headers={"Authorization": f"Bearer {self.token}"}
        )
        return ApiResponse(status=status, body=body, text=json.dumps(body) if body is not None else "")

    def put_upload(self, url: str, data: Any, headers: dict[str, str] | None = None) -> ApiResponse:
        payload = data if isinstance(data, bytes) else data.read()
        response = requests.put(url, data=payload, headers=headers or {}, timeout=10)
        return ApiResponse(status=response.status_code, body=None, text=response.text)


class Records:
    def __init__(self, session: SessionState, commit: CommitRecord) -> None:
        self._session, self._commit = session, commit

    def session(self, session_id: str) -> SessionState | None:
        return self._session if session_id == self._session.session_id else None

    def commit(self, sha: str) -> CommitRecord | None:
        return self._commit if sha == self._commit.sha else None


def _call(stack: Any, method: str, path: str, token: str, status: int, **kwargs: Any) -> Any:
    code, _, body = stack.invoke_http(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert code == status, body
    return body


def test_pre_push_is_accepted_by_the_real_backend(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an organisation, a project and a member whose signing key is registered
    org = "cli-" + uuid.uuid4().hex[:10]
    admin = _call(stack, "POST", "/v1/orgs", stack.admin_token, 201, json_body={"name": org})["token"]
    _call(stack, "POST", "/v1/projects", admin, 201, json_body={"name": "demo"})
    member = _call(stack, "POST", "/v1/tokens", admin, 201, json_body={"subject": "dev", "kind": "user"})["token"]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TRACEMARK_SERVER", raising=False)
    monkeypatch.delenv("TRACEMARK_TOKEN", raising=False)
    key = dsse.generate_private_key()
    credentials.save_key_pair(dsse.private_key_pem(key), dsse.public_key_pem(key.public_key()))
    registered = _call(
        stack, "POST", "/v1/keys", member, 201, json_body={"public_key_pem": dsse.public_key_pem(key.public_key())}
    )
    assert registered["keyid"] == dsse.keyid(key.public_key())
    credentials.save_credentials(SERVER, member, registered["keyid"])
    # and a repository with one AI commit
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".tracemark.yml").write_text("projectName: demo\n")
    (root / "app.py").write_text("".join(f"x = {i}\n" for i in range(12)))
    git(root, "add", ".")
    session_id = "b2273d7d-fb20-41f7-93fb-265486aae975"
    git(root, "commit", "-q", "-m", f"feat: app\n\nTracemark-Sessions: {session_id}")
    sha = git(root, "rev-parse", "HEAD").strip()
    records = Records(
        SessionState(session_id=session_id, transcript_path=str(FIXTURE)),
        CommitRecord(
            sha=sha,
            parents=[],
            committed_at=0,
            recorded_at="",
            session_ids=[session_id],
            trailer_session_ids=[session_id],
            rewritten_from=[],
            files=[FileChange("app.py", "A", 12, 0, 2, {session_id: SessionLines([(1, 10)], 10, 0)})],
        ),
    )
    out = io.StringIO()
    # When the commit is pushed
    code = run_pre_push(
        root,
        "origin",
        "git@github.com:o/r.git",
        [("refs/heads/main", sha, "refs/heads/main", ZERO_SHA)],
        out=out,
        records=records,
        client_factory=lambda _server, token: StackClient(stack, token),
    )
    # Then the backend accepted it, with our evidence and the transcript bound to it
    assert code == 0, out.getvalue()
    assert f"session {session_id} attested" in out.getvalue()
    stored = _call(stack, "GET", f"/v1/sessions/{session_id}", member, 200)
    text = json.dumps(stored)
    assert sha in text
    assert '"output_tokens": 1118' in text  # the real transcript's numbers reached the server
    assert not list((tmp_path / "repo" / ".git" / "tracemark" / "spool").glob("*.json"))
