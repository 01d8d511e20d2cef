"""GitHub App client (server side). Import from here: `from tracemark_common.github import GitHubClient`."""

from tracemark_common.github.client import (
    API_VERSION,
    PULL_COMMITS_LIMIT,
    USER_AGENT,
    AppCredentials,
    GitHubClient,
    GitHubError,
    GitHubNotFound,
    GitHubUnavailable,
    PaginationError,
    TokenCache,
    check_full_name,
    check_sha,
    parse_link_header,
)

__all__ = [
    "API_VERSION",
    "PULL_COMMITS_LIMIT",
    "USER_AGENT",
    "AppCredentials",
    "GitHubClient",
    "GitHubError",
    "GitHubNotFound",
    "GitHubUnavailable",
    "PaginationError",
    "TokenCache",
    "check_full_name",
    "check_sha",
    "parse_link_header",
]
