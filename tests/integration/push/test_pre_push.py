"""pre-push against a real HTTP server on 127.0.0.1, real git repositories and real signing keys.

Capture records come from an in-memory RecordSource built with the capture package's own
dataclasses (the reader API contract), so these tests do not depend on its on-disk format."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from push_helpers import git
from push_server import PushServer

from tracemark import credentials
from tracemark.capture.records import CommitRecord, FileChange, SessionLines, SessionState
from tracemark.client import ApiClient
from tracemark.push import ZERO_SHA, deliver_spool, run_pre_push
from tracemark.spool import Spool
from tracemark_common import dsse

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "claude" / "claude_transcript_write_create_and_bash.jsonl"
SESSION = "sess-1"
SECRET = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@dataclass
class FakeRecords:
    sessions: dict[str, SessionState] = field(default_factory=dict)
    commits: dict[str, CommitRecord] = field(default_factory=dict)

    def session(self, session_id: str) -> SessionState | None:
        return self.sessions.get(session_id)

    def commit(self, sha: str) -> CommitRecord | None:
        return self.commits.get(sha)


@dataclass
class World:
    root: Path
    state_dir: Path
    records: FakeRecords
    sha: str
    server: PushServer
    key: dsse.PrivateKey
    out: io.StringIO = field(default_factory=io.StringIO)

    def push(self, *, factory: Any = None) -> int:
        self.out = io.StringIO()
        refs = [("refs/heads/main", self.sha, "refs/heads/main", ZERO_SHA)]
        return run_pre_push(
            self.root,
            "origin",
            "https://bob:pw@github.com/o/r.git",
            refs,
            out=self.out,
            records=self.records,
            client_factory=factory or fast_client,
        )

    @property
    def output(self) -> str:
        return self.out.getvalue()

    def spooled(self) -> list[Path]:
        return Spool(self.state_dir).pending()

    def rejected(self) -> list[Path]:
        return sorted((self.state_dir / "spool" / "rejected").glob("*.json"))


def fast_client(server: str, token: str) -> ApiClient:
    """No waiting between retries; generous timeouts so a loaded machine never fails a test."""
    return ApiClient(server, token, timeout=(5.0, 10.0), retries=2, backoff=0.0, sleep=lambda _s: None)


def impatient_client(server: str, token: str) -> ApiClient:
    """For the timeout tests: the server sleeps 3 s, this client gives up after 0.5 s."""
    return ApiClient(server, token, timeout=(5.0, 0.5), retries=2, backoff=0.0, sleep=lambda _s: None)


def _write_config(root: Path, **extra: Any) -> None:
    lines = ["projectName: demo", "organization: acme"] + [f"{k}: {json.dumps(v)}" for k, v in extra.items()]
    (root / ".tracemark.yml").write_text("\n".join(lines) + "\n")


@pytest.fixture
def world(tmp_path: Path, server: PushServer, monkeypatch: pytest.MonkeyPatch) -> World:
    # Given a repository with one AI commit carrying our trailer
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    _write_config(root)
    (root / "README.md").write_text("hello\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial")
    (root / "a.py").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    (root / "README.md").write_text("hello\nhuman line\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", f"feat: add a.py\n\nTracemark-Sessions: {SESSION}")
    sha = git(root, "rev-parse", "HEAD").strip()
    # and a transcript (with a secret in a tool result) recorded for the session
    transcript = tmp_path / "t" / f"{SESSION}.jsonl"
    transcript.parent.mkdir()
    lines = FIXTURE.read_text().splitlines()
    leak = {"type": "user", "message": {"content": f"my token is {SECRET}"}, "timestamp": "2026-02-06T06:42:20.000Z"}
    transcript.write_text("\n".join([*lines[:3], json.dumps(leak), *lines[3:]]) + "\n")
    records = FakeRecords(
        sessions={SESSION: SessionState(session_id=SESSION, transcript_path=str(transcript), model="claude-opus-4-6")},
        commits={
            sha: CommitRecord(
                sha=sha,
                parents=[],
                committed_at=0,
                recorded_at="",
                session_ids=[SESSION],
                trailer_session_ids=[SESSION],
                rewritten_from=[],
                files=[
                    FileChange("a.py", "A", 10, 0, 2, {SESSION: SessionLines(ranges=[(1, 8)], line_count=8, removed=0)})
                ],
            )
        },
    )
    # and a logged-in user whose key the server knows
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TRACEMARK_SERVER", raising=False)
    monkeypatch.delenv("TRACEMARK_TOKEN", raising=False)
    key = dsse.generate_private_key()
    credentials.save_key_pair(dsse.private_key_pem(key), dsse.public_key_pem(key.public_key()))
    credentials.save_credentials(server.url, server.state.token, dsse.keyid(key.public_key()))
    return World(root, root / ".git" / "tracemark", records, sha, server, key)


def _statement(envelope: dict[str, Any], key: dsse.PrivateKey) -> dict[str, Any]:
    public = key.public_key()
    verified = dsse.verify(envelope, {dsse.keyid(public): public})
    statement: dict[str, Any] = json.loads(verified.payload)
    return statement


def test_201_attests_uploads_redacted_transcript_and_prints_url(world: World) -> None:
    # When the commit is pushed
    assert world.push() == 0
    # Then one attestation reached the server, signed by the user's key
    (post,) = world.server.state.attestation_posts()
    assert post.headers["Authorization"] == f"Bearer {world.server.state.token}"
    statement = _statement(json.loads(post.body), world.key)
    assert statement["subject"] == [{"name": world.sha, "digest": {"gitCommit": world.sha}}]
    predicate = statement["predicate"]
    assert (predicate["project"], predicate["organization"]) == ("demo", "acme")
    data = predicate["evidence"]["data"]
    assert data["session"]["id"] == SESSION
    assert data["usage"]["main_thread"]["output_tokens"] == 471
    changes = data["code_changes"]
    assert (changes["lines_added"], changes["ai_lines_added"], changes["human_lines_added"]) == (11, 8, 3)
    assert data["git_context"]["repository"] == "https://github.com/o/r.git"
    assert data["git_context"]["tracemark_commits"][0]["sha"] == world.sha
    # the transcript went separately, redacted, bound by sha256 and size
    (upload_id,) = world.server.state.uploads
    blob = world.server.state.uploads[upload_id]
    assert predicate["transcript"] == {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    text = gzip.decompress(blob).decode()
    assert SECRET not in text and "[REDACTED:github-token]" in text
    assert SECRET not in post.body.decode()
    assert predicate["evidence"]["tracemark"]["redaction"]["rules"]["github-token"] >= 1
    uploads_put = [r for r in world.server.state.requests if r.method == "PUT"]
    assert all("Authorization" not in r.headers for r in uploads_put)
    assert f"session {SESSION} attested: http://127.0.0.1/sessions/{SESSION}" in world.output
    assert world.spooled() == []


def test_organization_defaults_to_the_tokens(world: World) -> None:
    # Given a config without `organization:` and credentials stored before whoami was known
    (world.root / ".tracemark.yml").write_text("projectName: demo\n")
    world.server.state.org = "from-token"
    assert world.push() == 0
    (post,) = world.server.state.attestation_posts()
    assert _statement(json.loads(post.body), world.key)["predicate"]["organization"] == "from-token"


def test_second_push_of_the_same_session_sends_nothing(world: World) -> None:
    assert world.push() == 0
    assert world.push() == 0
    assert len(world.server.state.attestation_posts()) == 1


def test_200_replay_of_a_spooled_envelope_is_accepted(world: World) -> None:
    # Given an envelope the server already stored, spooled again (e.g. a retry after a lost answer)
    world.server.state.mode = "500"
    assert world.push() == 0
    (path,) = world.spooled()
    item = Spool(world.state_dir).load(path)
    world.server.state.stored[dsse.envelope_digest(item.envelope)] = item.envelope
    world.server.state.mode = "ok"
    out = io.StringIO()
    # When `tracemark push` delivers it, the server answers 200 with the stored result
    assert deliver_spool(world.root, out=out, client_factory=fast_client) == 0
    assert world.spooled() == []
    assert "attested" in out.getvalue()


@pytest.mark.parametrize("mode", ["401", "403", "429", "500", "timeout"])
def test_transient_failures_spool_then_tracemark_push_delivers(world: World, mode: str) -> None:
    world.server.state.mode = mode
    world.server.state.delay = 3.0
    assert world.push(factory=impatient_client) == 0
    assert "spooled" in world.output
    (path,) = world.spooled()
    assert json.loads(path.read_text())["last_error"]
    # the next `tracemark push` delivers it
    world.server.state.mode = "ok"
    assert deliver_spool(world.root, out=io.StringIO(), client_factory=fast_client) == 0
    assert world.spooled() == []
    assert len(world.server.state.stored) == 1


def _second_session(world: World) -> str:
    """Another AI commit, of session sess-2, on top of the first."""
    (world.root / "b.py").write_text("b = 1\n")
    git(world.root, "add", ".")
    git(world.root, "commit", "-q", "-m", "feat: b\n\nTracemark-Sessions: sess-2")
    sha = git(world.root, "rev-parse", "HEAD").strip()
    first = world.records.sessions[SESSION]
    world.records.sessions["sess-2"] = SessionState(session_id="sess-2", transcript_path=first.transcript_path)
    world.records.commits[sha] = CommitRecord(
        sha=sha,
        parents=[],
        committed_at=0,
        recorded_at="",
        session_ids=["sess-2"],
        trailer_session_ids=["sess-2"],
        rewritten_from=[],
        files=[FileChange("b.py", "A", 1, 0, 0, {"sess-2": SessionLines(ranges=[(1, 1)], line_count=1, removed=0)})],
    )
    world.sha = sha
    return sha


def test_two_sessions_in_one_push_give_two_attestations(world: World) -> None:
    _second_session(world)
    assert world.push() == 0
    sessions = sorted(
        _statement(json.loads(p.body), world.key)["predicate"]["evidence"]["data"]["session"]["id"]
        for p in world.server.state.attestation_posts()
    )
    assert sessions == [SESSION, "sess-2"]


def test_an_unreachable_server_is_waited_for_once_per_push(world: World) -> None:
    # Given two sessions and a server that never answers in time
    _second_session(world)
    world.server.state.mode = "timeout"
    world.server.state.delay = 3.0
    assert world.push(factory=impatient_client) == 0
    # Then the first attestation used its retries and the second was spooled without waiting
    assert len(world.server.state.attestation_posts()) == 2
    assert len(world.spooled()) == 2


def test_gated_result_delivered_from_the_spool_still_blocks_later_pushes(world: World) -> None:
    world.server.state.mode = "500"
    assert world.push() == 0
    world.server.state.mode = "gated"
    assert deliver_spool(world.root, out=io.StringIO(), client_factory=fast_client) == 1  # stored, but gated
    posts = len(world.server.state.attestation_posts())
    assert world.push() == 1
    assert "too many tokens" in world.output
    assert len(world.server.state.attestation_posts()) == posts


def test_5xx_is_retried_before_spooling(world: World) -> None:
    world.server.state.mode = "500"
    world.push()
    assert len(world.server.state.attestation_posts()) == 2  # retries=2 in fast_client


def test_413_goes_to_rejected_with_the_servers_message(world: World) -> None:
    world.server.state.mode = "413"
    assert world.push() == 0
    assert world.spooled() == []
    (rejected,) = world.rejected()
    reason = rejected.with_name(rejected.stem + ".reason.txt").read_text()
    assert "scripted 413" in reason
    assert "rejected" in world.output
    # not retried
    world.server.state.mode = "ok"
    assert deliver_spool(world.root, out=io.StringIO(), client_factory=fast_client) == 0
    assert world.server.state.stored == {}


def test_server_down_spools(world: World) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials.save_credentials(f"http://127.0.0.1:{port}", "tok", "")
    assert world.push() == 0
    assert len(world.spooled()) == 1
    assert "could not connect" in world.output


def test_require_trace_blocks_on_failure(world: World) -> None:
    _write_config(world.root, requireTrace=True)
    world.server.state.mode = "500"
    assert world.push() == 1
    assert "push blocked: requireTrace is true" in world.output
    assert len(world.spooled()) == 1  # nothing lost


def test_require_trace_blocks_when_not_logged_in(world: World) -> None:
    _write_config(world.root, requireTrace=True)
    credentials.delete_credentials()
    assert world.push() == 1
    assert "not logged in" in world.output
    assert world.server.state.requests == []


def test_gated_violation_fails_every_push_with_that_session(world: World) -> None:
    world.server.state.mode = "gated"
    assert world.push() == 1
    assert "gated policy" in world.output and "too many tokens" in world.output
    assert len(world.server.state.stored) == 1  # stored anyway
    assert world.push() == 1  # and again on the next push of the same session
    assert len(world.server.state.attestation_posts()) == 1


def test_token_never_sent_to_another_server(world: World) -> None:
    # Given a committed server that differs from the one the token belongs to
    _write_config(world.root, server="https://other.example.com")
    assert world.push() == 0
    assert "is not the server your token belongs to" in world.output
    assert world.server.state.requests == []
    (path,) = world.spooled()
    assert json.loads(path.read_text())["server"] == "https://other.example.com"
    # `tracemark push` keeps it pending rather than sending the token elsewhere
    assert deliver_spool(world.root, out=io.StringIO(), client_factory=fast_client) == 1
    assert world.server.state.requests == []


def test_tampered_spool_item_is_detected_and_not_sent(world: World) -> None:
    world.server.state.mode = "500"
    world.push()
    (path,) = world.spooled()
    item = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(item["envelope"]["payload"]))
    statement["predicate"]["project"] = "evil"
    item["envelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    item["envelope_sha256"] = dsse.envelope_digest(item["envelope"])  # even with a recomputed digest
    path.write_text(json.dumps(item))
    world.server.state.mode = "ok"
    posts_before = len(world.server.state.attestation_posts())
    out = io.StringIO()
    assert deliver_spool(world.root, out=out, client_factory=fast_client) == 1
    assert "modified after signing" in out.getvalue()
    assert len(world.server.state.attestation_posts()) == posts_before
    assert world.rejected()


def test_tampered_spooled_transcript_is_detected(world: World) -> None:
    world.server.state.mode = "500"
    world.push()
    (gz,) = (world.state_dir / "spool").glob("*.jsonl.gz")
    gz.write_bytes(gzip.compress(b'{"evil": true}\n'))
    world.server.state.mode = "ok"
    assert deliver_spool(world.root, out=io.StringIO(), client_factory=fast_client) == 1
    assert world.server.state.stored == {}


def test_garbage_spool_file_is_rejected_not_crashing(world: World) -> None:
    spool = world.state_dir / "spool"
    spool.mkdir(parents=True)
    (spool / "junk.json").write_bytes(b"\x00\xffnot json")
    assert deliver_spool(world.root, out=io.StringIO(), client_factory=fast_client) == 1
    assert (spool / "rejected" / "junk.json").exists()


def test_no_trailer_commits_return_at_once(world: World) -> None:
    (world.root / "b.txt").write_text("x\n")
    git(world.root, "add", ".")
    git(world.root, "commit", "-q", "-m", "human only")
    head = git(world.root, "rev-parse", "HEAD").strip()
    refs = [("refs/heads/main", head, "refs/heads/main", world.sha)]  # the AI commit is already on the remote
    assert run_pre_push(world.root, "origin", "u", refs, out=io.StringIO(), records=world.records) == 0
    assert world.server.state.requests == []


def test_deleting_a_branch_attests_nothing(world: World) -> None:
    refs = [("(delete)", ZERO_SHA, "refs/heads/old", world.sha)]
    assert run_pre_push(world.root, "origin", "u", refs, out=io.StringIO(), records=world.records) == 0
    assert world.server.state.requests == []


def test_session_without_local_record_is_skipped(world: World) -> None:
    world.records.sessions.clear()
    assert world.push() == 0
    assert "no local record" in world.output
    assert world.server.state.requests == []


def test_transcript_deleted_before_push_still_attests_commits(world: World) -> None:
    Path(world.records.sessions[SESSION].transcript_path or "").unlink()
    assert world.push() == 0
    (post,) = world.server.state.attestation_posts()
    data = _statement(json.loads(post.body), world.key)["predicate"]["evidence"]["data"]
    assert any("Transcript unavailable" in w for w in data["warnings"])
    assert data["code_changes"]["ai_lines_added"] == 8
    assert "transcript" not in _statement(json.loads(post.body), world.key)["predicate"]


def test_upload_transcript_false_sends_no_transcript(world: World) -> None:
    _write_config(world.root, uploadTranscript=False)
    assert world.push() == 0
    assert world.server.state.uploads == {}
    (post,) = world.server.state.attestation_posts()
    predicate = _statement(json.loads(post.body), world.key)["predicate"]
    assert "transcript" not in predicate
    assert predicate["evidence"]["tracemark"]["redaction"]["total"] >= 1  # still scanned


def test_full_disk_or_unwritable_spool_is_a_clear_message(world: World) -> None:
    # Given a spool location that cannot be a directory (a real fault, no mocking)
    world.state_dir.mkdir(parents=True, exist_ok=True)
    (world.state_dir / "spool").write_text("not a directory")
    world.server.state.mode = "500"
    assert world.push() == 0
    assert "cannot" in world.output
    _write_config(world.root, requireTrace=True)
    assert world.push() == 1


def test_upload_failure_spools(world: World) -> None:
    world.server.state.mode = "upload-500"
    assert world.push() == 0
    assert len(world.spooled()) == 1
    assert world.server.state.attestation_posts() == []


def test_not_a_tracemark_repo_is_a_no_op(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    git(root, "init", "-q")
    assert run_pre_push(root, "origin", "u", [], out=io.StringIO()) == 0


def test_corrupt_config_does_not_block(world: World) -> None:
    (world.root / ".tracemark.yml").write_text("projectName: [unclosed\n")
    out = io.StringIO()
    assert run_pre_push(world.root, "origin", "u", [], out=out) == 0
    assert "cannot read .tracemark.yml" in out.getvalue()


def test_copied_fixture_is_untouched(world: World) -> None:
    # the pre-push never modifies the user's transcript
    path = Path(world.records.sessions[SESSION].transcript_path or "")
    before = path.read_bytes()
    world.push()
    assert path.read_bytes() == before


def test_transcript_over_the_upload_limit_is_not_bound(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemark.push as push_module

    monkeypatch.setattr(push_module, "MAX_TRANSCRIPT_UPLOAD", 100)
    assert world.push() == 0
    assert world.server.state.uploads == {}
    (post,) = world.server.state.attestation_posts()
    predicate = _statement(json.loads(post.body), world.key)["predicate"]
    assert "transcript" not in predicate
    assert any("Transcript not uploaded" in w for w in predicate["evidence"]["data"]["warnings"])
    assert not list((world.state_dir / "spool").glob("*.gz"))


def test_cursor_session_uses_stop_hook_tokens(world: World) -> None:
    cursor_transcript = FIXTURE.parents[1] / "cursor" / "cursor_agent_transcript.gitai_fixture.jsonl"
    world.records.sessions[SESSION] = SessionState(
        session_id=SESSION,
        agent="cursor",
        agent_version="2026.07.23-e383d2b",
        model="composer-2",
        transcript_path=str(cursor_transcript),
        started_at="2026-07-01T10:00:00.000Z",
        ended_at="2026-07-01T10:30:00.000Z",
        usage={"input_tokens": 40450, "output_tokens": 754},
    )
    assert world.push() == 0
    (post,) = world.server.state.attestation_posts()
    data = _statement(json.loads(post.body), world.key)["predicate"]["evidence"]["data"]
    assert data["agent"] == {"name": "cursor", "version": "2026.07.23-e383d2b"}
    assert (data["usage"]["input_tokens"], data["usage"]["output_tokens"]) == (40450, 754)
    assert data["usage"]["estimated_cost_usd"] is None  # composer-2 has no public price
    assert data["session"]["duration_seconds"] == 1800
    assert data["code_changes"]["ai_lines_added"] == 8


def test_cursor_session_without_tokens_has_the_documented_warning(world: World) -> None:
    world.records.sessions[SESSION] = SessionState(
        session_id=SESSION, agent="cursor", started_at="2026-07-01T10:00:00.000Z", ended_at="2026-07-01T10:00:05.000Z"
    )
    assert world.push() == 0
    (post,) = world.server.state.attestation_posts()
    data = _statement(json.loads(post.body), world.key)["predicate"]["evidence"]["data"]
    assert data["usage"]["available"] is False
    assert any("Cursor does not report token usage" in w for w in data["warnings"])


def test_netrc_never_replaces_the_token(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert world.push() == 0
    assert {r.headers.get("Authorization") for r in world.server.state.requests if r.method == "POST"} == {
        f"Bearer {world.server.state.token}"
    }
    assert all("Authorization" not in r.headers for r in world.server.state.requests if r.method == "PUT")


def test_pushing_again_while_the_server_is_down_does_not_pile_up_the_spool(world: World) -> None:
    world.server.state.mode = "500"
    assert world.push() == 0
    assert world.push() == 0
    assert len(world.spooled()) == 1
    assert "still waiting in the spool" in world.output


def test_oversized_config_is_refused_without_blocking(world: World) -> None:
    (world.root / ".tracemark.yml").write_text("projectName: demo\n" + "# padding\n" * 40_000)
    out = io.StringIO()
    assert run_pre_push(world.root, "origin", "u", [], out=out) == 0
    assert "larger than" in out.getvalue()
    assert world.server.state.requests == []


def test_large_attestation_goes_through_a_presigned_upload(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemark.push as push_module

    monkeypatch.setattr(push_module, "MAX_INLINE_BODY", 1000)
    assert world.push() == 0
    kinds = [meta["kind"] for meta in world.server.state.upload_meta.values()]
    assert sorted(kinds) == ["attestation", "transcript"]
    (post,) = world.server.state.attestation_posts()
    assert set(json.loads(post.body)) == {"upload_id"}
    assert len(world.server.state.stored) == 1
