"""Every HTTP API route of SPEC §3.1a, in one list.

`template.yaml` declares the same routes (a test keeps the two in step); the API function uses
this list to answer 405 rather than 404 for a known path with another method, and the OpenAPI
document is built from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # logical id of the function serving it in template.yaml
    summary: str

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(self.path))
        return re.compile(f"^{regex}$")


API = "ApiFunction"
METRICS = "MetricsFunction"
WEBHOOK = "WebhookFunction"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", API, "Liveness"),
    Route("GET", "/v1/openapi.json", API, "This API's OpenAPI document"),
    Route("GET", "/v1/whoami", API, "The caller's organisation, subject, role and scopes"),
    Route("POST", "/v1/orgs", API, "Create an organisation (server admin); returns an org-admin token"),
    Route("POST", "/v1/projects", API, "Create a project (org admin)"),
    Route("GET", "/v1/projects/{name}", API, "A project"),
    Route("GET", "/v1/projects/{name}/contract", API, "A project's contract"),
    Route("PUT", "/v1/projects/{name}/contract", API, "Set a project's contract (org admin)"),
    Route("POST", "/v1/tokens", API, "Mint a user or service-account token (org admin)"),
    Route("DELETE", "/v1/tokens/{id}", API, "Revoke a token (org admin)"),
    Route("POST", "/v1/keys", API, "Register the caller's public signing key"),
    Route("GET", "/v1/keys/{keyid}", API, "A registered signing key"),
    Route("DELETE", "/v1/keys/{keyid}", API, "Revoke a signing key (owner or org admin)"),
    Route("POST", "/v1/attestations", API, "Push an attestation (DSSE envelope)"),
    Route("POST", "/v1/uploads", API, "Presigned upload for large bodies and transcripts"),
    Route("GET", "/v1/sessions", API, "List sessions"),
    Route("GET", "/v1/sessions/{id}", API, "One session with evidence, score, policy results and PRs"),
    Route("DELETE", "/v1/sessions/{id}", API, "Erase a session (org admin)"),
    Route("GET", "/v1/policies/{name}", API, "An organisation policy (org admin)"),
    Route("PUT", "/v1/policies/{name}", API, "Upload an organisation policy (org admin)"),
    Route("PUT", "/v1/org/settings", API, "Organisation settings (org admin)"),
    Route("GET", "/v1/repositories", API, "Repositories of the organisation's installations (org admin)"),
    Route("PUT", "/v1/repositories/{github_id}", API, "Link a repository to a project (org admin)"),
    Route("GET", "/v1/installations", API, "GitHub App installations seen in webhooks (server admin)"),
    Route("PUT", "/v1/installations/{id}", API, "Bind an installation to an organisation (server admin)"),
    Route("GET", "/v1/dashboard/ai", METRICS, "AI Coding dashboard cards"),
    Route("POST", "/github/webhook", WEBHOOK, "GitHub App webhook deliveries"),
)


def allowed_methods(path: str) -> list[str]:
    """Methods of the routes whose template matches `path` (empty: the path is unknown)."""
    return sorted({route.method for route in ROUTES if route.pattern.match(path)})
