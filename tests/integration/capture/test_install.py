"""`tracemark init` / `uninstall` / `status` on real repositories: chaining, husky, round trips, errors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from capture_workspace import PYTHON, Workspace, make_repo

FOREIGN_SETTINGS = (
    b'{\n    "permissions": {"allow": ["Bash(ls:*)"]},\n    "hooks": {\n        "PreToolUse": [\n'
    b'            {"matcher": "Bash", "hooks": [{"type": "command", "command": "./audit.sh"}]}\n'
    b"        ]\n    }\n}"
)
FOREIGN_COMMIT_MSG = b'#!/bin/sh\n# a team\'s own hook\necho "foreign commit-msg saw $1" >> .git/foreign.log\n'


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root (including .git/hooks, excluding objects and our state) and its bytes."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".git/objects", ".git/logs", ".git/tracemark", ".git/index", ".git/refs")):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel] = path.read_bytes()
    return out


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """A directory nobody can write, root included (chattr +i when we run as root)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)


def test_init_writes_config_agent_hooks_and_git_hooks(bare_repo: Workspace) -> None:
    ws = bare_repo
    proc = ws.tracemark("init", "--project", "demo", "--org", "acme", "--require-trace", "--offline")
    assert proc.returncode == 0, proc.stderr
    assert (ws.root / ".tracemark.yml").read_text() == (
        "projectName: demo\norganization: acme\nrequireTrace: true\nuploadTranscript: true\n"
    )
    settings = json.loads((ws.root / ".claude" / "settings.json").read_text())
    pre = settings["hooks"]["PreToolUse"][0]
    assert pre["matcher"] == "Edit|Write|MultiEdit|NotebookEdit|Bash|PowerShell|Task|Agent"
    assert pre["hooks"][0]["timeout"] == 10
    assert pre["hooks"][0]["command"].startswith("command -v tracemark >/dev/null 2>&1 && tracemark hook claude")
    assert not (ws.root / ".cursor").exists()
    for name in ("commit-msg", "post-commit", "post-rewrite", "pre-push"):
        hook = ws.root / ".git" / "hooks" / name
        assert "tracemark-managed" in hook.read_text()
        assert os.access(hook, os.X_OK)
    # Re-running changes nothing
    before = tree_bytes(ws.root)
    again = ws.tracemark("init", "--project", "demo", "--org", "acme", "--require-trace", "--offline")
    assert again.returncode == 0
    assert b"nothing changed" in again.stdout
    assert tree_bytes(ws.root) == before


def test_init_keeps_comments_and_key_order_of_existing_config(bare_repo: Workspace) -> None:
    ws = bare_repo
    ws.human_write(
        ".tracemark.yaml", "# our project\nserver: https://tm.example.com  # prod\nprojectName: old\nextra: [1, 2]\n"
    )
    assert ws.tracemark("init", "--project", "new", "--offline").returncode == 0
    text = (ws.root / ".tracemark.yaml").read_text()
    assert text == "# our project\nserver: https://tm.example.com  # prod\nprojectName: new\nextra: [1, 2]\n"
    assert not (ws.root / ".tracemark.yml").exists()


def test_init_merges_foreign_agent_config_and_cursor_file(bare_repo: Workspace) -> None:
    ws = bare_repo
    (ws.root / ".claude").mkdir()
    (ws.root / ".claude" / "settings.json").write_bytes(FOREIGN_SETTINGS)
    (ws.root / ".cursor").mkdir()
    (ws.root / ".cursor" / "hooks.json").write_text(
        json.dumps({"version": 1, "hooks": {"afterFileEdit": [{"command": ".cursor/hooks/audit.sh"}]}})
    )
    assert ws.tracemark("init", "--project", "demo", "--claude", "--cursor", "--offline").returncode == 0
    settings = json.loads((ws.root / ".claude" / "settings.json").read_text())
    assert settings["permissions"] == {"allow": ["Bash(ls:*)"]}
    assert settings["hooks"]["PreToolUse"][0] == {
        "matcher": "Bash",
        "hooks": [{"type": "command", "command": "./audit.sh"}],
    }
    assert len(settings["hooks"]["PreToolUse"]) == 2
    cursor = json.loads((ws.root / ".cursor" / "hooks.json").read_text())
    assert cursor["hooks"]["afterFileEdit"][0] == {"command": ".cursor/hooks/audit.sh"}
    ours = cursor["hooks"]["afterFileEdit"][1]
    assert ours["command"].endswith("tracemark hook cursor afterFileEdit || printf '{}'")
    assert (ws.root / ".claude" / "settings.json").read_text().startswith('{\n    "permissions"')


def test_uninstall_round_trip_is_byte_identical(bare_repo: Workspace) -> None:
    ws = bare_repo
    (ws.root / ".claude").mkdir()
    (ws.root / ".claude" / "settings.json").write_bytes(FOREIGN_SETTINGS)
    foreign = ws.root / ".git" / "hooks" / "commit-msg"
    foreign.write_bytes(FOREIGN_COMMIT_MSG)
    foreign.chmod(0o751)
    before = tree_bytes(ws.root)
    modes = {p.name: p.stat().st_mode for p in (ws.root / ".git" / "hooks").iterdir()}
    assert ws.tracemark("init", "--project", "demo", "--claude", "--cursor", "--offline").returncode == 0
    # The chained foreign hook still runs, with the message file argument
    ws.ai_write("s1", "a.txt", "ai\n")
    ws.commit("with foreign hook", "a.txt")
    assert "foreign commit-msg saw .git/COMMIT_EDITMSG" in (ws.root / ".git" / "foreign.log").read_text()
    assert "Tracemark-Sessions: s1" in ws.message()
    (ws.root / ".git" / "foreign.log").unlink()
    proc = ws.tracemark("uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    after = tree_bytes(ws.root)
    after.pop(".git/COMMIT_EDITMSG", None)
    after.pop("a.txt", None)
    after.pop(".git/ORIG_HEAD", None)
    assert after == {k: v for k, v in before.items() if k != ".git/COMMIT_EDITMSG"}
    assert {p.name: p.stat().st_mode for p in (ws.root / ".git" / "hooks").iterdir()} == modes
    assert not ws.state.exists()
    assert not (ws.root / ".cursor").exists()


def test_uninstall_after_user_edits_removes_only_our_entries(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    path = ws.root / ".claude" / "settings.json"
    data = json.loads(path.read_text())
    data["model"] = "opus"
    path.write_text(json.dumps(data, indent=2) + "\n")
    assert ws.tracemark("uninstall", "--yes").returncode == 0
    assert json.loads(path.read_text()) == {"model": "opus"}


def test_uninstall_asks_without_yes(ws: Workspace) -> None:
    proc = ws.tracemark("uninstall")
    assert proc.returncode != 0
    assert b"--yes" in proc.stderr
    assert ws.state.exists()


def test_foreign_pre_push_hook_reads_the_same_stdin(bare_repo: Workspace, tmp_path: Path) -> None:
    ws = bare_repo
    hook = ws.root / ".git" / "hooks" / "pre-push"
    hook.write_text('#!/bin/sh\necho "args: $1 $2" > .git/foreign-push.txt\ncat >> .git/foreign-push.txt\n')
    hook.chmod(0o755)
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=ws.env)
    ws.git("remote", "add", "origin", str(remote))
    ws.human_write("h.txt", "human\n")
    sha = ws.commit("human")
    ws.git("push", "-q", "origin", "main")
    seen = (ws.root / ".git" / "foreign-push.txt").read_text().splitlines()
    assert seen[0] == f"args: origin {remote}"
    assert seen[1] == f"refs/heads/main {sha} refs/heads/main {'0' * 40}"
    assert any(" git pre-push " in line for line in ws.log_lines())


def test_blocking_foreign_pre_push_still_blocks(bare_repo: Workspace, tmp_path: Path) -> None:
    ws = bare_repo
    hook = ws.root / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\ncat >/dev/null\nexit 3\n")
    hook.chmod(0o755)
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=ws.env)
    ws.git("remote", "add", "origin", str(remote))
    proc = subprocess.run(
        ["git", "push", "-q", "origin", "main"], cwd=ws.root, env=ws.env, capture_output=True, check=False
    )
    assert proc.returncode != 0


def _husky(ws: Workspace) -> None:
    """The files husky v9 generates: `.husky/_/<hook>` sources `.husky/_/h`, which runs `.husky/<hook>`."""
    generated = ws.root / ".husky" / "_"
    generated.mkdir(parents=True)
    (generated / ".gitignore").write_text("*\n")
    (generated / "h").write_text(
        '#!/usr/bin/env sh\nn=$(basename "$0")\ns=$(dirname "$(dirname "$0")")/$n\n'
        '[ ! -f "$s" ] && exit 0\nsh -e "$s" "$@"\n'
    )
    for name in ("commit-msg", "pre-push", "pre-commit"):
        script = generated / name
        script.write_text('#!/usr/bin/env sh\n. "$(dirname "$0")/h"\n')
        script.chmod(0o755)
    (ws.root / ".husky" / "commit-msg").write_text('echo "husky commit-msg $1" >> .git/husky.log\n')
    (ws.root / ".husky" / "pre-push").write_text('echo "husky pre-push $1" >> .git/husky.log\ncat >> .git/husky.log\n')
    ws.git("config", "core.hooksPath", ".husky/_")
    ws.commit("husky")


def test_husky_core_hooks_path_is_handled(bare_repo: Workspace, tmp_path: Path) -> None:
    ws = bare_repo
    _husky(ws)
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    assert "tracemark-managed" in (ws.root / ".husky" / "_" / "commit-msg").read_text()
    assert not (ws.root / ".git" / "hooks" / "commit-msg").exists()
    ws.ai_write("s1", "a.txt", "ai line\n")
    sha = ws.commit("ai via husky", "a.txt")
    assert "Tracemark-Sessions: s1" in ws.trailers()
    assert ws.ranges(sha) == {"a.txt": {"s1": [[1, 1]]}}
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=ws.env)
    ws.git("remote", "add", "origin", str(remote))
    ws.git("push", "-q", "origin", "main")
    log = (ws.root / ".git" / "husky.log").read_text()
    assert "husky commit-msg .git/COMMIT_EDITMSG" in log
    assert f"refs/heads/main {sha} refs/heads/main" in log
    # Uninstall gives husky its files back, byte for byte
    assert ws.tracemark("uninstall", "--yes").returncode == 0
    assert (ws.root / ".husky" / "_" / "commit-msg").read_text() == '#!/usr/bin/env sh\n. "$(dirname "$0")/h"\n'
    assert not list((ws.root / ".husky" / "_").glob("*.tracemark-chained"))


def test_hooks_path_outside_the_repository_is_refused(bare_repo: Workspace, tmp_path: Path) -> None:
    ws = bare_repo
    shared = tmp_path / "shared-hooks"
    shared.mkdir()
    ws.git("config", "core.hooksPath", str(shared))
    before = tree_bytes(ws.root)
    proc = ws.tracemark("init", "--project", "demo", "--offline")
    assert proc.returncode == 1
    assert b"core.hooksPath" in proc.stderr
    assert b"hint:" in proc.stderr
    assert list(shared.iterdir()) == []
    assert tree_bytes(ws.root) == before


def test_init_on_invalid_agent_config_changes_nothing(bare_repo: Workspace) -> None:
    ws = bare_repo
    (ws.root / ".claude").mkdir()
    (ws.root / ".claude" / "settings.json").write_text('{"hooks": {')
    before = tree_bytes(ws.root)
    proc = ws.tracemark("init", "--project", "demo", "--offline")
    assert proc.returncode == 1
    assert b"not valid JSON" in proc.stderr
    assert tree_bytes(ws.root) == before
    assert not (ws.root / ".tracemark.yml").exists()


def test_init_with_read_only_hooks_dir_changes_nothing(bare_repo: Workspace) -> None:
    ws = bare_repo
    hooks = ws.root / ".git" / "hooks"
    before = tree_bytes(ws.root)
    with read_only(hooks):
        proc = ws.tracemark("init", "--project", "demo", "--offline")
    assert proc.returncode == 1
    assert b"not writable" in proc.stderr
    assert tree_bytes(ws.root) == before


def test_init_rolls_back_when_a_late_write_fails(bare_repo: Workspace) -> None:
    ws = bare_repo
    (ws.root / ".git" / "hooks" / "pre-push.tracemark-chained").mkdir()  # blocks the chaining rename
    (ws.root / ".git" / "hooks" / "pre-push").write_text("#!/bin/sh\nexit 0\n")
    before = tree_bytes(ws.root)
    proc = ws.tracemark("init", "--project", "demo", "--offline")
    assert proc.returncode == 1
    assert tree_bytes(ws.root) == before


def test_init_outside_a_repository_or_root_is_a_clear_error(tmp_path: Path, bare_repo: Workspace) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    proc = bare_repo.tracemark("init", "--project", "demo", "--offline", cwd=outside)
    assert proc.returncode == 1
    assert b"not inside a git repository" in proc.stderr
    assert list(outside.iterdir()) == []
    sub = bare_repo.root / "sub"
    sub.mkdir()
    proc = bare_repo.tracemark("init", "--project", "demo", "--offline", cwd=sub)
    assert proc.returncode == 1
    assert b"repository root" in proc.stderr
    assert not (bare_repo.root / ".tracemark.yml").exists()


def test_teammate_clone_is_onboarded_by_the_first_agent_hook(ws: Workspace, tmp_path: Path) -> None:
    clone_root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ws.root), str(clone_root)], check=True, env=ws.env)
    mate = Workspace(clone_root.resolve(), ws.env)
    assert not (clone_root / ".git" / "hooks" / "commit-msg").exists()
    mate.claude("SessionStart", "mate-1", source="startup")
    assert "tracemark-managed" in (clone_root / ".git" / "hooks" / "commit-msg").read_text()
    mate.ai_write("mate-1", "x.txt", "x\n")
    sha = mate.commit("mate commit", "x.txt")
    assert mate.ranges(sha) == {"x.txt": {"mate-1": [[1, 1]]}}


def test_linked_worktree_shares_hooks_and_state(ws: Workspace, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    ws.git("worktree", "add", "-q", "-b", "feature", str(linked))
    other = Workspace(linked.resolve(), ws.env)
    other.ai_write("wt-1", "w.txt", "w\n")
    sha = other.commit("in worktree", "w.txt")
    assert "Tracemark-Sessions: wt-1" in other.trailers()
    assert ws.ranges(sha) == {"w.txt": {"wt-1": [[1, 1]]}}  # one state dir in the common dir


def test_status_reports_setup_sessions_and_spool(ws: Workspace) -> None:
    ws.claude("SessionStart", "st-1", source="startup")
    (ws.state / "spool").mkdir(exist_ok=True)
    (ws.state / "spool" / "st-1-abc.json").write_text("{}")
    proc = ws.tracemark("status", "--json", "--no-server")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["initialised"] is True
    assert info["config"]["project"] == "demo"
    assert all(info["git_hooks"]["installed"].values())
    assert info["agent_hooks"] == {".claude/settings.json": True, ".cursor/hooks.json": False}
    assert info["sessions"] == 1
    assert info["spool"] == {"pending": 1, "rejected": 0}
    assert info["cli_on_path"]
    text = ws.tracemark("status", "--no-server")
    assert b"all installed" in text.stdout


def test_status_says_when_the_server_does_not_answer(ws: Workspace) -> None:
    env_server = {**ws.env, "TRACEMARK_SERVER": "http://127.0.0.1:9", "TRACEMARK_TOKEN": "t"}
    proc = subprocess.run(
        [PYTHON, "-m", "tracemark", "status", "--json"],
        cwd=ws.root,
        env=env_server,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["server"]["reachable"] is False


@pytest.mark.parametrize("name", ["commit-msg", "post-commit", "post-rewrite", "pre-push"])
def test_chained_hook_that_already_exists_is_an_error(bare_repo: Workspace, name: str) -> None:
    ws = bare_repo
    hooks = ws.root / ".git" / "hooks"
    (hooks / name).write_text("#!/bin/sh\necho mine\n")
    (hooks / f"{name}.tracemark-chained").write_text("#!/bin/sh\necho older\n")
    before = tree_bytes(ws.root)
    proc = ws.tracemark("init", "--project", "demo", "--offline")
    assert proc.returncode == 1
    assert b"already exists" in proc.stderr
    assert tree_bytes(ws.root) == before


def test_make_repo_helper_is_hermetic(tmp_path: Path) -> None:
    ws = make_repo(tmp_path, "other")
    assert ws.git("config", "user.email", check=False) == ""


def test_nested_worktree_files_belong_to_that_worktree(ws: Workspace) -> None:
    # Claude Code keeps CLAUDE_PROJECT_DIR at the main checkout while the agent works in a
    # worktree nested inside it (`.worktrees/x`): the edit must land in the nested worktree.
    nested = ws.root / ".worktrees" / "x"
    ws.git("worktree", "add", "-q", "-b", "nested", str(nested))
    ws.ai_write("n-1", ".worktrees/x/n.txt", "nested\n")
    other = Workspace(nested.resolve(), ws.env)
    sha = other.commit("nested", "n.txt")
    assert ws.ranges(sha) == {"n.txt": {"n-1": [[1, 1]]}}


def test_pre_push_hands_traced_commits_to_push(ws: Workspace, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=ws.env)
    ws.git("remote", "add", "origin", str(remote))
    ws.human_write("h.txt", "human\n")
    ws.commit("human")
    ws.git("push", "-q", "origin", "main")
    assert (
        "no pushed commit carries a Tracemark-Sessions trailer" in ws.log_lines()[-1]
        or "no recorded" in (ws.log_lines()[-1])
    )
    ws.ai_write("s1", "a.txt", "ai\n")
    ws.commit("ai")
    proc = subprocess.run(
        ["git", "push", "-q", "origin", "main"], cwd=ws.root, env=ws.env, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr  # not logged in, requireTrace false: warn, never block
    assert "1 traced commit(s)" in ws.log_lines()[-1]


def test_installed_agent_commands_run_with_and_without_the_cli(bare_repo: Workspace) -> None:
    ws = bare_repo
    assert ws.tracemark("init", "--project", "demo", "--claude", "--cursor", "--offline").returncode == 0
    settings = json.loads((ws.root / ".claude" / "settings.json").read_text())
    claude_cmd = settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
    cursor_cmd = json.loads((ws.root / ".cursor" / "hooks.json").read_text())["hooks"]["stop"][0]["command"]
    payload = json.dumps({"session_id": "cmd-1", "conversation_id": "cmd-1", "hook_event_name": "x"}).encode()
    no_cli_path = "/usr/bin:/bin"
    for path, expect_log in ((ws.env["PATH"], True), (no_cli_path, False)):
        env = {**ws.env, "PATH": path, "CLAUDE_PROJECT_DIR": str(ws.root)}
        lines = len(ws.log_lines())
        claude = subprocess.run(
            ["sh", "-c", claude_cmd], cwd=ws.root, env=env, input=payload, capture_output=True, check=False
        )
        cursor = subprocess.run(
            ["sh", "-c", cursor_cmd], cwd=ws.root, env=env, input=payload, capture_output=True, check=False
        )
        assert (claude.returncode, claude.stdout, claude.stderr) == (0, b"", b"")
        assert (cursor.returncode, cursor.stdout.strip(), cursor.stderr) == (0, b"{}", b"")
        assert (len(ws.log_lines()) == lines + 2) is expect_log


def test_missing_hooks_dir_and_symlinked_foreign_hook(bare_repo: Workspace) -> None:
    ws = bare_repo
    hooks = ws.root / ".git" / "hooks"
    shutil.rmtree(hooks)
    hooks.mkdir()
    scripts = ws.root / "scripts"
    scripts.mkdir()
    (scripts / "post-commit.sh").write_text("#!/bin/sh\necho linked >> .git/linked.log\n")
    (scripts / "post-commit.sh").chmod(0o755)
    (hooks / "post-commit").symlink_to("../../scripts/post-commit.sh")
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    assert (hooks / "post-commit.tracemark-chained").is_symlink()
    ws.human_write("x.txt", "x\n")
    ws.commit("x", "x.txt")
    assert (ws.root / ".git" / "linked.log").read_text() == "linked\n"
    assert ws.tracemark("uninstall", "--yes").returncode == 0
    assert (hooks / "post-commit").is_symlink()
    assert str((hooks / "post-commit").readlink()) == "../../scripts/post-commit.sh"


def test_init_creates_a_missing_hooks_dir(bare_repo: Workspace) -> None:
    ws = bare_repo
    shutil.rmtree(ws.root / ".git" / "hooks")
    assert ws.tracemark("init", "--project", "demo", "--offline").returncode == 0
    assert "tracemark-managed" in (ws.root / ".git" / "hooks" / "pre-push").read_text()
