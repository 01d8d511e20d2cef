"""Scripted agent sessions in real repositories, checked line by line against the commit records."""

from __future__ import annotations

import json
from pathlib import Path

from capture_workspace import Workspace

from tracemark.capture.records import load_commit_records, load_session

FIVE = "one\ntwo\nthree\nfour\nfive\n"


def test_ai_only_commit_gets_trailer_and_exact_ranges(ws: Workspace) -> None:
    # Given an agent that writes a new file
    ws.claude("SessionStart", "sess-a", source="startup", model="claude-sonnet-5")
    ws.ai_write("sess-a", "src/app.py", FIVE)
    # When the developer commits it
    sha = ws.commit("add app")
    # Then the trailer names the session, git parses it, and the record holds every line
    assert "Tracemark-Sessions: sess-a" in ws.trailers()
    assert ws.ranges(sha) == {"src/app.py": {"sess-a": [[1, 5]]}}
    record = ws.record(sha)
    assert record is not None
    assert record["files"][0]["human_lines_added"] == 0
    assert record["session_ids"] == ["sess-a"]


def test_mixed_file_keeps_human_edits_human(ws: Workspace) -> None:
    ws.ai_write("s1", "mixed.txt", FIVE)
    # A human changes line 3 (whitespace only counts too) and appends a line
    ws.human_write("mixed.txt", "one\ntwo\nthree \nfour\nfive\nsix\n")
    sha = ws.commit("mixed")
    assert ws.ranges(sha) == {"mixed.txt": {"s1": [[1, 2], [4, 5]]}}
    record = ws.record(sha)
    assert record is not None
    assert record["files"][0]["human_lines_added"] == 2


def test_human_edit_between_agent_edits_stays_human(ws: Workspace) -> None:
    ws.ai_write("s1", "f.txt", "a\nb\nc\n")
    ws.human_write("f.txt", "a\nB-human\nc\n")
    ws.ai_write("s1", "f.txt", "a\nB-human\nc\nd-ai\n", tool="Edit")
    sha = ws.commit("f")
    assert ws.ranges(sha) == {"f.txt": {"s1": [[1, 1], [3, 4]]}}


def test_human_only_commit_has_no_trailer_and_no_record(ws: Workspace) -> None:
    ws.human_write("notes.txt", "by hand\n")
    sha = ws.commit("human")
    assert "Tracemark-Sessions" not in ws.message()
    assert ws.record(sha) is None


def test_commit_of_some_files_consumes_only_those(ws: Workspace) -> None:
    ws.ai_write("s1", "a.txt", "a\n")
    ws.ai_write("s1", "b.txt", "b\n")
    first = ws.commit("only a", "a.txt")
    assert ws.ranges(first) == {"a.txt": {"s1": [[1, 1]]}}
    second = ws.commit("then b", "b.txt")
    assert ws.ranges(second) == {"b.txt": {"s1": [[1, 1]]}}
    # A later human commit touching a.txt does not re-claim the committed AI line
    ws.human_write("a.txt", "a\nhuman\n")
    third = ws.commit("human on a")
    assert ws.record(third) is None
    assert "Tracemark-Sessions" not in ws.message()


def test_two_concurrent_sessions_are_kept_apart(ws: Workspace) -> None:
    ws.claude("SessionStart", "s-one", source="startup")
    ws.claude("SessionStart", "s-two", source="startup")
    ws.ai_write("s-one", "one.txt", "1\n2\n")
    ws.ai_write("s-two", "two.txt", "x\ny\nz\n")
    ws.ai_write("s-one", "shared.txt", "from one\n")
    ws.ai_write("s-two", "shared.txt", "from one\nfrom two\n", tool="Edit")
    sha = ws.commit("both")
    assert "Tracemark-Sessions: s-one, s-two" in ws.trailers()
    assert ws.ranges(sha) == {
        "one.txt": {"s-one": [[1, 2]]},
        "shared.txt": {"s-one": [[1, 1]], "s-two": [[2, 2]]},
        "two.txt": {"s-two": [[1, 3]]},
    }


def test_overlapping_tool_calls_on_one_path_are_attributed_to_neither(ws: Workspace) -> None:
    path = ws.root / "race.txt"
    a = {"file_path": str(path), "content": "a"}
    ws.claude("PreToolUse", "s1", tool_name="Write", tool_input=a, tool_use_id="t-a")
    ws.claude("PreToolUse", "s2", tool_name="Edit", tool_input=a, tool_use_id="t-b")
    path.write_text("a\nb\n")
    ws.claude("PostToolUse", "s1", tool_name="Write", tool_input=a, tool_use_id="t-a")
    ws.claude("PostToolUse", "s2", tool_name="Edit", tool_input=a, tool_use_id="t-b")
    sha = ws.commit("race")
    assert ws.record(sha) is None
    assert any("contended" in line for line in ws.log_lines())


def test_bash_created_file_is_attributed(ws: Workspace) -> None:
    ws.human_write("dirty.txt", "human work in progress\n")
    ws.ai_bash("s1", "printf 'gen1\\ngen2\\n' > generated.txt && printf 'more\\n' >> README.md")
    sha = ws.commit("gen", "generated.txt", "README.md")
    assert ws.ranges(sha) == {"README.md": {"s1": [[2, 2]]}, "generated.txt": {"s1": [[1, 2]]}}
    state = load_session(ws.root, "s1")
    assert state is not None
    assert state.shell_commands and "generated.txt" in state.shell_commands[0]
    assert sorted(state.files_touched) == ["README.md", "generated.txt"]


def test_amend_carries_and_extends_the_record(ws: Workspace) -> None:
    ws.ai_write("s1", "a.txt", "a1\na2\n")
    old = ws.commit("a")
    ws.ai_write("s2", "a.txt", "a1\na2\na3\n", tool="Edit")
    ws.git("add", "a.txt")
    ws.git("commit", "-q", "--amend", "--no-edit")
    new = ws.git("rev-parse", "HEAD").strip()
    assert new != old
    assert "Tracemark-Sessions: s1, s2" in ws.trailers()
    assert ws.ranges(new) == {"a.txt": {"s1": [[1, 2]], "s2": [[3, 3]]}}
    record = ws.record(new)
    assert record is not None
    assert old in record["rewritten_from"]


def test_interactive_rebase_reorder_and_squash(ws: Workspace, tmp_path: Path) -> None:
    ws.ai_write("s-a", "a.txt", "a1\na2\n")
    a = ws.commit("A")
    ws.human_write("b.txt", "human b\n")
    b = ws.commit("B")
    ws.ai_write("s-c", "c.txt", "c1\n")
    c = ws.commit("C")
    # Reorder to C, A and squash B into A, driving `git rebase -i` non-interactively
    editor = tmp_path / "seq.sh"
    editor.write_text(f"#!/bin/sh\nprintf 'pick {c}\\npick {a}\\nsquash {b}\\n' > \"$1\"\n")
    editor.chmod(0o755)
    ws.git("rebase", "-q", "-i", "HEAD~3", env={"GIT_SEQUENCE_EDITOR": str(editor), "GIT_EDITOR": "true"})
    log = ws.git("log", "--format=%H", "-2").split()
    squashed, new_c = log[0], log[1]
    assert ws.ranges(new_c) == {"c.txt": {"s-c": [[1, 1]]}}
    assert ws.ranges(squashed) == {"a.txt": {"s-a": [[1, 2]]}}
    record = ws.record(squashed)
    assert record is not None
    assert set(record["rewritten_from"]) == {a, b}
    assert "s-a" in ws.message(squashed)
    # The reader API sees the same
    by_sha = {r.sha: r for r in load_commit_records(ws.root)}
    assert by_sha[squashed].files[0].sessions["s-a"].ranges == [(1, 2)]


def test_subagents_are_kept_apart(ws: Workspace) -> None:
    ws.claude("SessionStart", "main", source="startup", model="claude-opus-4-6")
    ws.ai_write("main", "m.txt", "main line\n")
    ws.ai_write("main", "sub.txt", "sub1\nsub2\n", agent_id="a40cffb8969ddc650")
    ws.claude(
        "SubagentStop", "main", agent_id="a40cffb8969ddc650", agent_type="Explore", agent_transcript_path="/x.jsonl"
    )
    sha = ws.commit("with subagent")
    record = ws.record(sha)
    assert record is not None
    files = {f["path"]: f for f in record["files"]}
    assert files["sub.txt"]["sessions"]["main"]["agents"] == {"a40cffb8969ddc650": [[1, 2]]}
    assert "agents" not in files["m.txt"]["sessions"]["main"]
    state = load_session(ws.root, "main")
    assert state is not None
    assert state.model == "claude-opus-4-6"
    sub = state.subagents["a40cffb8969ddc650"]
    assert (sub.agent_type, sub.transcript_path, sub.tool_events) == ("Explore", "/x.jsonl", 1)
    assert [e.agent_id for e in state.tool_events] == [None, "a40cffb8969ddc650"]


def test_cursor_after_file_edit_maps_to_line_ranges(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--cursor", "--offline").returncode == 0
    ws.human_write("app.tsx", "line1\nline2\nline3\n")
    ws.commit("base")
    # Cursor edits line 2 and inserts a block after line 3, then reports old/new strings only
    ws.human_write("app.tsx", "line1\nLINE2 by cursor\nline3\nnew a\nnew b\n")
    payload = {
        "conversation_id": "cur-1",
        "generation_id": "gen-1",
        "model": "composer-2",
        "file_path": str(ws.root / "app.tsx"),
        "edits": [
            {"old_string": "line2", "new_string": "LINE2 by cursor"},
            {"old_string": "line3\n", "new_string": "line3\nnew a\nnew b\n"},
        ],
        "hook_event_name": "afterFileEdit",
        "cursor_version": "2.7.0",
        "workspace_roots": [str(ws.root)],
    }
    ws.hook("cursor", "afterFileEdit", payload)
    sha = ws.commit("cursor edit")
    assert ws.ranges(sha) == {"app.tsx": {"cur-1": [[2, 2], [4, 5]]}}
    assert "Tracemark-Sessions: cur-1" in ws.trailers()


def test_cursor_payload_on_claude_hook_is_not_captured_twice(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--claude", "--cursor", "--offline").returncode == 0
    relayed = {
        "session_id": "c1",
        "conversation_id": "c1",
        "hook_event_name": "PostToolUse",
        "tool_name": "Shell",
        "cursor_version": "2026.09.02",
        "tool_input": {"command": "echo hi"},
    }
    ws.hook("claude", "PostToolUse", relayed)
    assert not (ws.state / "sessions" / "c1.jsonl").exists()
    assert "payload relayed by Cursor" in ws.log_lines()[-1]


def test_cursor_session_events_fold_into_session_state(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--cursor", "--offline").returncode == 0
    fixture = Path(__file__).parents[2] / "fixtures" / "capture" / "cursor_hook_payloads.real_redacted_2026-07.jsonl"
    for line in fixture.read_text().splitlines():
        payload = json.loads(line.replace("<CWD>", str(ws.root)))
        payload["conversation_id"] = payload["session_id"] = "491550db"
        ws.hook("cursor", payload["hook_event_name"], payload)
    state = load_session(ws.root, "491550db")
    assert state is not None
    assert state.agent == "cursor"
    assert state.agent_version == "2026.07.23-e383d2b"
    assert state.prompts == 1
    assert state.usage == {"input_tokens": 40450, "output_tokens": 754}
    # postToolUse fired without tool_use_id or tool_input (as captured); the failure carries its command
    assert state.shell_commands == ["cat /nonexistent-file-xyz-123"]
    assert [(e.tool, e.ok) for e in state.tool_events] == [("Shell", True), ("Shell", False)]
    assert state.ended_at is not None


def test_claude_fixture_payloads_fold_into_session_state(ws: Workspace) -> None:
    fixture = Path(__file__).parents[2] / "fixtures" / "capture" / "claude_hook_payloads.real_redacted.jsonl"
    for line in fixture.read_text().splitlines():
        payload = json.loads(line.replace("<CWD>", str(ws.root)).replace("<TRANSCRIPT>", "/tmp/t.jsonl"))
        ws.hook("claude", payload["hook_event_name"], payload)
    state = load_session(ws.root, "65ced290-2a08-43de-aa80-d0b049d7ce30")
    assert state is not None
    assert (state.model, state.prompts, state.permission_mode) == ("claude-sonnet-5", 1, "acceptEdits")
    assert state.transcript_path == "/tmp/t.jsonl"
    assert [e.tool for e in state.tool_events] == ["Bash"]
    assert state.end_reason == "other"
    # Notification is not one of our events: logged and ignored
    assert any("Notification" in line and "result=ignored" in line for line in ws.log_lines())


def test_amend_with_a_new_message_keeps_the_sessions(ws: Workspace) -> None:
    ws.ai_write("s1", "a.txt", "a\n")
    ws.commit("a")
    ws.git("commit", "-q", "--amend", "-m", "reworded entirely")
    assert "Tracemark-Sessions: s1" in ws.trailers()
    # A human commit right after (same second, same author date) is not mistaken for an amend
    ws.human_write("h.txt", "h\n")
    ws.commit("human right after")
    assert "Tracemark-Sessions" not in ws.message()


def test_commit_all_sees_the_index_git_prepares(ws: Workspace) -> None:
    ws.human_write("t.txt", "base\n")
    ws.commit("base")
    ws.ai_write("s1", "t.txt", "base\nai\n", tool="Edit")
    ws.git("commit", "-q", "-a", "-m", "all")
    sha = ws.git("rev-parse", "HEAD").strip()
    assert ws.ranges(sha) == {"t.txt": {"s1": [[2, 2]]}}
    assert "Tracemark-Sessions: s1" in ws.trailers()


def test_trailer_joins_signed_off_by_block(ws: Workspace) -> None:
    ws.ai_write("s1", "s.txt", "s\n")
    ws.git("add", "s.txt")
    ws.git("commit", "-q", "-s", "-m", "signed")
    assert ws.message().rstrip("\n").endswith("Signed-off-by: Dev <dev@example.com>\nTracemark-Sessions: s1")
    assert ws.trailers() == "Signed-off-by: Dev <dev@example.com>\nTracemark-Sessions: s1\n"


def test_files_moved_by_a_shell_command_are_not_new_ai_lines(ws: Workspace) -> None:
    ws.human_write("old_name.txt", "human 1\nhuman 2\n")
    ws.commit("human file")
    ws.ai_bash("s1", "mv old_name.txt new_name.txt && printf 'ai\\n' >> new_name.txt")
    sha = ws.commit("move")
    assert ws.ranges(sha)["new_name.txt"] == {"s1": [[3, 3]]}


def test_cursor_edit_with_ambiguous_new_text_falls_back_to_known_content(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--cursor", "--offline").returncode == 0
    ws.human_write("x.js", "}\n")
    ws.commit("base")
    ws.human_write("x.js", "}\nfunction f() {\n}\n")
    payload = {
        "conversation_id": "cur-2",
        "generation_id": "g",
        "file_path": str(ws.root / "x.js"),
        "edits": [{"old_string": "", "new_string": "function f() {\n}\n"}],
        "hook_event_name": "afterFileEdit",
        "workspace_roots": [str(ws.root)],
    }
    ws.hook("cursor", "afterFileEdit", payload)
    sha = ws.commit("cursor")
    assert ws.ranges(sha) == {"x.js": {"cur-2": [[2, 3]]}}


def test_parallel_hook_processes_do_not_lose_or_mix_edits(ws: Workspace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def session_work(index: int) -> None:
        session = f"par-{index % 2}"
        ws.ai_write(session, f"p{index}.txt", f"line {index}\n" * (index + 1))

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(session_work, range(12)))
    sha = ws.commit("parallel")
    expected = {f"p{i}.txt": {f"par-{i % 2}": [[1, i + 1]]} for i in range(12)}
    assert ws.ranges(sha) == expected
    assert "Tracemark-Sessions: par-0, par-1" in ws.trailers()
    for session in ("par-0", "par-1"):
        state = load_session(ws.root, session)
        assert state is not None and len(state.tool_events) == 6


def test_a_denied_tool_call_does_not_block_later_attribution(ws: Workspace) -> None:
    path = ws.root / "d.txt"
    tool_input = {"file_path": str(path), "content": "x"}
    # PreToolUse fires, the user denies the edit: no PostToolUse ever comes
    ws.claude("PreToolUse", "s1", tool_name="Write", tool_input=tool_input, tool_use_id="denied")
    ws.ai_write("s1", "d.txt", "retried in the same turn\n")
    ws.claude("PreToolUse", "s1", tool_name="Write", tool_input=tool_input, tool_use_id="denied-again")
    ws.claude("Stop", "s1")
    ws.ai_write("s1", "d.txt", "retried in the same turn\nwritten later\n")
    sha = ws.commit("after a denied call")
    assert ws.ranges(sha) == {"d.txt": {"s1": [[1, 2]]}}


def test_partially_staged_file_splits_the_ai_lines_across_commits(ws: Workspace, tmp_path: Path) -> None:
    ws.human_write("p.txt", "a\nb\nc\n")
    ws.commit("base")
    ws.ai_write("s1", "p.txt", "top\na\nb\nc\nbottom\n", tool="Edit")
    # Stage only the top line, as `git add -p` would
    partial = tmp_path / "partial.txt"
    partial.write_text("top\na\nb\nc\n")
    blob = ws.git("hash-object", "-w", str(partial)).strip()
    ws.git("update-index", "--cacheinfo", f"100644,{blob},p.txt")
    ws.git("commit", "-q", "-m", "top only")
    first = ws.git("rev-parse", "HEAD").strip()
    assert ws.ranges(first) == {"p.txt": {"s1": [[1, 1]]}}
    ws.git("commit", "-q", "-a", "-m", "the rest")
    second = ws.git("rev-parse", "HEAD").strip()
    assert ws.ranges(second) == {"p.txt": {"s1": [[5, 5]]}}
    assert "Tracemark-Sessions: s1" in ws.trailers(second)


def test_rebase_reorder_remaps_ranges_in_the_same_file(ws: Workspace, tmp_path: Path) -> None:
    ws.human_write("f.txt", "base\n")
    ws.commit("base")
    ws.ai_write("s-a", "f.txt", "a1\nbase\n", tool="Edit")
    a = ws.commit("A")
    ws.ai_write("s-c", "f.txt", "a1\nbase\nc1\nc2\n", tool="Edit")
    c = ws.commit("C")
    editor = tmp_path / "seq.sh"
    editor.write_text(f"#!/bin/sh\nprintf 'pick {c}\\npick {a}\\n' > \"$1\"\n")
    editor.chmod(0o755)
    ws.git("rebase", "-q", "-i", "HEAD~2", env={"GIT_SEQUENCE_EDITOR": str(editor)})
    new_a, new_c = ws.git("log", "--format=%H", "-2").split()
    assert ws.git("show", f"{new_c}:f.txt") == "base\nc1\nc2\n"
    assert ws.ranges(new_c) == {"f.txt": {"s-c": [[2, 3]]}}
    assert ws.ranges(new_a) == {"f.txt": {"s-a": [[1, 1]]}}
    record = ws.record(new_c)
    assert record is not None and record["rewritten_from"] == [c]


def test_real_cursor_2026_03_payloads_replay_cleanly(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--cursor", "--offline").returncode == 0
    welcome = ws.root / "public" / "app" / "plugins" / "panel" / "welcome" / "Welcome.tsx"
    ws.human_write(str(welcome.relative_to(ws.root)), "const s = {\n      color: theme.colors.success.main,\n};\n")
    (ws.root / ".cursor" / "hooks").mkdir(parents=True)
    ws.commit("base")
    # The agent's edits, as Cursor made them before firing afterFileEdit
    welcome.write_text("const s = {\n      color: theme.colors.success.text,\n};\n")
    (ws.root / ".cursor" / "audits").mkdir()
    (ws.root / ".cursor" / "audits" / ".gitkeep").write_text("")
    fixture = Path(__file__).parents[2] / "fixtures" / "capture" / "cursor_hook_payloads.real_2026-03.jsonl"
    before = len(ws.log_lines())
    for line in fixture.read_text().splitlines():
        payload = json.loads(line.replace("/Users/mars/Documents/GitHub/grafanaDemoPersonal", str(ws.root)))
        ws.hook("cursor", payload["hook_event_name"], payload)
    results = [entry.split(" result=")[1].split()[0] for entry in ws.log_lines()[before:]]
    assert len(results) == 8
    assert "error" not in results and "bad-input" not in results
    sha = ws.commit("cursor work")
    record = ws.record(sha)
    assert record is not None
    welcome_entry = next(f for f in record["files"] if f["path"].endswith("Welcome.tsx"))
    # One conversation deleted the old line, another wrote the new one
    assert welcome_entry["sessions"]["5778024b-6f82-44e9-bc8d-cd46db7e25d5"]["removed"] == 1
    assert welcome_entry["sessions"]["5778024b-6f82-44e9-bc8d-cd46db7e25d5"]["ranges"] == []
    assert welcome_entry["sessions"]["edc0c8f7-87cc-46cf-8ddf-b16685e7d598"]["ranges"] == [[2, 2]]
