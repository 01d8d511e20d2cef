"""The Claude Code transcript parser against the six real transcripts and hostile input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from evidence_fixtures import CLAUDE, FIXTURES, TRANSCRIPTS

from tracemark.transcript import TranscriptError, parse_claude_session, parse_cursor_session
from tracemark.transcript.claude import MAX_LINE_BYTES, iter_lines
from tracemark.transcript.cursor import NO_USAGE_WARNING, ReportedTurn


def test_all_six_fixtures_are_present() -> None:
    assert len(TRANSCRIPTS) == 6


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_main_thread_usage_equals_expected(name: str, expected: dict[str, Any]) -> None:
    # Given a real transcript and its independently computed numbers
    want = expected[name]["usage_dedup_last_record_per_message_id"]
    # When it is parsed
    summary = parse_claude_session(CLAUDE / name)
    main = summary.main_thread
    # Then usage is counted once per message.id, the last record winning
    assert {
        "input_tokens": main.input_tokens,
        "output_tokens": main.output_tokens,
        "cache_creation_input_tokens": main.cache_creation_input_tokens,
        "cache_read_input_tokens": main.cache_read_input_tokens,
        "cache_creation.ephemeral_5m_input_tokens": main.cache_creation_5m_input_tokens,
        "cache_creation.ephemeral_1h_input_tokens": main.cache_creation_1h_input_tokens,
    } == want
    assert main.requests == expected[name]["unique_assistant_message_ids"]
    assert main.cost_usd == pytest.approx(expected[name]["estimated_cost_usd_main_thread"], abs=1e-6)


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_metadata_equals_expected(name: str, expected: dict[str, Any]) -> None:
    want = expected[name]
    summary = parse_claude_session(CLAUDE / name)
    assert summary.tool_counts == want["tool_use_blocks"]
    assert summary.session_id == want["session_ids"][0]
    assert summary.agent_version == want["claude_code_versions"][0]
    assert summary.started_at == want["first_timestamp"]
    assert summary.ended_at == want["last_timestamp"]
    main_models = set(want["models_by_unique_message"])
    assert main_models <= set(summary.models_used)
    assert set(summary.models_used) == main_models | set(want["subagent_models_by_unique_message"])
    by_records = want["record_types"]
    assert summary.user_messages == by_records.get("user", 0)
    assert summary.assistant_messages == by_records.get("assistant", 0)
    assert summary.progress_messages == by_records.get("progress", 0)
    assert summary.slug


def test_model_switch_primary_is_the_model_of_most_records() -> None:
    summary = parse_claude_session(CLAUDE / "claude_transcript_model_switch_trimmed.jsonl")
    assert summary.models_used == ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929"]
    assert summary.primary_model == "claude-sonnet-4-5-20250929"
    assert set(summary.by_model) == set(summary.models_used)


def test_task_subagents_are_recognised_without_their_transcripts() -> None:
    summary = parse_claude_session(CLAUDE / "claude_transcript_task_subagents.jsonl")
    assert [a.id for a in summary.subagents] == ["a81fed1", "a983775"]
    assert all(a.type == "reviewer" and not a.transcript_found for a in summary.subagents)
    assert any("transcript not found" in w for w in summary.warnings)


def test_progress_mirrors_give_models_but_never_tokens(expected: dict[str, Any]) -> None:
    name = "claude_transcript_subagent_progress_trimmed.jsonl"
    summary = parse_claude_session(CLAUDE / name)
    # the haiku subagent appears in models_used, but its mirrored usage is not counted
    assert "claude-haiku-4-5-20251001" in summary.models_used
    assert summary.usage.input_tokens == expected[name]["usage_dedup_last_record_per_message_id"]["input_tokens"]
    assert "claude-haiku-4-5-20251001" not in summary.by_model
    (agent,) = summary.subagents
    assert agent.id == "a1f8104" and agent.type == "Explore" and agent.usage.requests == 0


def _assistant(msg_id: str, model: str, output: int, *, session: str = "s1", agent: str | None = None) -> str:
    record: dict[str, Any] = {
        "type": "assistant",
        "sessionId": session,
        "timestamp": "2026-02-01T10:00:00.000Z",
        "message": {
            "id": msg_id,
            "model": model,
            "content": [{"type": "text", "text": "x"}],
            "usage": {
                "input_tokens": 10,
                "output_tokens": output,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 1000,
                "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60},
            },
        },
    }
    if agent:
        record["isSidechain"] = True
        record["agentId"] = agent
    return json.dumps(record)


def _session_dir(tmp_path: Path, session: str = "s1") -> Path:
    main = tmp_path / f"{session}.jsonl"
    main.write_text(
        _assistant("msg_main", "claude-opus-4-6", 5) + "\n" + _assistant("msg_main", "claude-opus-4-6", 50) + "\n"
    )
    sub = tmp_path / session / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-abc.jsonl").write_text(
        _assistant("msg_sub", "claude-haiku-4-5-20251001", 7, agent="abc")
        + "\n"
        + _assistant("msg_sub", "claude-haiku-4-5-20251001", 70, agent="abc")
        + "\n"
    )
    (sub / "agent-abc.meta.json").write_text(json.dumps({"agentType": "Explore", "description": "look around"}))
    return main


def test_subagent_transcripts_counted_exactly_once(tmp_path: Path) -> None:
    # Given a main transcript and its subagent transcript, also passed explicitly (SubagentStop)
    main = _session_dir(tmp_path)
    explicit = tmp_path / "s1" / "subagents" / "agent-abc.jsonl"
    # When parsed with the same subagent file discovered AND given
    summary = parse_claude_session(main, subagent_paths=[explicit, explicit])
    # Then each response counts once, the last record winning, main and subagent apart
    assert summary.main_thread.output_tokens == 50
    assert summary.usage.output_tokens == 120
    assert summary.usage.requests == 2
    (agent,) = summary.subagents
    assert agent.transcript_found and agent.type == "Explore" and agent.description == "look around"
    assert agent.usage.output_tokens == 70
    assert summary.by_model["claude-haiku-4-5-20251001"].output_tokens == 70
    assert summary.usage.cache_creation_5m_input_tokens == 80
    assert summary.usage.cache_creation_1h_input_tokens == 120


def test_older_subagent_layout_next_to_main_file(tmp_path: Path) -> None:
    main = tmp_path / "s2.jsonl"
    main.write_text(_assistant("m1", "claude-opus-4-6", 5, session="s2") + "\n")
    (tmp_path / "agent-old.jsonl").write_text(_assistant("m2", "claude-opus-4-6", 9, session="s2", agent="old") + "\n")
    (tmp_path / "agent-other.jsonl").write_text(_assistant("m3", "claude-opus-4-6", 9, session="zz") + "\n")
    summary = parse_claude_session(main)
    assert [a.id for a in summary.subagents] == ["old"]
    assert summary.usage.output_tokens == 14


def test_repeated_records_across_files_are_counted_once(tmp_path: Path) -> None:
    # a resumed session repeats a response of the main file inside a subagent file
    main = tmp_path / "s3.jsonl"
    main.write_text(_assistant("dup", "claude-opus-4-6", 5, session="s3") + "\n")
    sub = tmp_path / "s3" / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-x.jsonl").write_text(_assistant("dup", "claude-opus-4-6", 5, session="s3") + "\n")
    assert parse_claude_session(main).usage.requests == 1


def test_corrupt_and_half_written_lines_are_skipped_with_warnings(tmp_path: Path) -> None:
    source = (CLAUDE / "claude_transcript_write_create_and_bash.jsonl").read_bytes()
    lines = source.splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    junk = b"\x00\xff\xfe binary junk \x89PNG\r\n"
    broken.write_bytes(lines[0] + junk + b"{not json}\n" + b"[1,2]\n" + b"\n" + b"".join(lines[1:]) + b'{"type":"assis')
    summary = parse_claude_session(broken)
    clean = parse_claude_session(CLAUDE / "claude_transcript_write_create_and_bash.jsonl")
    assert summary.main_thread == clean.main_thread
    assert summary.malformed_lines == 3
    assert any("Malformed JSON at broken.jsonl:2" in w for w in summary.warnings)
    assert any("last line is incomplete" in w for w in summary.warnings)


def test_warnings_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"{oops\n" * 200)
    summary = parse_claude_session(path)
    assert len(summary.warnings) == 51
    assert "suppressed" in summary.warnings[-1]


def test_hostile_field_types_do_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    records = [
        {"type": "assistant", "message": "string"},
        {
            "type": "assistant",
            "message": {"id": 5, "model": ["x"], "usage": {"input_tokens": "9", "output_tokens": -4}},
        },
        {"type": "assistant", "message": {"id": "a", "model": "claude-opus-4-6", "usage": {"input_tokens": True}}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": 3}]}, "toolUseResult": "Error"},
        {"type": "progress", "data": {"type": "agent_progress", "agentId": 7}},
        {"type": "user", "timestamp": "not a time", "message": {"content": None}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records))
    summary = parse_claude_session(path)
    assert summary.usage.input_tokens == 0
    assert summary.started_at == ""


def test_oversized_line_is_skipped_without_loading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        handle.write(_assistant("m1", "claude-opus-4-6", 5).encode() + b"\n")
        handle.write(b'{"type":"user","pad":"' + b"x" * 5000 + b'"}\n')
        handle.write(_assistant("m2", "claude-opus-4-6", 6).encode() + b"\n")
    with path.open("rb") as stream:
        lines = list(iter_lines(stream, max_line=2000))
    assert [line is None for _, line in lines] == [False, True, False]
    assert MAX_LINE_BYTES >= 10 * 1024 * 1024


def test_missing_transcript_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="transcript not found"):
        parse_claude_session(tmp_path / "gone.jsonl")
    with pytest.raises(TranscriptError):
        parse_claude_session(tmp_path)


def test_unknown_model_is_a_warning_and_never_zero(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text(_assistant("m1", "claude-nonexistent-9", 5) + "\n" + _assistant("m2", "claude-opus-4-6", 5) + "\n")
    summary = parse_claude_session(path)
    assert summary.usage.cost_usd is None
    assert summary.by_model["claude-nonexistent-9"].cost_usd is None
    assert summary.by_model["claude-opus-4-6"].cost_usd is not None
    assert any("Unknown model 'claude-nonexistent-9'" in w for w in summary.warnings)


def test_synthetic_model_is_not_an_api_call(tmp_path: Path) -> None:
    path = tmp_path / "syn.jsonl"
    path.write_text(_assistant("m1", "<synthetic>", 5) + "\n")
    summary = parse_claude_session(path)
    assert summary.usage.requests == 0 and summary.models_used == []


def test_agent_tool_name_is_recognised_like_task(tmp_path: Path) -> None:
    path = tmp_path / "agent.jsonl"
    use = {"type": "tool_use", "id": "toolu_1", "name": "Agent", "input": {"subagent_type": "Plan", "description": "d"}}
    records = [
        {"type": "assistant", "message": {"id": "m1", "model": "claude-opus-4-6", "content": [use], "usage": {}}},
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
            "toolUseResult": {"status": "completed", "agentId": "ag1"},
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in records))
    summary = parse_claude_session(path)
    assert [(a.id, a.type, a.description) for a in summary.subagents] == [("ag1", "Plan", "d")]


def test_cursor_transcript_has_no_usage_and_the_documented_warning() -> None:
    summary = parse_cursor_session(FIXTURES / "cursor" / "cursor_agent_transcript.gitai_fixture.jsonl", session_id="c1")
    assert not summary.usage_available
    assert NO_USAGE_WARNING in summary.warnings
    assert summary.tool_counts.get("Read", 0) >= 1
    assert summary.user_messages >= 1


def test_cursor_stop_hook_tokens_are_used_when_reported() -> None:
    summary = parse_cursor_session(
        None, session_id="c1", model="composer-2", reported_turns=[ReportedTurn(40450, 754), ReportedTurn(10, 5)]
    )
    assert summary.usage_available
    assert summary.usage.input_tokens == 40460 and summary.usage.output_tokens == 759
    assert summary.usage.cost_usd is None  # composer-2 has no public price: unknown, not $0
    assert NO_USAGE_WARNING not in summary.warnings


def test_copy_of_fixture_keeps_numbers(tmp_path: Path) -> None:
    # the session id comes from the records, not the file name
    target = tmp_path / "renamed.jsonl"
    shutil.copy(CLAUDE / "claude_transcript_edits_structuredpatch.jsonl", target)
    assert parse_claude_session(target).session_id == "b2273d7d-fb20-41f7-93fb-265486aae975"


def test_inline_sidechain_records_count_in_the_main_transcript(tmp_path: Path) -> None:
    # Claude Code before 2.0.64 wrote subagent records into the main file
    path = tmp_path / "old.jsonl"
    prompt = {"type": "user", "isSidechain": True, "message": {"role": "user", "content": "subagent task prompt"}}
    human = {"type": "user", "message": {"role": "user", "content": "please fix the bug"}}
    path.write_text(
        "\n".join(
            [
                json.dumps(human),
                _assistant("m1", "claude-opus-4-6", 5),
                json.dumps(prompt),
                _assistant("m2", "claude-haiku-4-5-20251001", 7, agent="old1"),
            ]
        )
    )
    summary = parse_claude_session(path)
    assert summary.main_thread.output_tokens == 12  # "the main transcript alone" means the whole file
    assert summary.prompts == 1  # the subagent's task prompt is not a human prompt
    assert summary.user_messages == 2


def test_api_error_records_with_usage_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "err.jsonl"
    record = json.loads(_assistant("m1", "claude-opus-4-6", 5))
    record["isApiErrorMessage"] = True
    path.write_text(json.dumps(record) + "\n")
    assert parse_claude_session(path).main_thread.output_tokens == 5


def test_out_of_order_timestamps_and_offsets(tmp_path: Path) -> None:
    # clock skew between records: min/max, never first/last; offsets normalised to UTC
    path = tmp_path / "skew.jsonl"
    times = ["2026-02-01T10:05:00.000Z", "2026-02-01T09:59:00+00:00", "2026-02-01T12:10:00+02:00", "garbage"]
    path.write_text("\n".join(json.dumps({"type": "system", "timestamp": t}) for t in times))
    summary = parse_claude_session(path)
    assert summary.started_at == "2026-02-01T09:59:00.000Z"
    assert summary.ended_at == "2026-02-01T10:10:00.000Z"
    assert summary.duration_seconds == 660


def test_a_duplicate_without_usage_keeps_the_counts(tmp_path: Path) -> None:
    first = json.loads(_assistant("m1", "claude-opus-4-6", 50))
    second = json.loads(_assistant("m1", "claude-opus-4-6", 0))
    del second["message"]["usage"]
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    assert parse_claude_session(path).usage.output_tokens == 50


def test_unknown_model_with_zero_usage_does_not_void_the_cost(tmp_path: Path) -> None:
    empty = {"type": "assistant", "message": {"id": "e1", "content": [], "usage": {"input_tokens": 0}}}
    path = tmp_path / "z.jsonl"
    path.write_text(json.dumps(empty) + "\n" + _assistant("m1", "claude-opus-4-6", 5) + "\n")
    summary = parse_claude_session(path)
    assert summary.usage.cost_usd is not None and summary.unknown_models == set()


def _tool_pair(tool_id: str, name: str, tool_input: dict[str, Any], result: Any, *, error: bool = False) -> list[str]:
    use = {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id, "content": result if error else "ok"}
    if error:
        block["is_error"] = True
    return [
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": f"m-{tool_id}",
                    "model": "claude-opus-4-6",
                    "content": [use],
                    "usage": {"output_tokens": 1},
                },
            }
        ),
        json.dumps({"type": "user", "message": {"content": [block]}, "toolUseResult": result}),
    ]


def test_shell_commands_carry_exit_codes_and_order_against_edits(tmp_path: Path) -> None:
    lines = [
        *_tool_pair("t1", "Bash", {"command": "pytest -q"}, "Exit code 1\nFAILED test_x", error=True),
        *_tool_pair("t2", "Edit", {"file_path": "/r/a.py"}, {"filePath": "/r/a.py"}),
        *_tool_pair("t3", "Edit", {"file_path": "/r/b.py"}, "Error: String to replace not found", error=True),
        *_tool_pair("t4", "Bash", {"command": "pytest -q"}, {"stdout": "1 passed", "stderr": ""}),
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = parse_claude_session(path)
    assert [(c.command, c.exit_code, c.after_last_edit) for c in summary.shell_commands] == [
        ("pytest -q", 1, False),
        ("pytest -q", 0, True),
    ]
    assert summary.tool_failures == {"Bash": 1, "Edit": 1}
