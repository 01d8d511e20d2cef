"""Secrets from AWS Secrets Manager, cached in memory (Powertools parameters)."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from tracemark_common.errors import Unavailable

_MAX_AGE_SECONDS = 300


def get_secret(secret_id: str) -> str:
    if not secret_id:
        raise Unavailable("a required secret is not configured")
    try:
        value = parameters.get_secret(secret_id, max_age=_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise Unavailable(f"secret {secret_id!r} could not be read") from exc
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
