"""Code shared by every Tracemark Lambda function and, where the logic is the same, by the CLI.

Modules that import boto3, pynamodb or Powertools (`observability`, `secrets`, `api`, `store*`,
`aws*`) are server-only; everything else must stay importable with the CLI's dependencies alone.
"""

__version__ = "0.1.0"
