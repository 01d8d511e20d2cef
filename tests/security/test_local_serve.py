"""`tracemark serve` at its network edge (docs/security.md §T6.4): the `/_s3/` forwarder to moto.

moto checks no signature and dispatches on headers, so before this gate anyone who could reach the
serve port could list every object and read Secrets Manager (the JWT signing key, the admin
token) through `/_s3/`. Now only S3 requests signed with the server's own per-run secret pass."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from attest_builders import commit_entry, evidence, public_pem, sign, statement
from botocore.config import Config

from tracemark_common import dsse
from tracemark_local.s3_gate import Credentials, check

CREDS = Credentials("AKIDLOCAL", "local-secret-" + "s" * 20)


def _presigned_environ(url: str, method: str, host: str | None = None, **headers: str) -> dict[str, Any]:
    parts = urlsplit(url)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "RAW_URI": parts.path + "?" + parts.query,
        "HTTP_HOST": host or parts.netloc,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return environ


def _client(creds: Credentials = CREDS) -> Any:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:8787/_s3",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(signature_version="s3v4"),
    )


def test_gate_accepts_only_our_own_unexpired_s3_signatures() -> None:
    """T6.4a: presigned URLs and header-signed boto3 calls pass; anything altered, expired, signed
    with another secret, for another service, or unsigned is refused."""
    params = {"Bucket": "b", "Key": "uploads/acme/up_1", "ContentType": "application/json"}
    url = _client().generate_presigned_url("put_object", Params=params, ExpiresIn=900)
    good = _presigned_environ(url, "PUT", CONTENT_TYPE="application/json")
    assert check(good, CREDS) is None
    assert check(good, CREDS, now=datetime.now(UTC) + timedelta(seconds=901)) == "the presigned URL has expired"
    assert check({**good, "REQUEST_METHOD": "GET"}, CREDS) == "the signature does not match"
    assert check({**good, "RAW_URI": good["RAW_URI"].replace("acme", "other")}, CREDS) is not None
    assert check({**good, "HTTP_HOST": "evil.test"}, CREDS) is not None
    assert check(good, Credentials(CREDS.access_key, "another-secret-" + "x" * 20)) is not None
    assert check({"REQUEST_METHOD": "GET", "RAW_URI": "/_s3/b?list-type=2"}, CREDS) == "the request is not signed"
    forged = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/_s3/",
        "HTTP_X_AMZ_TARGET": "secretsmanager.GetSecretValue",
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={CREDS.access_key}/20260101/us-east-1/secretsmanager/"
        "aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
    }
    assert check(forged, CREDS) == "the credential scope is not for S3"

    captured: dict[str, Any] = {}

    def stop(request: Any, **_: Any) -> None:
        captured["request"] = request
        raise RuntimeError("captured")

    client = _client()
    client.meta.events.register("before-send.s3.*", stop)
    with pytest.raises(RuntimeError):
        client.put_object(Bucket="b", Key="evidence/acme/x y.json", Body=io.BytesIO(b"{}"))
    request = captured["request"]
    parts = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    signed = _presigned_environ(request.url, request.method, **headers)
    signed["RAW_URI"] = parts.path + (("?" + parts.query) if parts.query else "")
    assert check(signed, CREDS) is None
    assert check({**signed, "REQUEST_METHOD": "DELETE"}, CREDS) is not None


def test_serve_refuses_unsigned_s3_and_moto_service_calls(served_stack: Any) -> None:
    """T6.4b: over real HTTP, /_s3/ answers 403 to an unsigned listing and to a Secrets Manager call
    (which moto would otherwise answer with every secret); presigned uploads still work end to end."""
    base = served_stack.url
    listing = requests.get(f"{base}/_s3/tracemark-evidencebucket?list-type=2", timeout=30)
    assert listing.status_code == 403 and "Contents" not in listing.text
    secrets = requests.post(
        f"{base}/_s3/",
        headers={
            "X-Amz-Target": "secretsmanager.ListSecrets",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=tracemark-local/20260101/us-east-1/secretsmanager/"
            "aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
        },
        data="{}",
        timeout=30,
    )
    assert secrets.status_code == 403
    assert "JwtSigningKey" not in secrets.text and "AdminToken" not in secrets.text

    # the legitimate path: a presigned upload of an envelope, then ingest by upload id
    admin = {"Authorization": f"Bearer {served_stack.admin_token}"}
    org = "sec-serve-" + datetime.now(UTC).strftime("%H%M%S%f")
    token = requests.post(f"{base}/v1/orgs", json={"name": org}, headers=admin, timeout=30).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.post(f"{base}/v1/projects", json={"name": "web"}, headers=auth, timeout=30).status_code == 201
    key = dsse.generate_private_key()
    response = requests.post(f"{base}/v1/keys", json={"public_key_pem": public_pem(key)}, headers=auth, timeout=30)
    assert response.status_code == 201, response.text
    upload = requests.post(f"{base}/v1/uploads", json={"kind": "attestation"}, headers=auth, timeout=30).json()
    assert upload["url"].startswith(f"{base}/_s3/") and "X-Amz-Signature=" in upload["url"]
    envelope = sign(statement(evidence("serve-1", commits=[commit_entry(1)]), org=org), key)
    put = requests.put(upload["url"], data=json.dumps(envelope).encode(), headers=upload["headers"], timeout=30)
    assert put.status_code == 200, put.text
    tampered = upload["url"].replace(upload["upload_id"], "up_" + "0" * 32)
    assert requests.put(tampered, data=b"{}", headers=upload["headers"], timeout=30).status_code == 403
    created = requests.post(
        f"{base}/v1/attestations", json={"upload_id": upload["upload_id"]}, headers=auth, timeout=30
    )
    assert created.status_code == 201, created.text
    # and the dashboard is served with its security headers
    page = requests.get(f"{base}/", timeout=30)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def test_dashboard_shows_hostile_session_data_as_text_in_a_real_browser(served_stack: Any, page: Any) -> None:
    """T8.2: a session whose model, agent version, branch, file paths and warnings carry HTML is
    shown literally in headless Chromium; no injected script runs."""
    base = served_stack.url
    admin = {"Authorization": f"Bearer {served_stack.admin_token}"}
    org = "sec-xss-" + datetime.now(UTC).strftime("%H%M%S%f")
    token = requests.post(f"{base}/v1/orgs", json={"name": org}, headers=admin, timeout=30).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    requests.post(f"{base}/v1/projects", json={"name": "web"}, headers=auth, timeout=30)
    key = dsse.generate_private_key()
    requests.post(f"{base}/v1/keys", json={"public_key_pem": public_pem(key)}, headers=auth, timeout=30)
    now = datetime.now(UTC).replace(microsecond=0)
    ev = evidence(
        "xss-1",
        started=(now - timedelta(hours=1)).isoformat(),
        ended=now.isoformat(),
        commits=[commit_entry(1)],
        models=[XSS],
    )
    data = ev["data"]
    data["agent"]["version"] = XSS
    data["git_context"]["branch"] = XSS
    data["warnings"] = [XSS]
    for item in data.get("code_changes", {}).get("files", []):
        item["path"] = "src/" + XSS
    created = requests.post(f"{base}/v1/attestations", json=sign(statement(ev, org=org), key), headers=auth, timeout=30)
    assert created.status_code == 201, created.text

    page.goto(base + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Use token").click()
    page.goto(base + "/#/sessions/xss-1")
    page.locator("#files-table").wait_for()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert "onerror" in page.locator("main").inner_text()  # shown as text
