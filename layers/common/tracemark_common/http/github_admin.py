"""GitHub App administration routes: `GET /v1/installations`, `PUT /v1/installations/{id}`
(server admin) and `GET /v1/repositories`, `PUT /v1/repositories/{github_id}` (org admin).

Placeholder: helper H2 fills this router; `functions/api/app.py` already includes it.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

router = Router()
