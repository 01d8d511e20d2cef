"""ApiFunction: every `/v1/*` route except the dashboard, `/healthz`, `/v1/openapi.json`, and the
HTTP API `$default` route (unknown paths answer 404/405 from the shared resolver).

Thin: the routers parse, authorise and call one domain function; errors map in
`tracemark_common.api`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tracemark_common.api import create_resolver
from tracemark_common.http import core_routes, github_admin
from tracemark_common.observability import logger, metrics, tracer

app = create_resolver()
app.include_router(core_routes.router)
app.include_router(github_admin.router)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
