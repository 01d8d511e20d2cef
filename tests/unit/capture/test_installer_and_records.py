"""Agent config merges, hook scripts, the trailer writer, the config writer and the session reader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tracemark import installer
from tracemark.capture import githooks
from tracemark.capture.records import load_session
from tracemark.capture.state import StateDir
from tracemark.config import load_config, render_config
from tracemark.errors import UserError
from tracemark.gitutil import Repo


def test_claude_merge_is_idempotent_and_reversible() -> None:
    foreign = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "./notify.sh"}]}]}, "model": "opus"}
    merged = installer.merge_claude(foreign)
    assert installer.merge_claude(merged) == merged
    assert merged["hooks"]["Stop"][0] == foreign["hooks"]["Stop"][0]
    assert set(merged["hooks"]) == {event for event, _m, _t in installer.CLAUDE_EVENTS}
    assert installer.unmerge_claude(merged) == foreign
    assert installer.unmerge_claude(installer.merge_claude({})) == {}


def test_claude_merge_updates_our_stale_entry_in_place() -> None:
    stale = {
        "hooks": {
            "PreToolUse": [
                {"matcher": "Edit", "hooks": [{"type": "command", "command": "tracemark hook claude PreToolUse"}]}
            ]
        }
    }
    merged = installer.merge_claude(stale)
    assert len(merged["hooks"]["PreToolUse"]) == 1
    assert merged["hooks"]["PreToolUse"][0]["matcher"] == installer.FILE_TOOLS_MATCHER


def test_cursor_merge_keeps_version_and_foreign_entries() -> None:
    foreign = {"version": 1, "hooks": {"stop": [{"command": "./x.sh", "timeout": 3}]}}
    merged = installer.merge_cursor(foreign)
    assert merged["hooks"]["stop"][0] == {"command": "./x.sh", "timeout": 3}
    assert installer.merge_cursor(merged) == merged
    assert installer.unmerge_cursor(merged) == foreign


def test_bad_agent_config_shapes_are_errors(tmp_path: Path) -> None:
    with pytest.raises(installer.InstallError):
        installer.merge_claude({"hooks": []})
    with pytest.raises(installer.InstallError):
        installer.merge_claude({"hooks": {"Stop": {}}})
    bad = tmp_path / "s.json"
    bad.write_text("[1]")
    with pytest.raises(installer.InstallError):
        installer.load_json_config(str(bad))


def test_dump_json_keeps_indent_and_final_newline() -> None:
    assert installer.dump_json({"a": [1]}, b'{\n    "a": []\n}') == b'{\n    "a": [\n        1\n    ]\n}'
    assert installer.dump_json({"a": 1}, None).endswith(b"}\n")


def test_hook_scripts_are_valid_sh_and_marked(tmp_path: Path) -> None:
    for name in installer.GIT_HOOKS:
        script = installer.hook_script(name, python="/opt/it's here/python")
        assert installer.is_ours(script)
        path = tmp_path / name
        path.write_bytes(script)
        subprocess.run(["sh", "-n", str(path)], check=True)
    assert b"|| exit $?" in installer.hook_script("pre-push")
    assert b"|| exit $?" not in installer.hook_script("post-commit")


def _git_repo(tmp_path: Path) -> Repo:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return Repo(str(tmp_path), str(tmp_path / ".git"), str(tmp_path / ".git"))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("subject\n", "subject\n\nTracemark-Sessions: a, b\n"),
        ("subject\n\nbody text\n", "subject\n\nbody text\n\nTracemark-Sessions: a, b\n"),
        (
            "subject\n\nSigned-off-by: Dev <d@x>\n",
            "subject\n\nSigned-off-by: Dev <d@x>\nTracemark-Sessions: a, b\n",
        ),
        ("subject\n\nTracemark-Sessions: c\n", "subject\n\nTracemark-Sessions: a, b, c\n"),
    ],
)
def test_trailer_writer(tmp_path: Path, message: str, expected: str) -> None:
    repo = _git_repo(tmp_path)
    msg = tmp_path / "MSG"
    msg.write_text(message)
    githooks.add_trailer(repo, str(msg), ["b", "a", "b"])
    assert msg.read_text() == expected
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=expected, capture_output=True, text=True, check=True
    ).stdout
    assert "Tracemark-Sessions: a, b" in parsed


def test_trailer_writer_skips_empty_messages(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path)
    msg = tmp_path / "MSG"
    msg.write_text("# only a comment\n\n")
    assert githooks.add_trailer(repo, str(msg), ["a"])[0] == "skipped"
    assert msg.read_text() == "# only a comment\n\n"


def test_trailer_reader_matches_the_spec() -> None:
    text = "x\n\nsquashed body\ntracemark-sessions: a, bad id, b\nChainloop-Trace-Sessions: c\nTracemark-Sessions:\n"
    assert githooks.trailer_session_ids(text) == ["a", "b", "c"]


def test_config_render_and_load(tmp_path: Path) -> None:
    path, current, new = render_config(str(tmp_path), {"projectName": "p", "requireTrace": False})
    assert current is None
    Path(path).write_bytes(new)
    config = load_config(str(tmp_path))
    assert config is not None
    assert (config.project_name, config.require_trace, config.upload_transcript) == ("p", False, True)
    Path(path).write_text("projectName: [\n")
    with pytest.raises(UserError):
        render_config(str(tmp_path), {"projectName": "q"})
    with pytest.raises(UserError):
        load_config(str(tmp_path))


def test_config_yml_wins_over_yaml(tmp_path: Path) -> None:
    (tmp_path / ".tracemark.yaml").write_text("projectName: from-yaml\n")
    (tmp_path / ".tracemark.yml").write_text("projectName: from-yml\n")
    config = load_config(str(tmp_path))
    assert config is not None and config.project_name == "from-yml"


def test_session_reader_folds_events_and_tolerates_torn_lines(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    sd = StateDir(str(tmp_path / ".git" / "tracemark"))
    events = [
        {"e": "start", "t": "2026-01-01T00:00:00.000Z", "agent": "claude-code", "model": "m1", "transcript_path": "/t"},
        {"e": "prompt", "t": "2026-01-01T00:00:01.000Z", "permission_mode": "plan"},
        {"e": "tool", "t": "2026-01-01T00:00:02.000Z", "tool": "Bash", "ok": False, "command": "ls", "files": ["a"]},
        {"e": "subagent", "t": "2026-01-01T00:00:03.000Z", "subagent_id": "ag1", "agent_type": "Explore"},
        {"e": "compact", "t": "2026-01-01T00:00:04.000Z", "trigger": "auto"},
        {"e": "end", "t": "2026-01-01T00:00:05.000Z", "reason": "clear"},
    ]
    for event in events:
        sd.append_jsonl("sessions/s1.jsonl", event)
    with Path(sd.path("sessions", "s1.jsonl")).open("a") as handle:
        handle.write('{"e": "tool", "t": "torn')
    state = load_session(str(tmp_path), "s1")
    assert state is not None
    assert (state.model, state.prompts, state.permission_mode, state.compactions) == ("m1", 1, "plan", 1)
    assert state.shell_commands == ["ls"] and state.files_touched == ["a"]
    assert state.tool_events[0].ok is False
    assert state.subagents["ag1"].agent_type == "Explore"
    assert (state.started_at, state.ended_at, state.end_reason) == (
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:05.000Z",
        "clear",
    )
    assert load_session(str(tmp_path), "../etc") is None
    assert load_session(str(tmp_path), "nobody") is None


def test_manifest_json_is_plain_json(tmp_path: Path) -> None:
    sd = StateDir(str(tmp_path))
    sd.ensure()
    sd.write_json("install.json", {"a": {"created": True}})
    assert json.loads((tmp_path / "install.json").read_text()) == {"a": {"created": True}}


def test_objects_and_head_are_read_loose_or_packed(tmp_path: Path) -> None:
    from tracemark import gitutil

    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}

    def run(*args: str) -> bytes:
        env_path = {**env, "PATH": "/usr/bin:/bin"}
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, env=env_path).stdout

    run("init", "-q", "-b", "main")
    repo = gitutil.discover(str(tmp_path))
    assert repo is not None
    assert gitutil.resolve_head(repo) is None
    (tmp_path / "f.txt").write_text("hello\n")
    run("add", "f.txt")
    run("commit", "-q", "-m", "one")
    head = run("rev-parse", "HEAD").decode().strip()
    blob = run("rev-parse", "HEAD:f.txt").decode().strip()
    assert gitutil.resolve_head(repo) == head
    loose = gitutil.read_objects(repo, [blob, head, "0" * 40, "nonsense"])
    assert loose[blob] == ("blob", b"hello\n")
    assert loose[head] is not None and loose[head][0] == "commit"
    assert loose["0" * 40] is None and loose["nonsense"] is None
    run("gc", "-q")  # packs objects and refs
    assert not (tmp_path / ".git" / "refs" / "heads" / "main").exists()
    assert gitutil.resolve_head(repo) == head
    assert gitutil.read_objects(repo, [blob])[blob] == ("blob", b"hello\n")
    parents, ctime, message = gitutil.parse_commit(gitutil.read_objects(repo, [head])[head][1])  # type: ignore[index]
    assert (parents, message) == ([], "one\n") and ctime > 0


@pytest.mark.parametrize(
    "message",
    [
        "subject",
        "subject\n",
        "subject\n\n\n",
        "subject\n\nbody line one\nbody line two\n",
        "subject\n\nbody\n\nSigned-off-by: A <a@x>\nCo-authored-by: B <b@x>\n",
        "subject\n\nReviewed-by: A <a@x>\nTracemark-Sessions: old\n",
        "subject\n\nbody\n\nTracemark-Sessions: zeta\nSigned-off-by: A <a@x>\n",
        "Fix: a subject that looks like a trailer\n",
        "subject\n\nFixes: #12\n",
        "subject\n\nsome prose\nKey: value\nmore prose\n",
        "subject\n\nbody\n# a comment line\n",
        "subject\n\n---\npatch notes\n",
    ],
)
def test_in_process_trailer_writer_agrees_with_git(tmp_path: Path, message: str) -> None:
    # git hands commit-msg a file ending in a newline, and cleans up trailing blank lines after it.
    message = message if message.endswith("\n") else message + "\n"
    ours = githooks._append_trailer(message, "a, b")
    if ours is None:
        return  # handed to git interpret-trailers, which is right by definition

    def git_text(*args: str, text: str) -> str:
        return subprocess.run(["git", *args], input=text, capture_output=True, text=True, check=True).stdout

    expected = git_text(
        "interpret-trailers", "--if-exists", "replace", "--trailer", "Tracemark-Sessions: a, b", text=message
    )
    assert git_text("stripspace", text=ours) == git_text("stripspace", text=expected)
    assert "Tracemark-Sessions: a, b" in git_text("interpret-trailers", "--parse", text=ours)
