"""The HTTPS client against the loopback server: bounded retries, Retry-After, no redirects."""

from __future__ import annotations

import pytest
from push_server import PushServer

from tracemark.client import MAX_RETRY_AFTER, ApiClient, TransportError


def _client(server: PushServer, sleeps: list[float], retries: int = 3) -> ApiClient:
    return ApiClient(
        server.url, server.state.token, timeout=(5.0, 10.0), retries=retries, backoff=0.25, sleep=sleeps.append
    )


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("3600", MAX_RETRY_AFTER), ("soon", 0.25)])
def test_429_honours_retry_after_up_to_a_cap(server: PushServer, header: str, expected: float) -> None:
    server.state.mode, server.state.retry_after = "429", header
    sleeps: list[float] = []
    response = _client(server, sleeps, retries=2).request("POST", "/v1/attestations", json_body={})
    assert response.status == 429 and response.transient
    assert sleeps == [expected]
    assert len(server.state.attestation_posts()) == 2


def test_4xx_is_not_retried(server: PushServer) -> None:
    server.state.mode = "422"
    sleeps: list[float] = []
    response = _client(server, sleeps).request("POST", "/v1/attestations", json_body={})
    assert (response.status, response.transient, sleeps) == (422, False, [])
    assert response.message == "scripted 422 (e422)"


def test_connection_refused_is_a_transport_error_after_backoff(server: PushServer) -> None:
    url = server.url
    server.close()
    sleeps: list[float] = []
    client = ApiClient(url, "t", timeout=(1.0, 1.0), retries=3, backoff=0.5, sleep=sleeps.append)
    with pytest.raises(TransportError, match="could not connect"):
        client.request("GET", "/v1/whoami")
    assert sleeps == [0.5, 1.0]


def test_presigned_upload_refuses_plain_http_to_a_remote_host(server: PushServer) -> None:
    response = _client(server, []).put_upload("http://example.com/upload", b"x")
    assert response.status == 0 and "non-https" in response.text
