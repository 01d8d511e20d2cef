"""WebhookFunction: `POST /github/webhook` (SPEC §3.4).

Thin: verify `X-Hub-Signature-256` over the raw body (401), parse (400), hand the delivery to
`prs.webhook.handle_delivery`, answer 202 at once; the work runs in the PR correlation workflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracemark_common import errors
from tracemark_common.api import create_resolver, json_response, raw_body
from tracemark_common.observability import logger, metrics, tracer
from tracemark_common.prs import runtime
from tracemark_common.prs.signature import verify_signature
from tracemark_common.prs.webhook import handle_delivery

# GitHub caps deliveries at 25 MB; Lambda takes 6 MB. Pull-request payloads are far smaller.
MAX_WEBHOOK_BYTES = 5 * 1024 * 1024

app = create_resolver()


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value or ""
    return ""


def _webhook_secret() -> str:
    from tracemark_common.secrets import get_secret
    from tracemark_common.settings import get_settings

    return get_secret(get_settings().github_webhook_secret_id)


@app.post("/github/webhook")
def github_webhook() -> Response[str]:
    event = app.current_event
    body = raw_body(app, limit=MAX_WEBHOOK_BYTES)
    verify_signature(_webhook_secret(), body, _header(event.headers, "x-hub-signature-256"))
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"webhook body is not valid JSON: {exc}", code="malformed_json") from exc
    name = _header(event.headers, "x-github-event")
    delivery = _header(event.headers, "x-github-delivery")
    result = handle_delivery(name, delivery, payload, store=runtime.store(), starter=runtime.starter())
    logger.info("webhook delivery", extra={"event": name, "delivery": delivery, **result.to_dict()})
    return json_response(202, result.to_dict())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
