"""Pull-request correlation: webhook handling, correlation, AI Session Score, comment and check run.

Modules: `records` (plain data), `store` (interface + in-memory fake), `dynamo` (DynamoDB adapter,
server-only), `webhook` (deliveries), `correlate`, `score`, `render`, `workflow` (the four steps),
`runtime` (wiring for the Lambda handlers, server-only).
"""
