"""Server configuration, read from the environment once, at the edge (SPEC §4).

Lambda functions get these variables from `template.yaml` (Globals); `tracemark serve` sets the
same variables from the same template. Domain code receives values, never reads `os.environ`.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    app_table_name: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=1)
    evidence_bucket_name: str = Field(min_length=1)
    state_machine_arn: str = ""
    jwt_secret_id: str = Field(min_length=1, description="Secrets Manager id of the JWT signing key")
    admin_token_secret_id: str = Field(min_length=1, description="Secrets Manager id of the server admin token")
    github_app_id: str = ""
    github_private_key_secret_id: str = ""
    github_webhook_secret_id: str = ""
    github_api_url: str = "https://api.github.com"
    public_base_url: str = Field(default="", description="Base URL of the API, for links in responses")
    dashboard_url: str = Field(default="", description="Base URL of the dashboard, for session links")
    issuer: str = "tracemark"
    transcript_retention_days: int = 90

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServerSettings:
        source = dict(os.environ if env is None else env)
        values = {name: source[name.upper()] for name in cls.model_fields if name.upper() in source}
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> ServerSettings:
    return ServerSettings.from_env()
