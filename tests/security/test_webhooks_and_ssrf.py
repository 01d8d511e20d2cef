"""Webhook spoofing and replay (docs/security.md §T5) and server-side request forgery (§T6): the
backend fetches only `GITHUB_API_URL`, with paths built from ids, never a URL from a payload."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Tenant, call, ok
from tracemark_common.github import AppCredentials, GitHubClient, GitHubError, PaginationError, TokenCache
from tracemark_common.prs import runtime
from tracemark_common.prs.signature import signature_for, verify_signature
from tracemark_common.prs.webhook import handle_delivery
from tracemark_local.fake_github import FakeGitHub

EVIL = "http://169.254.169.254/latest/meta-data/"


def _deliver(
    stack: Any,
    event: str,
    body: dict[str, Any],
    *,
    delivery: str | None = None,
    sig: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    if sig is not None:
        headers["X-Hub-Signature-256"] = sig
    status, _, answer = stack.invoke_http("POST", "/github/webhook", body=data, headers=headers)
    return status, answer


def _installation_event(installation_id: int, repo_id: int) -> dict[str, Any]:
    return {
        "action": "created",
        "installation": {"id": installation_id, "account": {"login": "acme", "type": "Organization"}},
        "repositories": [{"id": repo_id, "full_name": f"acme/r{repo_id}", "private": True}],
    }


def _installations(stack: Any) -> set[int]:
    items = ok(stack, "GET", "/v1/installations", stack.admin_token)["items"]
    return {int(item.get("id", item.get("installation_id", 0))) for item in items}


def test_webhooks_need_a_valid_signature_over_the_raw_body(stack: Any) -> None:
    """T5.1: missing, wrong-secret and tampered-body deliveries are 401 and change nothing."""
    secret = stack.secret_value("GitHubWebhookSecretArn")
    installation = 700_000 + uuid.uuid4().int % 100_000
    body = _installation_event(installation, installation + 1)
    data = json.dumps(body).encode()
    tampered = data.replace(b"acme", b"evil")
    for sig in (
        None,
        signature_for("not-the-secret", data),
        signature_for(secret, data)[:-2] + "00",
        "sha1=" + "0" * 40,
        signature_for(secret, data).upper(),
    ):
        status, answer = _deliver(stack, "installation", body, sig=sig)
        assert status == 401, answer
    status, _ = _deliver(stack, "installation", body, raw=tampered, sig=signature_for(secret, data))
    assert status == 401
    assert installation not in _installations(stack)
    status, answer = _deliver(stack, "installation", body, sig=signature_for(secret, data))
    assert (status, answer["outcome"]) == (202, "enrolled")
    assert installation in _installations(stack)


def test_redelivered_webhooks_are_deduplicated(stack: Any) -> None:
    """T5.2: the same X-GitHub-Delivery is acted on once."""
    secret = stack.secret_value("GitHubWebhookSecretArn")
    installation = 800_000 + uuid.uuid4().int % 100_000
    body = _installation_event(installation, installation + 1)
    delivery = str(uuid.uuid4())
    sig = signature_for(secret, json.dumps(body).encode())
    assert _deliver(stack, "installation", body, delivery=delivery, sig=sig)[1]["outcome"] == "enrolled"
    assert _deliver(stack, "installation", body, delivery=delivery, sig=sig)[1]["outcome"] == "duplicate"


def test_signature_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """T5.3: the digest comparison goes through hmac.compare_digest (never ==)."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr("tracemark_common.prs.signature.hmac.compare_digest", spy)
    verify_signature("s3cret", b"{}", signature_for("s3cret", b"{}"))
    with pytest.raises(Exception, match="does not match"):
        verify_signature("s3cret", b"{}", signature_for("other", b"{}"))
    assert len(seen) == 2


def test_pull_request_payload_urls_never_reach_the_workflow(stack: Any, new_tenant: Callable[[], Tenant]) -> None:
    """T6.1: a signed pull_request delivery full of URLs starts the workflow with ids only."""
    tenant = new_tenant()
    installation = 900_000 + uuid.uuid4().int % 90_000
    repo = installation + 1
    secret = stack.secret_value("GitHubWebhookSecretArn")
    enrol = _installation_event(installation, repo)
    _deliver(stack, "installation", enrol, sig=signature_for(secret, json.dumps(enrol).encode()))
    ok(stack, "PUT", f"/v1/installations/{installation}", stack.admin_token, json_body={"org": tenant.org})
    ok(stack, "PUT", f"/v1/repositories/{repo}", tenant.admin, json_body={"project": "web"})

    class Spy:
        def __init__(self) -> None:
            self.started: list[tuple[str, dict[str, Any]]] = []

        def start(self, name: str, payload: dict[str, Any]) -> None:
            self.started.append((name, payload))

        def status(self, name: str) -> str | None:
            return None

    spy = Spy()
    hostile = {
        "action": "opened",
        "number": 7,
        "installation": {"id": installation},
        "repository": {"id": repo, "full_name": f"acme/r{repo}", "url": EVIL, "pulls_url": EVIL},
        "pull_request": {"url": EVIL, "commits_url": EVIL, "head": {"sha": "f" * 40, "repo": {"url": EVIL}}},
    }
    result = handle_delivery("pull_request", str(uuid.uuid4()), hostile, store=runtime.store(), starter=spy)
    assert result.outcome == "started"
    ((_, payload),) = spy.started
    assert set(payload) == {"installation_id", "repository_id", "pr_number", "delivery_id", "action"}
    assert EVIL not in json.dumps(payload)


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_github_client_stays_on_its_own_origin(app_key: tuple[str, str]) -> None:
    """T6.2: a `Link` to another host stops pagination before any request goes there; paths are
    built from validated ids only; redirects are not followed; the base URL must be http(s)."""
    with FakeGitHub(app_id="77", public_key_pem=app_key[1], max_lifetime_seconds=60) as gh:
        gh.add_repo("acme/app", repo_id=1, installation_id=1)
        gh.add_pull("acme/app", 1, [f"c{i}" for i in range(150)])
        client = GitHubClient(gh.url, AppCredentials("77", app_key[0]), sleep=lambda _: None, token_cache=TokenCache())
        assert len(client.list_pull_commits(1, "acme/app", 1)) == 150  # same-origin pagination works
        gh.link_base = "http://127.0.0.1:9"  # a hostile Link header
        with pytest.raises(PaginationError):
            client.list_pull_commits(1, "acme/app", 1)
        for bad in ("acme/app/../../admin", "acme/app?x=1", "http://evil/x", "acme"):
            with pytest.raises(GitHubError):
                client.get_pull(1, bad, 1)
        with pytest.raises(GitHubError):
            GitHubClient("file:///etc/passwd", AppCredentials("77", app_key[0]))

    sent: list[dict[str, Any]] = []

    class Redirecting(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            sent.append({"url": url, **kwargs})
            response = requests.Response()
            response.status_code = 302
            response.headers["Location"] = EVIL
            return response

    client = GitHubClient(
        "https://api.github.test",
        AppCredentials("77", app_key[0]),
        session=Redirecting(),
        sleep=lambda _: None,
        token_cache=TokenCache(),
        max_attempts=1,
    )
    with pytest.raises(GitHubError, match="302"):  # not followed, and a clear error
        client.installation_token(1)
    assert len(sent) == 1
    assert sent and all(call_["allow_redirects"] is False for call_ in sent)
    assert all(str(call_["url"]).startswith("https://api.github.test/") for call_ in sent)


@pytest.mark.parametrize("ref", ["https://evil.example.test/p.yaml", "file:///etc/passwd", "oci://r/p", "./p.rego"])
def test_contracts_cannot_make_the_server_fetch_policies(
    stack: Any, new_tenant: Callable[[], Tenant], ref: str
) -> None:
    """T6.3: a contract `ref:` is only `builtin:` or `policy:`; anything else is refused at upload."""
    tenant = new_tenant()
    contract = (
        "apiVersion: chainloop.dev/v1\nkind: Contract\nmetadata: {name: c}\nspec:\n  policies:\n    materials:\n"
        f"      - ref: {ref}\n"
    )
    status, body = call(
        stack,
        "PUT",
        "/v1/projects/web/contract",
        tenant.admin,
        body=contract,
        headers={"Content-Type": "application/yaml"},
    )
    assert 400 <= status < 500, body
    assert ok(stack, "GET", "/v1/projects/web/contract", tenant.admin)["contract"] is None


def test_cli_sends_no_token_to_presigned_upload_urls() -> None:
    """T6.5: the presigned URL the server returns gets the bytes but never the bearer token (nor a
    `~/.netrc` credential), redirects are not followed, and plain http is refused off loopback."""
    from tracemark.client import ApiClient

    prepared: list[requests.PreparedRequest] = []
    redirects: list[Any] = []

    class Recording(requests.Session):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            prepared.append(request)
            redirects.append(kwargs.get("allow_redirects"))
            response = requests.Response()
            response.status_code = 200
            response._content = b""
            return response

    client = ApiClient("https://tracemark.example.test", "secret-bearer-" + "t" * 30, session=Recording())
    answer = client.put_upload("http://uploads.example.test/x", b"data")
    assert answer.status == 0 and not prepared  # refused before any request
    client.put_upload("https://bucket.s3.example.test/k?X-Amz-Signature=abc", b"data", {"Content-Type": "a/b"})
    client.request("GET", "/v1/whoami")
    upload, api = prepared
    assert "Authorization" not in upload.headers
    assert api.headers["Authorization"].startswith("Bearer secret-bearer-")
    assert redirects == [False, False]
