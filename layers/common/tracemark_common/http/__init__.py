"""HTTP routers of the ApiFunction (Powertools `Router`s), included by `functions/api/app.py`.

`core_routes` holds tenancy, tokens, keys, ingest and sessions; `github_admin` the GitHub App
installations and repositories. Route handlers parse, call one domain function and return JSON;
errors are domain errors mapped to responses in `tracemark_common.api`.
"""
