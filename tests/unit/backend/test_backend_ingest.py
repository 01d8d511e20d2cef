"""Ingest (SPEC §3.2) on the in-memory store: verification, validation, replays, merging."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from attest_builders import (
    FakePolicies,
    RecordingRollups,
    commit_entry,
    evidence,
    sha,
    sign,
    statement,
)

from tracemark_common import dsse
from tracemark_common.auth import Principal
from tracemark_common.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from tracemark_common.ingest import erase_session, ingest_attestation
from tracemark_common.store import get_session
from tracemark_common.store.memory import MemoryBlobs, MemoryStore
from tracemark_common.store.records import KeyRecord, OrgRecord, ProjectRecord, TokenRecord

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALICE = Principal(org="acme", sub="alice", role="member", scopes=("push", "read"), token_id="tok_a", kind="user")
ADMIN = Principal(
    org="acme", sub="boss", role="org_admin", scopes=("push", "read", "admin"), token_id="tok_b", kind="user"
)


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.blobs = MemoryBlobs()
        self.policies = FakePolicies()
        self.rollups = RecordingRollups()
        self.key = dsse.generate_private_key()
        for org in ("acme", "other"):
            self.store.create_org(OrgRecord(name=org, created_at="2026-01-01T00:00:00.000Z"))
            self.store.create_project(ProjectRecord(org=org, name="web", created_at="2026-01-01T00:00:00.000Z"))
        self.token("acme", "tok_a", "alice")
        self.register("acme", "alice", "tok_a", self.key)

    def token(self, org: str, token_id: str, sub: str) -> None:
        self.store.put_token(
            TokenRecord(
                org=org,
                id=token_id,
                sub=sub,
                kind="user",
                role="member",
                scopes=["push", "read"],
                created_at="2026-01-01T00:00:00.000Z",
                expires_at_epoch=2**40,
            )
        )

    def register(self, org: str, sub: str, token_id: str, key: dsse.PrivateKey) -> str:
        public = key.public_key()
        kid = dsse.keyid(public)
        self.store.create_key(
            KeyRecord(
                org=org,
                keyid=kid,
                pem=dsse.public_key_pem(public),
                subject=sub,
                token_id=token_id,
                created_at="2026-01-01T00:00:00.000Z",
            )
        )
        return kid

    def push(self, envelope: Any, principal: Principal = ALICE, at: datetime = NOW, **kwargs: Any) -> Any:
        if isinstance(envelope, dict):
            envelope = json.dumps(envelope).encode()
        return ingest_attestation(
            principal,
            envelope,
            at,
            store=self.store,
            blobs=self.blobs,
            policy_evaluator=self.policies,
            rollup_writer=self.rollups,
            base_url="http://test",
            **kwargs,
        )

    def envelope(self, ev: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return sign(statement(ev or evidence(commits=[commit_entry(1)]), **kwargs), self.key)

    def nothing_stored(self) -> bool:
        return not self.store.sessions and not self.store.attestations and not self.blobs.objects


@pytest.fixture
def world() -> World:
    return World()


def test_a_valid_attestation_is_stored_indexed_and_counted(world: World) -> None:
    # Given a signed attestation of one session with two commits
    ev = evidence("sess-1", commits=[commit_entry(1), commit_entry(2, added=20, ai=5)])
    # When alice pushes it
    result = world.push(world.envelope(ev))
    # Then it is created, with the session's URL and the policy results
    assert result.status == 201
    assert result.body["sessions"] == [{"id": "sess-1", "url": "http://test/v1/sessions/sess-1"}]
    assert result.body["gated"] is False
    assert result.body["policy_results"][0]["policy"] == "token-budget"
    record = get_session("acme", "sess-1", store=world.store, blobs=world.blobs)
    assert record is not None
    assert record.user == "alice" and record.project == "web"
    assert record.commits == [sha(1), sha(2)]
    assert record.evidence["data"]["session"]["id"] == "sess-1"
    assert record.digests == [result.body["digest"]]
    assert world.store.sessions_for_commit("acme", sha(2)) == ["sess-1"]
    assert world.blobs.get(f"envelopes/{result.body['digest']}.json") is not None
    # And the rollups saw one new session with its lines per commit
    [(before, after)] = world.rollups.calls
    assert before is None
    assert after.commits[sha(2)].lines_added == 20 and after.commits[sha(2)].ai_lines_added == 5
    assert after.total_tokens == 3052
    assert after.at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)


def test_the_same_envelope_again_is_200_with_the_stored_result_and_counted_once(world: World) -> None:
    envelope = world.envelope()
    first = world.push(envelope)
    # When the identical envelope arrives again (even re-serialised with other key order)
    again = world.push(json.dumps(envelope, indent=2, sort_keys=True).encode())
    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert len(world.rollups.calls) == 1
    assert len(world.store.attestations) == 1


def test_a_push_whose_rollup_update_died_is_counted_when_the_client_retries(world: World) -> None:
    # Given a push stored whose rollup update died (the Lambda was killed after the transaction)
    calls: list[Any] = []

    def dying(before: Any, after: Any) -> None:
        calls.append(after)
        if len(calls) == 1:
            raise RuntimeError("killed")
        RecordingRollups.record_session(world.rollups, before, after)

    world.rollups.record_session = dying  # type: ignore[method-assign]
    envelope = world.envelope()
    assert world.push(envelope).status == 201
    assert world.rollups.calls == []
    # When the client retries the same envelope (its first answer never arrived)
    assert world.push(envelope).status == 200
    # Then the rollups count the stored session, once; a further retry changes nothing
    [(_, after)] = world.rollups.calls
    assert after.session_id == world.store.get_session("acme", after.session_id).id
    assert world.push(envelope).status == 200 and len(world.rollups.calls) == 1
    assert world.rollups.sweeps == ["acme"]


def test_twenty_identical_pushes_racing_store_and_count_once(world: World) -> None:
    envelope = json.dumps(world.envelope()).encode()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: world.push(envelope), range(20)))
    assert sorted(r.status for r in results) == [200] * 19 + [201]
    assert len({json.dumps(r.body, sort_keys=True) for r in results}) == 1
    assert len(world.rollups.calls) == 1
    assert world.store.get_session("acme", "sess-1").digests == [results[0].body["digest"]]  # type: ignore[union-attr]


def test_re_attestation_merges_commits_and_takes_usage_from_the_latest(world: World) -> None:
    # Given a session pushed with commit 1 and 2
    first = evidence(
        "s",
        ended="2026-11-20T11:00:00Z",
        commits=[commit_entry(1), commit_entry(2)],
        usage={"input_tokens": 10, "output_tokens": 90, "total_tokens": 100},
        models=["claude-opus-4-6"],
    )
    world.push(world.envelope(first))
    # When it is pushed again later: commit 2 amended into 3, plus a new commit 4, more usage
    second = evidence(
        "s",
        ended="2026-11-20T11:30:00Z",
        commits=[commit_entry(3, rewritten_from=[2]), commit_entry(4)],
        usage={"input_tokens": 20, "output_tokens": 180, "total_tokens": 200},
        models=["claude-sonnet-4-6"],
    )
    result = world.push(world.envelope(second))
    assert result.status == 201
    record = get_session("acme", "s", store=world.store, blobs=world.blobs)
    assert record is not None
    # Then commits are the union minus what was rewritten, and usage comes from the latest, not summed
    assert record.commits == [sha(1), sha(3), sha(4)]
    assert record.rewritten_from == {sha(3): [sha(2)]}
    assert record.summary["total_tokens"] == 200
    assert record.ended_at == "2026-11-20T11:30:00.000Z"
    assert [e["sha"] for e in record.evidence["data"]["git_context"]["tracemark_commits"]] == [sha(1), sha(3), sha(4)]
    assert record.evidence["data"]["model"]["primary"] == "claude-sonnet-4-6"
    assert len(record.digests) == 2
    # And the rewritten sha still finds the session
    assert world.store.sessions_for_commit("acme", sha(2)) == ["s"]
    # And the rollups moved by the difference: before = the first state, after = the merged one
    (_, first_after), (before, after) = world.rollups.calls
    assert before == first_after
    assert set(after.commits) == {sha(1), sha(3), sha(4)}
    assert after.total_tokens == 200 and set(after.models) == {"claude-sonnet-4-6"}
    # And only the merged evidence is kept in S3 (the superseded one is gone)
    assert len([k for k in world.blobs.objects if k.startswith("evidence/")]) == 1


def test_an_older_attestation_arriving_late_adds_commits_but_keeps_the_latest_usage(world: World) -> None:
    late = evidence(
        "s",
        ended="2026-11-20T11:30:00Z",
        commits=[commit_entry(2)],
        usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 999},
    )
    early = evidence(
        "s",
        ended="2026-11-20T10:30:00Z",
        commits=[commit_entry(1)],
        usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 5},
    )
    world.push(world.envelope(late))
    world.push(world.envelope(early))
    record = world.store.get_session("acme", "s")
    assert record is not None
    assert set(record.commits) == {sha(1), sha(2)}
    assert record.summary["total_tokens"] == 999
    assert record.ended_at == "2026-11-20T11:30:00.000Z"


def test_policy_violations_are_the_union_over_attestations_and_gate_the_push(world: World) -> None:
    world.store.set_project_contract("acme", "web", "gate: true", "2026-01-01T00:00:00.000Z", "boss")
    big = evidence(
        "s",
        ended="2026-11-20T10:30:00Z",
        commits=[commit_entry(1)],
        usage={"input_tokens": 1, "output_tokens": 600_000, "total_tokens": 600_001},
    )
    small = evidence(
        "s",
        ended="2026-11-20T11:30:00Z",
        commits=[commit_entry(2)],
        usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    )
    first = world.push(world.envelope(big))
    second = world.push(world.envelope(small))
    assert first.body["gated"] is True
    # The later, passing attestation does not wash away the earlier violation
    assert second.body["gated"] is True
    [result] = second.body["policy_results"]
    assert result["status"] == "fail"
    assert result["violations"] == ["token budget exceeded: 600001 > 500000"]
    assert world.policies.calls[0][0] == "gate: true"


def test_gate_default_from_org_settings_reaches_the_evaluator(world: World) -> None:
    world.store.update_org_settings("acme", {"gate_default": True})
    world.push(world.envelope())
    assert world.policies.calls[0][2] is True


def test_a_broken_policy_engine_stores_the_session_with_a_neutral_result(world: World) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("engine exploded")

    world.policies = broken  # type: ignore[assignment]
    result = world.push(world.envelope())
    assert result.status == 201
    assert result.body["policy_results"][0]["status"] == "neutral"


# rejections: every one a 4xx with a message, nothing stored ----------------------------------------
def test_org_mismatch_is_409(world: World) -> None:
    with pytest.raises(Conflict) as err:
        world.push(world.envelope(org="other"))
    assert err.value.code == "org_mismatch"
    assert world.nothing_stored()


@pytest.mark.parametrize("organization", ["", None])
def test_an_empty_or_absent_organization_means_the_tokens(world: World, organization: str | None) -> None:
    stmt = statement(evidence(commits=[commit_entry(1)]))
    if organization is None:
        del stmt["predicate"]["organization"]
    else:
        stmt["predicate"]["organization"] = organization
    assert world.push(sign(stmt, world.key)).status == 201
    assert world.store.get_session("acme", "sess-1") is not None


def test_unknown_project_is_404(world: World) -> None:
    with pytest.raises(NotFound) as err:
        world.push(world.envelope(project="nope"))
    assert err.value.code == "unknown_project"
    assert "POST /v1/projects" in err.value.message
    assert world.nothing_stored()


def test_a_key_nobody_registered_is_unknown_key(world: World) -> None:
    stranger = dsse.generate_private_key("ed25519")
    with pytest.raises(Unprocessable) as err:
        world.push(sign(statement(evidence(commits=[commit_entry(1)])), stranger))
    assert err.value.code == "unknown_key"
    assert world.nothing_stored()


def test_another_users_key_is_not_trusted_for_alice(world: World) -> None:
    bob_key = dsse.generate_private_key()
    world.token("acme", "tok_bob", "bob")
    world.register("acme", "bob", "tok_bob", bob_key)
    with pytest.raises(Unprocessable) as err:
        world.push(sign(statement(evidence(commits=[commit_entry(1)])), bob_key))
    assert err.value.code == "unknown_key"


def test_a_key_registered_in_another_org_is_unknown_here(world: World) -> None:
    other_key = dsse.generate_private_key()
    world.token("other", "tok_o", "alice")
    world.register("other", "alice", "tok_o", other_key)
    with pytest.raises(Unprocessable) as err:
        world.push(sign(statement(evidence(commits=[commit_entry(1)])), other_key))
    assert err.value.code == "unknown_key"


def test_a_tampered_payload_is_bad_signature(world: World) -> None:
    envelope = world.envelope()
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["project"] = "web2"
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(Unprocessable) as err:
        world.push(envelope)
    assert err.value.code == "bad_signature"
    assert world.nothing_stored()


def test_revoked_key_and_key_of_a_revoked_token_are_refused(world: World) -> None:
    envelope = world.envelope()
    world.store.revoke_token("acme", "tok_a", "2026-11-20T00:00:00.000Z")
    with pytest.raises(Unprocessable) as err:
        world.push(envelope)
    assert err.value.code == "key_revoked"
    fresh = World()
    fresh.store.revoke_key("acme", dsse.keyid(fresh.key.public_key()), "2026-11-20T00:00:00.000Z")
    with pytest.raises(Unprocessable) as err:
        fresh.push(fresh.envelope())
    assert err.value.code == "key_revoked"


def test_earlier_attestations_stay_valid_after_revocation(world: World) -> None:
    envelope = world.envelope()
    assert world.push(envelope).status == 201
    world.store.revoke_key("acme", dsse.keyid(world.key.public_key()), "2026-11-20T00:00:00.000Z")
    assert world.store.get_session("acme", "sess-1") is not None


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda s: s.update({"_type": "https://in-toto.io/Statement/v0.1"}), "invalid_statement"),
        (lambda s: s.update({"predicateType": "https://slsa.dev/provenance/v1"}), "invalid_statement"),
        (lambda s: s.update({"subject": []}), "invalid_statement"),
        (lambda s: s.pop("subject"), "invalid_statement"),
        (lambda s: s["subject"][0].update({"name": "not-a-sha"}), "invalid_statement"),
        (lambda s: s["subject"][0]["digest"].update({"gitCommit": sha(99)}), "invalid_statement"),
        (lambda s: s.update({"predicate": "x"}), "invalid_statement"),
        (lambda s: s["predicate"].update({"organization": 5}), "invalid_statement"),
        (lambda s: s["predicate"].update({"project": "../etc"}), "invalid_statement"),
        (lambda s: s["predicate"].update({"evidence": []}), "invalid_evidence"),
        (lambda s: s["predicate"]["evidence"].update({"chainloop.material.evidence.id": "X"}), "invalid_evidence"),
        (lambda s: s["predicate"]["evidence"]["data"].pop("agent"), "schema_violation"),
        (lambda s: s["predicate"]["evidence"]["data"].update({"extra": 1}), "schema_violation"),
        (lambda s: s["predicate"]["evidence"]["data"]["session"].update({"duration_seconds": -1}), "schema_violation"),
        (lambda s: s["predicate"]["evidence"]["data"]["session"].update({"id": "a/b"}), "invalid_evidence"),
        (
            lambda s: s["predicate"]["evidence"]["data"]["session"].update({"started_at": "yesterday"}),
            "invalid_evidence",
        ),
        (
            lambda s: s["predicate"]["evidence"]["data"]["session"].update({"ended_at": "2020-01-01T00:00:00Z"}),
            "invalid_evidence",
        ),
        (
            lambda s: s["predicate"]["evidence"]["data"]["git_context"]["tracemark_commits"][0].update(
                {"sha": sha(77)}
            ),
            "invalid_statement",
        ),
        (
            lambda s: s["predicate"]["evidence"]["data"]["git_context"]["tracemark_commits"][0].update(
                {"rewritten_from": ["zz"]}
            ),
            "invalid_evidence",
        ),
        (lambda s: s["predicate"].update({"transcript": {"sha256": "x", "size": 1}}), "invalid_statement"),
    ],
)
def test_invalid_statements_are_422_and_store_nothing(world: World, mutate: Any, code: str) -> None:
    stmt = statement(evidence(commits=[commit_entry(1)]))
    mutate(stmt)
    with pytest.raises(Unprocessable) as err:
        world.push(sign(stmt, world.key))
    assert err.value.code == code
    assert err.value.message
    assert world.nothing_stored()


def test_schema_violation_message_points_at_the_field(world: World) -> None:
    stmt = statement(evidence(commits=[commit_entry(1)]))
    stmt["predicate"]["evidence"]["data"]["session"]["duration_seconds"] = "long"
    with pytest.raises(Unprocessable) as err:
        world.push(sign(stmt, world.key))
    assert "['session']['duration_seconds']" in err.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[1, 2]",
        b'{"payloadType": "application/vnd.in-toto+json", "payloadType": "x"}',
        b'{"payloadType": NaN}',
        b"\xff\xfe",
        b"[" * 10_000 + b"]" * 10_000,
    ],
)
def test_malformed_json_is_400(world: World, body: bytes) -> None:
    with pytest.raises(BadRequest):
        world.push(body)
    assert world.nothing_stored()


def test_payload_type_not_in_toto_is_422(world: World) -> None:
    envelope = sign(statement(evidence(commits=[commit_entry(1)])), world.key, payload_type="text/plain")
    with pytest.raises(Unprocessable) as err:
        world.push(envelope)
    assert err.value.code == "unsupported_payload_type"


def test_envelope_shape_errors_are_422(world: World) -> None:
    for envelope in (
        {"payloadType": "application/vnd.in-toto+json", "payload": "!!", "signatures": []},
        {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": "x"},
        {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": [{"keyid": 1, "sig": 2}]},
    ):
        with pytest.raises(Unprocessable):
            world.push(envelope)
    assert world.nothing_stored()


def test_many_signatures_and_huge_numbers_are_refused_cheaply(world: World) -> None:
    envelope = world.envelope()
    envelope["signatures"] = envelope["signatures"] * 1000
    with pytest.raises(Unprocessable) as err:
        world.push(envelope)
    assert err.value.code == "invalid_envelope"
    with pytest.raises(BadRequest):
        world.push(b'{"payloadType": ' + b"9" * 5000 + b"}")
    stmt = statement(evidence(commits=[commit_entry(1)]))
    payload = json.dumps(stmt).replace('"duration_seconds": 6505', '"duration_seconds": 1e999').encode()
    with pytest.raises(Unprocessable) as err:
        world.push(sign(payload, world.key))
    assert err.value.code == "schema_violation"
    assert world.nothing_stored()


def test_a_payload_that_is_not_json_is_422(world: World) -> None:
    with pytest.raises(Unprocessable) as err:
        world.push(sign(b"not json {", world.key))
    assert err.value.code == "malformed_json"


def test_oversize_bodies_are_413_before_parsing(world: World) -> None:
    with pytest.raises(PayloadTooLarge):
        world.push(b" " * (4 * 1024 * 1024 + 1))
    with pytest.raises(PayloadTooLarge):
        world.push(b"{}", max_bytes=1)


def test_a_token_without_push_scope_cannot_ingest(world: World) -> None:
    reader = Principal(org="acme", sub="alice", role="member", scopes=("read",), token_id="tok_a", kind="user")
    with pytest.raises(Forbidden):
        world.push(world.envelope(), principal=reader)


def test_another_identity_cannot_merge_into_alices_session(world: World) -> None:
    world.push(world.envelope())
    bob_key = dsse.generate_private_key()
    world.token("acme", "tok_bob", "bob")
    world.register("acme", "bob", "tok_bob", bob_key)
    bob = Principal(org="acme", sub="bob", role="member", scopes=("push",), token_id="tok_bob", kind="user")
    ev = evidence(commits=[commit_entry(5)])
    index_before = {k: set(v) for k, v in world.store.commit_index.items()}
    blobs_before = set(world.blobs.objects)
    with pytest.raises(Conflict) as err:
        world.push(sign(statement(ev), bob_key), principal=bob)
    assert err.value.code == "session_owner_mismatch"
    # nothing of bob's attestation was stored: no index entry for commit 5, no blob
    assert world.store.commit_index == index_before
    assert set(world.blobs.objects) == blobs_before
    assert world.store.sessions_for_commit("acme", sha(5)) == []


def test_a_session_cannot_move_to_another_project(world: World) -> None:
    world.push(world.envelope())
    world.store.create_project(ProjectRecord(org="acme", name="api", created_at="2026-01-01T00:00:00.000Z"))
    with pytest.raises(Conflict) as err:
        world.push(world.envelope(evidence(commits=[commit_entry(9)]), project="api"))
    assert err.value.code == "project_mismatch"
    assert world.store.sessions_for_commit("acme", sha(9)) == []


def test_hostile_numbers_in_free_form_usage_do_not_break_rollups(world: World) -> None:
    ev = evidence(
        commits=[commit_entry(1)],
        usage={
            "input_tokens": "many",
            "output_tokens": -5,
            "total_tokens": 10**30,
            "by_model": {"m": "x", "n": {"input_tokens": True}},
        },
    )
    assert world.push(world.envelope(ev)).status == 201
    [(_, after)] = world.rollups.calls
    assert after.total_tokens == 10**15
    assert after.input_tokens == 0 and after.output_tokens == 0


def test_an_unpriced_model_reaches_the_rollups_as_unpriced_not_as_zero_dollars(world: World) -> None:
    # Given evidence whose model is not in the price table (the CLI writes a null cost)
    ev = evidence(
        commits=[commit_entry(1)],
        usage={
            "input_tokens": 100,
            "output_tokens": 20,
            "total_tokens": 120,
            "estimated_cost_usd": None,
            "estimated_cost_usd_priced_models": 0.5,
            "unpriced_models": ["composer-2"],
            "by_model": {
                "composer-2": {"input_tokens": 60, "output_tokens": 10, "estimated_cost_usd": None},
                "claude-opus-4-6": {"input_tokens": 40, "output_tokens": 10, "estimated_cost_usd": 0.5},
            },
        },
    )
    assert world.push(world.envelope(ev)).status == 201
    [(_, after)] = world.rollups.calls
    assert after.unpriced is True and after.cost_usd == 0.5
    assert after.models["composer-2"].priced is False and after.models["claude-opus-4-6"].priced is True


def test_commits_fall_back_to_subjects_without_tracemark_commits(world: World) -> None:
    ev = evidence("plain")  # the Chainloop fixture has no tracemark_commits
    result = world.push(sign(statement(ev, subjects=[sha(7), sha(8)]), world.key))
    assert result.status == 201
    record = world.store.get_session("acme", "plain")
    assert record is not None and record.commits == [sha(7), sha(8)]
    [(_, after)] = world.rollups.calls
    assert after.commits[sha(7)].lines_added == 36  # code_changes totals land on the first commit


def test_session_time_is_clamped_to_the_receive_time(world: World) -> None:
    ev = evidence("future", started="2026-11-20T10:00:00Z", ended="2027-01-01T00:00:00Z", commits=[commit_entry(1)])
    world.push(world.envelope(ev))
    record = world.store.get_session("acme", "future")
    assert record is not None and record.at == "2026-11-20T12:00:00.000Z"


def test_minimal_evidence_without_ended_at_is_accepted(world: World) -> None:
    ev = json.loads((__import__("attest_builders").FIXTURES / "ai-coding-session-minimal.json").read_text())
    result = world.push(sign(statement(ev, subjects=[sha(3)]), world.key))
    assert result.status == 201
    record = world.store.get_session("acme", "abc-123")
    assert record is not None and record.ended_at == "2026-03-25T15:12:29.161Z"


def test_transcript_uploaded_first_is_bound_by_hash_and_size(world: World) -> None:
    import hashlib

    from tracemark_common.ingest import transcript_upload_key

    data = b"\x1f\x8b transcript bytes"
    digest = hashlib.sha256(data).hexdigest()
    world.blobs.put(transcript_upload_key("acme", digest), data)
    world.push(world.envelope(transcript={"sha256": digest, "size": len(data)}))
    record = world.store.get_session("acme", "sess-1")
    assert record is not None and record.transcript == {
        "sha256": digest,
        "size": len(data),
        "key": f"transcripts/acme/{digest}.jsonl.gz",
    }
    # A transcript whose bytes do not match is refused
    other = World()
    other.blobs.put(transcript_upload_key("acme", digest), b"something else")
    with pytest.raises(Unprocessable) as err:
        other.push(other.envelope(transcript={"sha256": digest, "size": len(data)}))
    assert err.value.code == "transcript_mismatch"
    assert not other.store.sessions and set(other.blobs.objects) == {transcript_upload_key("acme", digest)}


def test_erase_session_removes_everything_and_moves_rollups_back(world: World) -> None:
    result = world.push(world.envelope())
    erase_session(ADMIN, "sess-1", store=world.store, blobs=world.blobs, rollup_writer=world.rollups)
    assert world.store.get_session("acme", "sess-1") is None
    assert world.store.get_attestation("acme", result.body["digest"]) is None
    assert world.store.sessions_for_commit("acme", sha(1)) == []
    assert not world.blobs.objects
    (_, added), (removed, after) = world.rollups.calls
    assert removed == added and after is None
    with pytest.raises(NotFound):
        erase_session(ADMIN, "sess-1", store=world.store, blobs=world.blobs, rollup_writer=world.rollups)
    with pytest.raises(Forbidden):
        erase_session(ALICE, "sess-1", store=world.store, blobs=world.blobs, rollup_writer=world.rollups)


def test_open_prs_are_re_correlated_once_per_new_attestation(world: World) -> None:
    calls: list[tuple[str, str, str]] = []
    envelope = world.envelope()
    first = world.push(envelope, after_commit=lambda *args: calls.append(args))
    world.push(envelope, after_commit=lambda *args: calls.append(args))  # a replay starts nothing
    assert calls == [("acme", "sess-1", first.body["digest"])]

    def failing(*_: Any) -> None:
        raise RuntimeError("step functions down")

    # a failure to start the workflow never fails the push
    assert world.push(world.envelope(evidence("s2", commits=[commit_entry(2)])), after_commit=failing).status == 201


def test_a_statement_built_and_signed_by_the_cli_library_is_accepted(world: World) -> None:
    from tracemark_common.evidence.statement import TranscriptRef, build_statement, sign_statement

    # Given the statement exactly as the CLI builds it (canonical JSON, organisation unknown)
    stmt = build_statement(
        evidence("cli-made", commits=[commit_entry(1), commit_entry(2)]),
        [sha(1), sha(2)],
        project="web",
        organization=None,
        cli_version="0.1.0",
        transcript=TranscriptRef(sha256="b" * 64, size=10),
    )
    result = world.push(sign_statement(stmt, world.key))
    assert result.status == 201
    record = world.store.get_session("acme", "cli-made")
    assert record is not None and record.commits == [sha(1), sha(2)]
    # the transcript was not uploaded: the session says so rather than failing
    assert record.transcript == {"sha256": "b" * 64, "size": 10, "key": None}


def test_too_many_subjects_and_oversized_sessions_are_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = evidence("many")
    with pytest.raises(Unprocessable) as err:
        world.push(sign(statement(ev, subjects=[sha(n) for n in range(1001)]), world.key))
    assert err.value.code == "invalid_statement"
    # 1000 commits, each with a long policy violation list, overflows the session item: refused, not a 500
    world.policies.budget = -1
    big = evidence("big", commits=[commit_entry(n) for n in range(1000)])
    big["data"]["usage"]["total_tokens"] = 10
    monkeypatch.setattr("tracemark_common.ingest.MAX_SESSION_RECORD_BYTES", 50_000)
    with pytest.raises(Unprocessable) as err:
        world.push(sign(statement(big), world.key))
    assert err.value.code == "session_too_large"
    assert world.nothing_stored()
    assert world.store.sessions_for_commit("acme", sha(5)) == []
