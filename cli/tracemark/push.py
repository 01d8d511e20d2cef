"""Attest AI sessions on `git push` and deliver them (SPEC §2.6).

`run_pre_push(repo, remote, url, refs)` is called by the pre-push hook with the parsed refs. Only
commits being pushed that carry our trailer are attested: one signed attestation per session
(several per push possible). Each is sent over HTTPS with timeouts and retries; the session URL
is printed. Transient failures (network, timeout, 401, 403, 408, 429, 5xx) spool the attestation
(`<git common dir>/tracemark/spool/`) for the next push or `tracemark push`; other 4xx answers go
to `spool/rejected/` with the server's message. `requireTrace: true` turns any failure into a
blocked push with the reason and the fix. A gated policy violation (`gated: true`) makes the hook
exit non-zero on every push that contains the session. A token is only ever sent to the server it
was stored with: a committed `server:` that differs is a warning, and the attestation is spooled.

`deliver_spool(repo)` is `tracemark push`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from tracemark import __version__, gitutil
from tracemark.credentials import Credentials, load_credentials, load_private_key_pem, same_server
from tracemark.errors import UserError
from tracemark.spool import Spool, SpoolError, SpoolItem, TamperedError, file_sha256
from tracemark_common import dsse
from tracemark_common.trailers import session_ids as trailer_session_ids

ZERO_SHA = "0" * 40
MAX_INLINE_BODY = 4 * 1024 * 1024
MAX_TRANSCRIPT_UPLOAD = 256 * 1024 * 1024  # the server's limit for one presigned transcript upload
CONFIG_NAMES = (".tracemark.yml", ".tracemark.yaml")
MAX_CONFIG_BYTES = 256 * 1024
OutcomeKind = Literal["accepted", "gated", "transient", "rejected", "tampered"]


# --- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectConfig:
    project_name: str
    organization: str = ""
    require_trace: bool = False
    server: str = ""
    upload_transcript: bool = True


def load_project_config(root: str | Path) -> ProjectConfig | None:
    """`.tracemark.yml` (or `.yaml`; `.yml` wins) at the repository root; None when absent."""
    import yaml

    for name in CONFIG_NAMES:
        path = Path(root) / name
        if not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise UserError(f"{name} is larger than {MAX_CONFIG_BYTES} bytes", "it holds a few settings only")
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read {name}: {exc}", "fix or re-create it with `tracemark init`") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("projectName"), str) or not raw["projectName"]:
            raise UserError(f"{name} has no projectName", "run `tracemark init --project NAME`")
        return ProjectConfig(
            project_name=raw["projectName"],
            organization=str(raw.get("organization") or ""),
            require_trace=raw.get("requireTrace") is True,
            server=str(raw.get("server") or ""),
            upload_transcript=raw.get("uploadTranscript") is not False,
        )
    return None


# --- refs and commits -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_refs(refs: Iterable[object]) -> list[Ref]:
    """Accepts pre-push stdin lines (str), 4-sequences, or objects with the four attributes."""
    parsed: list[Ref] = []
    for ref in refs:
        parts: Sequence[object]
        if isinstance(ref, str):
            parts = ref.split()
        elif isinstance(ref, Sequence):
            parts = ref
        else:
            parts = [getattr(ref, name, "") for name in ("local_ref", "local_sha", "remote_ref", "remote_sha")]
        if len(parts) == 4 and all(isinstance(p, str) for p in parts):
            parsed.append(Ref(*(str(p) for p in parts)))
    return parsed


def pushed_commits(root: str, remote: str, refs: Sequence[Ref]) -> dict[str, str]:
    """sha -> full message of every non-merge commit this push sends (not already on the remote)."""
    include = [r.local_sha for r in refs if r.local_sha.strip("0")]
    if not include:
        return {}
    exclude: list[str] = []
    for ref in refs:
        if ref.remote_sha.strip("0"):
            probe = gitutil.git(root, "rev-parse", "-q", "--verify", f"{ref.remote_sha}^{{commit}}", check=False)
            if probe.strip():
                exclude.append("^" + ref.remote_sha)
    if remote and not remote.startswith("-"):
        exclude.append(f"--remotes={remote}")
    out = gitutil.git(root, "log", "--no-merges", "--format=%H%x00%B%x1e", *include, *exclude, "--", check=False)
    commits: dict[str, str] = {}
    for raw_chunk in out.decode("utf-8", "surrogateescape").split("\x1e"):
        chunk = raw_chunk.lstrip("\n")
        if "\x00" in chunk:
            sha, body = chunk.split("\x00", 1)
            commits[sha] = body
    return commits


def sessions_of(commits: dict[str, str]) -> dict[str, list[str]]:
    """session id -> the pushed commits whose trailers name it (oldest first)."""
    grouped: dict[str, list[str]] = {}
    for sha, message in reversed(list(commits.items())):  # git log lists newest first
        for sid in trailer_session_ids(message):
            grouped.setdefault(sid, []).append(sha)
    return grouped


# --- the session's facts (capture records, adapted) ------------------------------------------
class RecordSource(Protocol):
    """What push needs from local capture state; `CaptureRecords` reads the real thing."""

    def session(self, session_id: str) -> Any | None: ...

    def commit(self, sha: str) -> Any | None: ...


class CaptureRecords:
    def __init__(self, root: str) -> None:
        self.root = root

    def session(self, session_id: str) -> Any | None:
        from tracemark.capture.records import load_session

        return load_session(self.root, session_id)

    def commit(self, sha: str) -> Any | None:
        from tracemark.capture.records import load_commit_record

        return load_commit_record(self.root, sha)


_DIFF_TREE = ("diff-tree", "-r", "-M", "--root", "--no-commit-id", "-z")
_STATUS = {"A": "created", "M": "modified", "D": "deleted", "R": "renamed", "C": "created", "T": "modified"}


def commit_facts(root: str, shas: Sequence[str], records: RecordSource) -> list[Any]:
    """Per commit: git's numstat and statuses (every file, AI or not), overlaid with the AI line
    ranges and removals the capture hooks recorded per session."""
    from tracemark.evidence_builder import CommitFacts, FileLines

    meta = gitutil.git(
        root, "log", "--no-walk=unsorted", "--format=%H%x00%G?%x00%cI%x00%s%x1e", *shas, "--", check=False
    )
    info: dict[str, tuple[str, str, str]] = {}
    for chunk in meta.decode("utf-8", "replace").split("\x1e"):
        parts = chunk.strip("\n").split("\x00")
        if len(parts) == 4:
            info[parts[0]] = (parts[1] or "N", parts[2], parts[3])
    facts = []
    for sha in shas:
        signature, when, subject = info.get(sha, ("N", "", ""))
        raw = gitutil.git(root, *_DIFF_TREE, "--numstat", sha, check=False)
        statuses = _name_status(root, sha)
        files: dict[str, FileLines] = {}
        for path, old, added, removed in _numstat_z(raw):
            files[path] = FileLines(
                path=path, status=statuses.get(path, "modified"), lines_added=added, lines_removed=removed, old_path=old
            )
        record = records.commit(sha)
        rewritten: list[str] = []
        session_ids: list[str] = []
        if record is not None:
            rewritten = list(getattr(record, "rewritten_from", []) or [])
            session_ids = list(getattr(record, "session_ids", []) or [])
            for change in getattr(record, "files", []) or []:
                target = files.get(change.path)
                if target is None:
                    target = files[change.path] = FileLines(
                        path=change.path,
                        status=_STATUS.get(change.status, "modified"),
                        lines_added=change.lines_added,
                        lines_removed=change.lines_removed,
                    )
                for sid, lines in change.sessions.items():
                    target.ai_ranges[sid] = [(int(s), int(e)) for s, e in lines.ranges]
                    target.ai_removed[sid] = int(lines.removed)
        facts.append(
            CommitFacts(
                sha=sha,
                subject=subject,
                timestamp=when,
                signature=signature,
                session_ids=session_ids,
                rewritten_from=rewritten,
                files=list(files.values()),
            )
        )
    return facts


def _numstat_z(raw: bytes) -> list[tuple[str, str | None, int, int]]:
    """Parse `--numstat -z`: renames are `added\tremoved\t\0old\0new\0`."""
    out: list[tuple[str, str | None, int, int]] = []
    parts = raw.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(parts):
        head = parts[i]
        if not head:
            i += 1
            continue
        fields = head.split("\t")
        if len(fields) != 3:
            i += 1
            continue
        added = int(fields[0]) if fields[0].isdigit() else 0  # "-" for binary files
        removed = int(fields[1]) if fields[1].isdigit() else 0
        if fields[2]:
            out.append((fields[2], None, added, removed))
            i += 1
        else:
            old, new = parts[i + 1], parts[i + 2] if i + 2 < len(parts) else ""
            out.append((new, old, added, removed))
            i += 3
    return out


def _name_status(root: str, sha: str) -> dict[str, str]:
    raw = gitutil.git(root, *_DIFF_TREE, "--name-status", sha, check=False)
    parts = raw.decode("utf-8", "surrogateescape").split("\0")
    statuses: dict[str, str] = {}
    i = 0
    while i < len(parts):
        code = parts[i]
        if not code:
            i += 1
            continue
        letter = code[0]
        if letter in "RC" and i + 2 < len(parts):
            statuses[parts[i + 2]] = _STATUS[letter]
            i += 3
        elif i + 1 < len(parts):
            statuses[parts[i + 1]] = _STATUS.get(letter, "modified")
            i += 2
        else:
            break
    return statuses


# --- building one attestation -------------------------------------------------------------------
@dataclass
class Prepared:
    session_id: str
    commits: list[str]
    item: SpoolItem
    fingerprint: str


def _fingerprint(session_id: str, commits: Sequence[str], files: Iterable[Path], config: ProjectConfig) -> str:
    parts: list[Any] = [session_id, sorted(commits), config.project_name, config.organization, __version__]
    for path in files:
        try:
            st = path.stat()
            parts.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            parts.append([str(path), None])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _transcript_files(state: Any) -> tuple[Path | None, list[Path]]:
    main = Path(state.transcript_path) if getattr(state, "transcript_path", None) else None
    subs = [
        Path(sub.transcript_path)
        for sub in (getattr(state, "subagents", {}) or {}).values()
        if getattr(sub, "transcript_path", None)
    ]
    return main, subs


def _summarise(state: Any, main: Path | None, subs: list[Path]) -> Any:
    from tracemark.transcript import (
        ReportedTurn,
        ShellCommand,
        TranscriptError,
        TranscriptSummary,
        parse_claude_session,
        parse_cursor_session,
    )

    agent = getattr(state, "agent", "claude-code") or "claude-code"
    if agent == "cursor":
        usage = getattr(state, "usage", {}) or {}
        turns = [ReportedTurn(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))] if usage else []
        path = main if main is not None and main.is_file() else None
        try:
            return parse_cursor_session(
                path,
                session_id=state.session_id,
                model=getattr(state, "model", "") or "",
                agent_version=getattr(state, "agent_version", "") or "",
                reported_turns=turns,
            )
        except TranscriptError:
            return parse_cursor_session(None, session_id=state.session_id, reported_turns=turns)
    try:
        if main is None:
            raise TranscriptError("the session recorded no transcript path")
        return parse_claude_session(main, subagent_paths=subs)
    except TranscriptError as exc:
        summary = TranscriptSummary(agent_name=agent, session_id=state.session_id)
        summary.usage_available = False
        summary.usage.cost_usd = None
        summary.main_thread.cost_usd = None
        model = getattr(state, "model", None)
        summary.models_used = list(getattr(state, "models", []) or ([model] if model else []))
        summary.primary_model = model or ""
        summary.shell_commands = [
            ShellCommand(command=str(c)[:4096]) for c in list(getattr(state, "shell_commands", []) or [])[:1000]
        ]
        summary.prompts = int(getattr(state, "prompts", 0) or 0)
        summary.warn(f"Transcript unavailable ({exc}); usage and cost are not known for this session")
        return summary


def write_redacted_transcript(sources: Sequence[Path], target: Path, redaction: Any) -> tuple[str, int]:
    """Redact every line of the main and subagent transcripts into one gzip file; returns
    (sha256, size) of the gzip bytes, which is what the statement binds."""
    from tracemark.redact import redact_jsonl_line
    from tracemark.transcript.claude import iter_lines

    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as out:
            for source in sources:
                try:
                    stream = source.open("rb")
                except OSError:
                    continue
                with stream:
                    for _, line in iter_lines(stream):
                        if line is None:
                            continue
                        out.write(redact_jsonl_line(line if line.endswith(b"\n") else line + b"\n", redaction))
        tmp.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return file_sha256(target)


def scan_transcript(sources: Sequence[Path], redaction: Any) -> None:
    from tracemark.redact import redact_jsonl_line
    from tracemark.transcript.claude import iter_lines

    for source in sources:
        try:
            stream = source.open("rb")
        except OSError:
            continue
        with stream:
            for _, line in iter_lines(stream):
                if line is not None:
                    redact_jsonl_line(line, redaction)


# --- outcomes -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    kind: OutcomeKind
    message: str = ""
    urls: list[str] = field(default_factory=list)
    body: Any = None


class Pusher:
    """One push: configuration, credentials, spool and output, shared by pre-push and `tracemark push`."""

    def __init__(
        self,
        root: str,
        state_dir: str,
        *,
        config: ProjectConfig | None,
        credentials: Credentials | None,
        records: RecordSource | None = None,
        out: TextIO | None = None,
        client_factory: Any = None,
    ) -> None:
        self.root = root
        self.state_dir = Path(state_dir)
        self.config = config
        self.credentials = credentials
        self.records = records or CaptureRecords(root)
        self.out = out or sys.stderr
        self.spool = Spool(state_dir)
        self._client: Any = None
        self._client_factory = client_factory
        self._key: dsse.PrivateKey | None = None
        self._organization: str | None = None
        self._unreachable = ""
        self.gated_sessions: list[str] = []

    # output and log
    def say(self, message: str) -> None:
        print(f"tracemark: {message}", file=self.out)

    def log(self, event: str, session: str, result: str, detail: str = "") -> None:
        with contextlib.suppress(Exception):
            from tracemark.capture.state import StateDir

            StateDir(str(self.state_dir)).log("push", event, session, result, 0.0, detail)

    # keys and client
    def signing_key(self) -> dsse.PrivateKey:
        if self._key is None:
            try:
                self._key = dsse.load_private_key_pem(load_private_key_pem())
            except (ValueError, TypeError, dsse.DsseError) as exc:
                raise UserError(f"the signing key cannot be loaded: {exc}", "run `tracemark auth login` again") from exc
        return self._key

    def trusted(self) -> dict[str, dsse.PublicKey] | None:
        try:
            public = self.signing_key().public_key()
        except UserError:
            return None
        return {dsse.keyid(public): public}

    def organization(self) -> str:
        """`.tracemark.yml` first, then the token's organisation (stored at login, else asked)."""
        if self.config and self.config.organization:
            return self.config.organization
        if self.credentials is None:
            return ""
        if self.credentials.organization:
            return self.credentials.organization
        if self._organization is None:
            self._organization = ""
            from tracemark.client import TransportError

            try:
                who = self.client().request("GET", "/v1/whoami")
            except TransportError as exc:
                self._unreachable = str(exc)
            else:
                if who.ok and isinstance(who.body, dict) and isinstance(who.body.get("org"), str):
                    self._organization = who.body["org"]
        return self._organization

    @property
    def target_server(self) -> str:
        if self.config and self.config.server:
            return self.config.server
        return self.credentials.server if self.credentials else ""

    def client(self) -> Any:
        if self._client is None:
            assert self.credentials is not None
            if self._client_factory is not None:
                self._client = self._client_factory(self.credentials.server, self.credentials.token)
            else:
                from tracemark.client import ApiClient

                self._client = ApiClient(self.credentials.server, self.credentials.token)
        return self._client

    # ledger of what the server already accepted
    def _ledger_path(self, session_id: str) -> Path:
        return self.state_dir / "attested" / f"{session_id}.json"

    def ledger(self, session_id: str) -> dict[str, Any]:
        try:
            raw = json.loads(self._ledger_path(session_id).read_text())
        except (OSError, ValueError):
            return {}
        return raw if isinstance(raw, dict) else {}

    def remember(self, session_id: str, fingerprint: str, outcome: Outcome, envelope: dict[str, Any]) -> None:
        path = self._ledger_path(session_id)
        body = {
            "fingerprint": fingerprint,
            "gated": outcome.kind == "gated",
            "urls": outcome.urls,
            "message": outcome.message,
            "envelope": envelope if outcome.kind == "gated" else None,
        }
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(body))
            tmp.replace(path)

    # building
    def fingerprint(self, state: Any, shas: Sequence[str]) -> str:
        """What an attestation of this session would cover: its commits and the state of its
        transcripts (cheap: no parsing), to skip work that was already accepted."""
        assert self.config is not None
        main, subs = _transcript_files(state)
        return _fingerprint(state.session_id, shas, [p for p in [main, *subs] if p is not None], self.config)

    def spooled_fingerprints(self) -> set[str]:
        found: set[str] = set()
        for path in self.spool.pending():
            with contextlib.suppress(TamperedError):
                found.add(self.spool.load(path).fingerprint)
        return found - {""}

    def prepare(self, state: Any, shas: list[str], url: str, fingerprint: str) -> Prepared:
        from tracemark.evidence_builder import compute_code_changes, evidence_from_transcript, git_context
        from tracemark.redact import Redaction
        from tracemark_common.evidence import TranscriptRef, build_statement, sign_statement

        assert self.config is not None
        session_id = state.session_id
        main, subs = _transcript_files(state)
        sources = [p for p in [main, *subs] if p is not None]
        summary = _summarise(state, main, subs)
        facts = commit_facts(self.root, shas, self.records)
        redaction = Redaction()
        transcript_ref: TranscriptRef | None = None
        transcript_name = ""
        existing = [p for p in sources if p.is_file()]
        notes: list[str] = []
        if existing and self.config.upload_transcript:
            transcript_name = f"{session_id}-{fingerprint[:12]}.jsonl.gz"
            target = self.spool.staging_path(transcript_name)
            try:
                sha, size = write_redacted_transcript(existing, target, redaction)
            except OSError as exc:
                raise SpoolError(f"cannot write the redacted transcript: {exc.strerror or exc}") from exc
            if size > MAX_TRANSCRIPT_UPLOAD:
                target.unlink(missing_ok=True)
                transcript_name = ""
                notes.append(
                    f"Transcript not uploaded: {size} bytes compressed, over the {MAX_TRANSCRIPT_UPLOAD} byte limit"
                )
            else:
                transcript_ref = TranscriptRef(sha256=sha, size=size)
        elif existing:
            scan_transcript(existing, redaction)
        branch = gitutil.git(self.root, "symbolic-ref", "-q", "--short", "HEAD", check=False).decode().strip()
        context = git_context(
            summary=summary,
            commits=facts,
            repository=url,
            branch=branch,
            remotes=self._remotes(),
            session_id=session_id,
        )
        evidence = evidence_from_transcript(
            summary,
            session_id=session_id,
            code_changes=compute_code_changes(session_id, facts),
            context=context,
            warnings=notes,
            redaction=redaction,
            fallback_started_at=getattr(state, "started_at", "") or "",
            fallback_ended_at=getattr(state, "ended_at", "") or getattr(state, "last_event_at", "") or "",
        )
        statement = build_statement(
            evidence,
            shas,
            project=self.config.project_name,
            organization=self.organization() or None,
            cli_version=__version__,
            transcript=transcript_ref,
        )
        envelope = sign_statement(statement, self.signing_key())
        item = SpoolItem(
            session_id=session_id,
            server=self.target_server,
            envelope=envelope,
            transcript_file=transcript_name if transcript_ref else "",
            transcript_sha256=transcript_ref.sha256 if transcript_ref else "",
            transcript_size=transcript_ref.size if transcript_ref else 0,
            fingerprint=fingerprint,
        )
        return Prepared(session_id=session_id, commits=shas, item=item, fingerprint=fingerprint)

    def _remotes(self) -> dict[str, str]:
        raw = gitutil.git(self.root, "config", "--get-regexp", r"^remote\..*\.url$", check=False)
        remotes: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            remotes[key.removeprefix("remote.").removesuffix(".url")] = value
        return remotes

    # sending
    def send(self, item: SpoolItem) -> Outcome:
        creds = self.credentials
        if creds is None:
            return Outcome("transient", "not logged in (run `tracemark auth login --server URL --token T`)")
        if item.server and not same_server(item.server, creds.server):
            return Outcome(
                "transient",
                f"the project's server {item.server} is not the server your token belongs to ({creds.server}); "
                "the token is never sent elsewhere",
            )
        from tracemark.client import TransportError

        if self._unreachable:  # one push waits for an unreachable server once, not once per item
            return Outcome("transient", self._unreachable)
        try:
            if item.transcript_file:
                outcome = self._upload_transcript(item)
                if outcome is not None:
                    return outcome
            body = json.dumps(item.envelope).encode()
            if len(body) > MAX_INLINE_BODY:
                upload = self._upload_bytes(body, "attestation", "application/json", item.session_id)
                if isinstance(upload, Outcome):
                    return upload
                response = self.client().request("POST", "/v1/attestations", json_body={"upload_id": upload})
            else:
                response = self.client().request("POST", "/v1/attestations", json_body=item.envelope)
        except TransportError as exc:
            self._unreachable = str(exc)
            return Outcome("transient", str(exc))
        return self._classify(response)

    def _classify(self, response: Any) -> Outcome:
        if response.ok:
            body = response.body if isinstance(response.body, dict) else {}
            urls = [s.get("url", "") for s in body.get("sessions", []) or [] if isinstance(s, dict) and s.get("url")]
            if body.get("gated") is True:
                return Outcome("gated", _violations(body), urls, body)
            return Outcome("accepted", "replayed" if response.status == 200 else "", urls, body)
        kind: OutcomeKind = "transient" if response.transient else "rejected"
        return Outcome(kind, f"HTTP {response.status}: {response.message}")

    def _upload_bytes(self, data: bytes, kind: str, content_type: str, session_id: str) -> str | Outcome:
        return self._upload(data, kind, content_type, session_id, hashlib.sha256(data).hexdigest(), len(data))

    def _upload(  # noqa: PLR0917
        self, data: Any, kind: str, content_type: str, session_id: str, sha: str, size: int
    ) -> str | Outcome:
        body = {"kind": kind, "sha256": sha, "size": size, "content_type": content_type, "session_id": session_id}
        response = self.client().request("POST", "/v1/uploads", json_body=body)
        if not response.ok:
            return self._classify(response)
        payload = response.body if isinstance(response.body, dict) else {}
        upload_id, url = payload.get("upload_id"), payload.get("url")
        if not isinstance(upload_id, str) or not isinstance(url, str):
            return Outcome("transient", "the server's upload answer has no upload_id/url")
        extra: dict[str, Any] = payload["headers"] if isinstance(payload.get("headers"), dict) else {}
        headers = {str(k): str(v) for k, v in extra.items()}
        headers.setdefault("Content-Type", content_type)
        put = self.client().put_upload(url, data, headers)
        if not 200 <= put.status < 300:
            return Outcome("transient", f"upload failed: HTTP {put.status} {put.text[:200]}")
        return upload_id

    def _upload_transcript(self, item: SpoolItem) -> Outcome | None:
        path = self.spool.transcript_path(item)
        if path is None or not path.is_file():
            return Outcome("tampered", "the redacted transcript is missing from the spool")
        with path.open("rb") as handle:
            result = self._upload(
                handle, "transcript", "application/gzip", item.session_id, item.transcript_sha256, item.transcript_size
            )
        return result if isinstance(result, Outcome) else None

    # spool handling
    def spool_item(self, item: SpoolItem, reason: str) -> bool:
        item.last_error = reason[:1000]
        try:
            self.spool.add(item)
        except SpoolError as exc:
            self.say(f"could not spool the attestation of session {item.session_id}: {exc}")
            return False
        return True

    def deliver_pending(self) -> tuple[int, int, int]:
        """Send every spooled item: (delivered, still pending, rejected)."""
        delivered = pending = rejected = 0
        trusted = self.trusted()
        for path in self.spool.pending():
            try:
                item = self.spool.load(path)
                self.spool.check(item, trusted)
            except TamperedError as exc:
                with contextlib.suppress(SpoolError):
                    self.spool.reject(path, f"tampered: {exc}")
                self.say(f"spooled attestation {path.name} was modified after signing ({exc}); moved to spool/rejected")
                self.log("spool", path.stem, "tampered", str(exc))
                rejected += 1
                continue
            outcome = self.send(item)
            if outcome.kind in ("accepted", "gated"):
                self.spool.remove(item)
                delivered += 1
                if item.fingerprint:
                    self.remember(item.session_id, item.fingerprint, outcome, item.envelope)
                if outcome.kind == "gated":
                    self.gated_sessions.append(item.session_id)
                self._report(item.session_id, outcome)
            elif outcome.kind == "transient":
                self.spool.update(item, outcome.message)
                pending += 1
            else:
                with contextlib.suppress(SpoolError):
                    self.spool.reject(path, outcome.message, self.spool.transcript_path(item))
                self.say(f"the server rejected spooled session {item.session_id}: {outcome.message}")
                rejected += 1
        return delivered, pending, rejected

    def _report(self, session_id: str, outcome: Outcome) -> None:
        where = ", ".join(outcome.urls) or "(no URL returned)"
        if outcome.kind == "gated":
            self.say(f"session {session_id} attested, but a gated policy failed: {outcome.message}")
            self.say(f"  {where}")
        else:
            self.say(f"session {session_id} attested: {where}")
        self.log("pre-push", session_id, outcome.kind, where)


def _violations(body: dict[str, Any]) -> str:
    """The violations of an ingest answer, those of gated policies first and marked `(gated)`, so
    that a blocked push says which policy blocked it (advisory violations are listed after)."""
    gated: list[str] = []
    advisory: list[str] = []
    results = body.get("policy_results")
    if isinstance(results, list):
        for result in results:
            if not isinstance(result, dict):
                continue
            name = result.get("name") or result.get("policy") or "policy"
            blocking = result.get("gate") is True
            for violation in result.get("violations") or []:
                text = violation.get("message") if isinstance(violation, dict) else violation
                if text:
                    (gated if blocking else advisory).append(f"{name}{' (gated)' if blocking else ''}: {text}")
    return "; ".join([*gated, *advisory][:10]) or "policy violation (see the session page)"


def _repo(repo: object) -> gitutil.Repo:
    if isinstance(repo, gitutil.Repo):
        return repo
    found = gitutil.discover(os.fspath(repo))  # type: ignore[call-overload]
    if found is None:
        raise UserError(f"not a git repository: {repo}")
    return found


def run_pre_push(
    repo: object,
    remote: str,
    url: str,
    refs: Iterable[object],
    *,
    out: TextIO | None = None,
    records: RecordSource | None = None,
    client_factory: Any = None,
) -> int:
    """The pre-push hook's work. Returns the hook's exit code (non-zero blocks the push)."""
    started = time.monotonic()
    stream = out or sys.stderr
    try:
        found = _repo(repo)
        config = load_project_config(found.root)
    except UserError as exc:
        print(exc.render(), file=stream)
        return 0
    if config is None:
        return 0
    try:
        credentials = load_credentials()
    except UserError as exc:
        print(exc.render(), file=stream)
        credentials = None
    pusher = Pusher(
        found.root,
        found.state_dir,
        config=config,
        credentials=credentials,
        records=records,
        out=stream,
        client_factory=client_factory,
    )
    try:
        code = _pre_push(pusher, remote, url, parse_refs(refs))
    except Exception as exc:  # a bug must not break every push: report it, block only with requireTrace
        pusher.say(f"internal error while attesting ({type(exc).__name__}: {exc}); see the log")
        pusher.log("pre-push", "-", "error", f"{type(exc).__name__}: {exc}")
        code = 1 if config.require_trace else 0
    pusher.log("pre-push", "-", f"exit {code}", f"{(time.monotonic() - started) * 1000:.0f} ms")
    return code


def _pre_push(pusher: Pusher, remote: str, url: str, refs: list[Ref]) -> int:
    config = pusher.config
    assert config is not None
    failures: list[str] = []
    gated: list[str] = []
    # older attestations first: the next push delivers what an earlier one could not
    if pusher.spool.has_pending() and pusher.credentials is not None:
        pusher.deliver_pending()
    grouped = sessions_of(pushed_commits(pusher.root, remote, refs))
    if not grouped:
        return 0
    if pusher.credentials is not None and config.server and not same_server(config.server, pusher.credentials.server):
        pusher.say(
            f"warning: .tracemark.yml names server {config.server}, but your token is for "
            f"{pusher.credentials.server}; attestations are spooled and the token is not sent"
        )
    for session_id, shas in grouped.items():
        try:
            reason = _attest_one(pusher, session_id, shas, url, gated)
        except UserError as exc:
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except SpoolError as exc:
            reason = str(exc)
        except Exception as exc:  # never lose the push to a bug: report and go on
            reason = f"internal error: {type(exc).__name__}: {exc}"
            pusher.log("pre-push", session_id, "error", reason)
        if reason:
            failures.append(f"session {session_id}: {reason}")
    if gated:
        pusher.say("push blocked by a gated policy violation (the attestation is stored on the server):")
        for line in gated:
            pusher.say(f"  {line}")
        return 1
    if failures and config.require_trace:
        pusher.say("push blocked: requireTrace is true in .tracemark.yml and attestation failed:")
        for line in failures:
            pusher.say(f"  {line}")
        pusher.say(
            "  fix the cause (e.g. `tracemark auth login --server URL --token T`, or check the server), then push "
            "again; spooled attestations are sent by `tracemark push`"
        )
        return 1
    for line in failures:
        pusher.say(f"warning: {line}")
    return 0


def _attest_one(pusher: Pusher, session_id: str, shas: list[str], url: str, gated: list[str]) -> str:
    """Attest and send one session; returns "" on success, else the failure reason."""
    if pusher.credentials is None:
        return "not logged in: run `tracemark auth login --server URL --token T` (nothing was sent)"
    state = pusher.records.session(session_id)
    if state is None:
        pusher.say(f"session {session_id} has no local record (a teammate's?); skipped")
        pusher.log("pre-push", session_id, "skipped", "no local session record")
        return ""
    fingerprint = pusher.fingerprint(state, shas)
    ledger = pusher.ledger(session_id)
    if ledger.get("fingerprint") == fingerprint:
        # already accepted with exactly these commits and transcript: nothing new to send
        if ledger.get("gated"):
            gated.append(f"session {session_id}: {ledger.get('message', 'policy violation')}")
        return ""
    if fingerprint in pusher.spooled_fingerprints():
        return "its attestation is still waiting in the spool (the server could not be reached)"
    prepared = pusher.prepare(state, shas, url, fingerprint)
    outcome = pusher.send(prepared.item)
    if outcome.kind in ("accepted", "gated"):
        _discard_staged(pusher, prepared.item)
        pusher.remember(session_id, prepared.fingerprint, outcome, prepared.item.envelope)
        pusher._report(session_id, outcome)
        if outcome.kind == "gated":
            gated.append(f"session {session_id}: {outcome.message} {' '.join(outcome.urls)}".rstrip())
        return ""
    if outcome.kind == "transient":
        spooled = pusher.spool_item(prepared.item, outcome.message)
        pusher.log("pre-push", session_id, "spooled" if spooled else "lost", outcome.message)
        suffix = "; spooled for the next push or `tracemark push`" if spooled else ""
        return f"{outcome.message}{suffix}"
    path = pusher.spool.add(prepared.item)
    pusher.spool.reject(path, outcome.message, pusher.spool.transcript_path(prepared.item))
    pusher.log("pre-push", session_id, "rejected", outcome.message)
    return f"the server rejected the attestation: {outcome.message} (kept in spool/rejected, not retried)"


def _discard_staged(pusher: Pusher, item: SpoolItem) -> None:
    path = pusher.spool.transcript_path(item)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def deliver_spool(repo: object, *, out: TextIO | None = None, client_factory: Any = None) -> int:
    """`tracemark push`: deliver every spooled attestation. Exit 0 when the spool is empty after."""
    found = _repo(repo)
    credentials = load_credentials()
    if credentials is None:
        raise UserError("not logged in", "run `tracemark auth login --server URL --token T`")
    pusher = Pusher(
        found.root,
        found.state_dir,
        config=load_project_config(found.root),
        credentials=credentials,
        out=out,
        client_factory=client_factory,
    )
    if not pusher.spool.has_pending():
        pusher.say("nothing to deliver: the spool is empty")
        return 0
    delivered, pending, rejected = pusher.deliver_pending()
    gated = len(pusher.gated_sessions)
    pusher.say(
        f"{delivered} delivered ({gated} with a gated policy violation), {pending} still pending, {rejected} rejected"
    )
    return 0 if pending == 0 and rejected == 0 and gated == 0 else 1
