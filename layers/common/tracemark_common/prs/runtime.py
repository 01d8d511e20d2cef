"""Wiring of the GitHub side for the Lambda handlers (server-only): the GitHub client from
settings and secrets, the DynamoDB store, the Step Functions starter, the session look-up and
the dashboard's AI-assisted PR counter. Tests replace the pieces with `use_runtime(...)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from tracemark_common.github.client import AppCredentials, GitHubClient
from tracemark_common.observability import logger
from tracemark_common.prs.correlate import SessionLookup
from tracemark_common.prs.store import GitHubStore
from tracemark_common.prs.webhook import ExecutionExists, WorkflowStarter, start_execution
from tracemark_common.prs.workflow import PullRequestApi, WorkflowDeps
from tracemark_common.store.records import SessionRecord


@lru_cache(maxsize=4)
def _client(base_url: str, app_id: str, private_key: str) -> GitHubClient:
    # Lambda steps time out after 29 s: wait at most 10 s in-process, then let Step Functions retry.
    return GitHubClient(base_url, AppCredentials(app_id, private_key), max_attempts=3, max_wait_seconds=10.0)


def github_client() -> GitHubClient:
    """One client (one `requests.Session`, one token cache) per configuration and process."""
    from tracemark_common.errors import Unavailable
    from tracemark_common.secrets import get_secret
    from tracemark_common.settings import get_settings

    settings = get_settings()
    if not settings.github_app_id:
        raise Unavailable("the GitHub App is not configured (GITHUB_APP_ID)")
    return _client(settings.github_api_url, settings.github_app_id, get_secret(settings.github_private_key_secret_id))


def github_store() -> GitHubStore:
    from tracemark_common.prs.dynamo import DynamoGitHubStore
    from tracemark_common.settings import get_settings

    return DynamoGitHubStore(get_settings().app_table_name)


class StoreSessions:
    """`SessionLookup` on the application store (evidence loaded from S3)."""

    def get_session(self, org: str, session_id: str) -> SessionRecord | None:
        from tracemark_common.store import get_session

        return get_session(org, session_id)


class StepFunctionsStarter:
    """`WorkflowStarter` on the PR correlation state machine."""

    def __init__(self, state_machine_arn: str, client: Any = None) -> None:
        if not state_machine_arn:
            from tracemark_common.errors import Unavailable

            raise Unavailable("the PR correlation workflow is not configured (STATE_MACHINE_ARN)")
        self.arn = state_machine_arn
        if client is None:
            import boto3

            client = boto3.client("stepfunctions")
        self.client = client

    def start(self, name: str, payload: dict[str, Any]) -> None:
        try:
            self.client.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(payload))
        except self.client.exceptions.ExecutionAlreadyExists as exc:
            raise ExecutionExists(name) from exc

    def status(self, name: str) -> str | None:
        execution_arn = self.arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
        try:
            response = self.client.describe_execution(executionArn=execution_arn)
        except self.client.exceptions.ExecutionDoesNotExist:
            return None
        except Exception:
            logger.warning("could not describe execution", extra={"execution": name})
            return None
        status = response.get("status")
        return str(status) if status else None


def _record_pr_correlated(org: str, project: str, repository_id: int, number: int, at: datetime) -> None:
    from tracemark_common.rollups import RollupWriter
    from tracemark_common.rollups.dynamo import rollup_store_from_settings

    RollupWriter(rollup_store_from_settings()).record_pr_correlated(org, project, repository_id, number, at)


def _add_session_pr(org: str, session_id: str, ref: dict[str, Any]) -> None:
    from tracemark_common.store import add_session_pr

    add_session_pr(org, session_id, ref)


def _set_session_score(org: str, session_id: str, score: dict[str, Any]) -> None:
    from tracemark_common.store import set_session_score

    set_session_score(org, session_id, score)


@dataclass
class Runtime:
    store: GitHubStore
    github: PullRequestApi | None = None
    sessions: SessionLookup | None = None
    starter: WorkflowStarter | None = None


_override: Runtime | None = None


def use_runtime(value: Runtime | None) -> None:
    """Replace the collaborators (tests); None goes back to the defaults."""
    global _override  # noqa: PLW0603 - one process-wide switch, like `http.services.use_services`
    _override = value


def store() -> GitHubStore:
    return _override.store if _override is not None else github_store()


def starter() -> WorkflowStarter:
    if _override is not None and _override.starter is not None:
        return _override.starter
    from tracemark_common.settings import get_settings

    return StepFunctionsStarter(get_settings().state_machine_arn)


def workflow_deps() -> WorkflowDeps:
    from tracemark_common.settings import get_settings

    settings = get_settings()
    if _override is not None:
        return WorkflowDeps(
            store=_override.store,
            github=_override.github or github_client(),
            sessions=_override.sessions or StoreSessions(),
            dashboard_url=settings.dashboard_url,
        )
    return WorkflowDeps(
        store=github_store(),
        github=github_client(),
        sessions=StoreSessions(),
        dashboard_url=settings.dashboard_url,
        on_correlated=_record_pr_correlated,
        on_session_pr=_add_session_pr,
        on_session_score=_set_session_score,
    )


def correlate_again(org: str, session_id: str, digest: str) -> list[str]:
    """For ingest (SPEC §3.2): start the workflow again for the open PRs whose commits name
    `session_id`, one execution per PR named `att-<first 40 hex of sha256(org, repo, pr, digest)>`.
    Returns the execution names started (a repeat of the same attestation starts nothing)."""
    import hashlib

    github = store()
    names: list[str] = []
    for repository_id, number in github.pulls_for_session(org, session_id):
        repository = github.get_repository(repository_id)
        if repository is None or not repository.project:
            continue
        state = github.get_pull(repository_id, number)
        if state is not None and state.status != "open":
            continue
        key = json.dumps([org, repository_id, number, digest]).encode()
        name = "att-" + hashlib.sha256(key).hexdigest()[:40]
        payload = {
            "installation_id": repository.installation_id,
            "repository_id": repository_id,
            "pr_number": number,
            "delivery_id": name,
            "action": "attestation",
        }
        result = start_execution(starter(), name, payload)
        if result.outcome == "started" and result.execution:
            names.append(result.execution)
    return names
