"""Fixtures for the GitHub area: an App key pair, the fake GitHub on loopback, a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tracemark_common.github import AppCredentials, GitHubClient, TokenCache
from tracemark_local.fake_github import FakeGitHub

APP_ID = "4242"


@pytest.fixture(scope="session")
def app_keys() -> tuple[str, str]:
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


@pytest.fixture
def fake_github(app_keys: tuple[str, str]) -> Iterator[FakeGitHub]:
    with FakeGitHub(app_id=APP_ID, public_key_pem=app_keys[1], max_lifetime_seconds=120) as gh:
        yield gh


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(fake_github: FakeGitHub, app_keys: tuple[str, str], sleeps: Sleeps) -> GitHubClient:
    return GitHubClient(fake_github.url, AppCredentials(APP_ID, app_keys[0]), sleep=sleeps, token_cache=TokenCache())
