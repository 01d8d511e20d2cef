"""MetricsFunction: `GET /v1/dashboard/ai?range=24h|7d|30d|3m[&project=]` (SPEC §3.7).

Thin: authenticate, call `dashboard_for`, return JSON. Errors map in `tracemark_common.api`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracemark_common.api import create_resolver, json_response, reject_unknown_parameters
from tracemark_common.auth import authenticate
from tracemark_common.observability import logger, metrics, tracer
from tracemark_common.rollups.dynamo import rollup_store_from_settings
from tracemark_common.rollups.service import dashboard_for

app = create_resolver()
KNOWN_PARAMETERS = frozenset({"range", "project"})


def _project_exists(org: str, name: str) -> bool:
    from tracemark_common.store import default_store

    return default_store().get_project(org, name) is not None


@app.get("/v1/dashboard/ai")
def dashboard_ai() -> Response[str]:
    event = app.current_event
    params = event.query_string_parameters or {}
    principal = authenticate(event.headers)
    reject_unknown_parameters(params, KNOWN_PARAMETERS)
    body = dashboard_for(
        principal,
        params.get("range"),
        params.get("project"),
        store=rollup_store_from_settings(),
        project_exists=_project_exists,
    )
    metrics.add_metric(name="DashboardQueries", unit=MetricUnit.Count, value=1)
    return json_response(200, body, headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
