"""Fixtures for the GitHub area: an App key pair, the fake GitHub on loopback, a client, and
builders for sessions as the store returns them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tracemark_common.github import AppCredentials, GitHubClient, TokenCache
from tracemark_common.store.records import SessionRecord
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


FIXTURE = Path(__file__).parents[2] / "fixtures" / "github"
CHAINLOOP = Path(__file__).parents[2] / "fixtures" / "chainloop" / "ai-coding-session-with-attribution.json"


def base_envelope() -> dict[str, Any]:
    return {
        "chainloop.material.evidence.id": "CHAINLOOP_AI_CODING_SESSION",
        "schema": "https://schemas.chainloop.dev/aicodingsession/0.1/ai-coding-session.schema.json",
        "data": {
            "schema_version": "v1",
            "agent": {"name": "claude-code", "version": "2.1.92"},
            "session": {
                "id": "s",
                "started_at": "2026-04-06T17:59:31Z",
                "ended_at": "2026-04-06T18:09:31Z",
                "duration_seconds": 600,
            },
            "model": {"primary": "claude-opus-4-6", "models_used": ["claude-opus-4-6"]},
            "usage": {"input_tokens": 1200, "output_tokens": 340, "estimated_cost_usd": 0.42},
            "conversation": {"user_messages": 3, "assistant_messages": 5, "total_messages": 8},
            "tools_used": {
                "total_invocations": 12,
                "tracemark_shell_commands": [{"command": "pytest -q", "exit_code": 0, "after_last_edit": True}],
            },
            "code_changes": {
                "lines_added": 10,
                "lines_removed": 2,
                "ai_lines_added": 8,
                "ai_lines_removed": 1,
                "files": [
                    {
                        "path": "src/app.py",
                        "status": "modified",
                        "lines_added": 10,
                        "lines_removed": 2,
                        "attribution": "ai",
                        "line_ranges": [{"start": 3, "end": 10}],
                    },
                ],
            },
            "warnings": [],
        },
    }


class Sessions:
    """An in-memory `SessionLookup`."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], SessionRecord] = {}
        self.calls: list[tuple[str, str]] = []

    def add(
        self,
        session_id: str,
        commits: list[str],
        *,
        org: str = "acme",
        envelope: dict[str, Any] | None = None,
        policy_results: list[dict[str, Any]] | None = None,
        rewritten_from: dict[str, list[str]] | None = None,
        transcript: bool = True,
    ) -> SessionRecord:
        env = copy.deepcopy(envelope or base_envelope())
        env["data"]["session"]["id"] = session_id
        record = SessionRecord(
            id=session_id,
            org=org,
            project="web",
            user="dev",
            user_kind="user",
            agent="claude-code",
            started_at="2026-04-06T17:59:31Z",
            ended_at="2026-04-06T18:09:31Z",
            at="2026-04-06T18:09:31Z",
            received_at="2026-04-06T18:10:00Z",
            last_received_at="2026-04-06T18:10:00Z",
            commits=commits,
            rewritten_from=rewritten_from or {},
            digests=["d"],
            policy_results=policy_results or [],
            gated=False,
            evidence_key="k",
            summary={},
            facts={},
            transcript={"sha256": "0" * 64, "size": 10} if transcript else None,
            evidence=env,
        )
        self.records[(org, session_id)] = record
        return record

    def get_session(self, org: str, session_id: str) -> SessionRecord | None:
        self.calls.append((org, session_id))
        return copy.deepcopy(self.records.get((org, session_id)))


@pytest.fixture
def sessions() -> Sessions:
    return Sessions()


@pytest.fixture
def envelope() -> dict[str, Any]:
    return base_envelope()


@pytest.fixture
def chainloop_envelope() -> dict[str, Any]:
    return json.loads(CHAINLOOP.read_text()) if CHAINLOOP.exists() else base_envelope()
