"""LoadPullRequestFunction: read the PR from the GitHub API (never from the webhook payload).

A thin step of the PR correlation state machine (statemachine/pr_correlation.asl.json): the
execution state in, this step's result out; errors propagate so the state machine's Retry and
Catch see their names (e.g. `GitHubUnavailable`, `PublishBusy`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tracemark_common.observability import logger, tracer
from tracemark_common.prs import runtime, workflow
from tracemark_common.transient import transient_as_unavailable


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with transient_as_unavailable("LoadPullRequest"):  # throttling is retried by the state machine
        return workflow.load_pull_request(event, runtime.workflow_deps())
