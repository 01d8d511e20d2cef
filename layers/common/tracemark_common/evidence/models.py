"""The evidence envelope: Chainloop's `CHAINLOOP_AI_CODING_SESSION` document (SPEC §2.5).

`data` must validate against the 0.1 JSON schema, which forbids extra keys in `data`, `agent`
and `session`: those models forbid extras too. Our additions live only in the free-form objects
(`usage`, `model`, `git_context`, `tools_used`, `conversation`), as `tracemark_*` keys on
`code_changes` and its files, or in the envelope-level `tracemark` object (docs/evidence.md).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EVIDENCE_ID = "CHAINLOOP_AI_CODING_SESSION"
SCHEMA_URL = "https://schemas.chainloop.dev/aicodingsession/0.1/ai-coding-session.schema.json"
SCHEMA_VERSION = "v1"
SCHEMA_RESOURCE = "ai-coding-session-0.1.schema.json"
FileStatus = Literal["created", "modified", "deleted", "renamed"]


class EvidenceError(ValueError):
    """The evidence document is not valid; `problems` lists every reason."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Agent(_Strict):
    name: str = Field(min_length=1)
    version: str | None = None


class Session(_Strict):
    id: str = Field(min_length=1)
    slug: str | None = None
    started_at: str = Field(min_length=1)
    ended_at: str | None = None
    duration_seconds: int = Field(ge=0)


class LineRange(_Strict):
    start: int = Field(ge=1)
    end: int = Field(ge=1)


class FileChange(_Open):
    path: str
    status: FileStatus
    lines_added: int = 0
    lines_removed: int = 0
    attribution: Literal["ai", "human"] = "human"
    line_ranges: list[LineRange] | None = None
    session_ids: list[str] | None = None
    # ai | human | mixed: "mixed" when AI and human (or another session's) lines share the file
    tracemark_attribution: Literal["ai", "human", "mixed"] | None = None
    tracemark_ai_lines_added: int | None = None
    tracemark_ai_lines_removed: int | None = None
    tracemark_other_ai_lines_added: int | None = None
    tracemark_other_ai_lines_removed: int | None = None
    tracemark_old_path: str | None = None


class CodeChanges(_Open):
    files_modified: int = 0
    files_created: int = 0
    files_deleted: int = 0
    lines_added: int = 0
    lines_removed: int = 0
    ai_lines_added: int = 0
    ai_lines_removed: int = 0
    human_lines_added: int = 0
    human_lines_removed: int = 0
    tracemark_other_ai_lines_added: int = 0
    tracemark_other_ai_lines_removed: int = 0
    tracemark_files_renamed: int = 0
    files: list[FileChange] = Field(default_factory=list)


class EvidenceData(_Strict):
    schema_version: str = SCHEMA_VERSION
    agent: Agent
    session: Session
    git_context: dict[str, Any] | None = None
    code_changes: CodeChanges | None = None
    model: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    tools_used: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    subagents: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None


class EvidenceEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    evidence_id: Literal["CHAINLOOP_AI_CODING_SESSION"] = Field(
        default="CHAINLOOP_AI_CODING_SESSION", alias="chainloop.material.evidence.id"
    )
    schema_url: str = Field(default=SCHEMA_URL, alias="schema")
    data: EvidenceData
    tracemark: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: aliases, no null fields (Chainloop omits empty values too)."""
        result: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return result


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    text = resources.files("tracemark_common.schemas").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_envelope(envelope: object) -> None:
    """Raise EvidenceError unless `envelope` is a valid evidence document: the envelope's id and
    schema URL, and `data` against the 0.1 JSON schema (every problem listed)."""
    import jsonschema

    if not isinstance(envelope, dict):
        raise EvidenceError("the evidence must be a JSON object")
    problems: list[str] = []
    if envelope.get("chainloop.material.evidence.id") != EVIDENCE_ID:
        problems.append(f"chainloop.material.evidence.id must be {EVIDENCE_ID!r}")
    if envelope.get("schema") != SCHEMA_URL:
        problems.append(f"schema must be {SCHEMA_URL!r}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        problems.append("data must be an object")
    else:
        validator = jsonschema.Draft7Validator(load_schema())
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"data/{where}: {error.message}" if where != "(root)" else f"data: {error.message}")
    extra = set(envelope) - {"chainloop.material.evidence.id", "schema", "data", "tracemark"}
    if extra:
        problems.append(f"unexpected envelope keys: {', '.join(sorted(extra))}")
    if problems:
        raise EvidenceError("invalid evidence: " + "; ".join(problems[:10]), problems)
