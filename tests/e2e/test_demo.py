"""The five-minute tour (`tracemark demo`, `make demo`) as a newcomer runs it: a subprocess against
a running `tracemark serve`, found through the serve.json serve writes into its data dir. What the
demo prints is checked against what the fake GitHub received and what the API answers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_helpers import call

from tracemark_common.prs.render import CHECK_NAME, MARKER

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
# The replayed session's own numbers (tests/fixtures/claude/claude_transcripts.expected.json).
OUTPUT_TOKENS, AI_LINES_ADDED, AI_LINES_REMOVED, HUMAN_LINES_ADDED = 1118, 2, 2, 2


def demo_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "TRACEMARK_", "GITHUB_"))}
    return {**env, **(extra or {})}


def run_demo(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracemark", "demo", *args],
        cwd=REPO_ROOT,
        env=env or demo_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def printed(output: str, pattern: str) -> str:
    match = re.search(pattern, output, re.MULTILINE)
    assert match, f"{pattern!r} not in the demo's output:\n{output}"
    return match.group(1)


def check_tour(served: Any, output: str) -> tuple[str, str, str]:
    """The steps, the session, the PR comment, the check run and the dashboard, as printed and as real."""
    for number in range(1, 10):
        assert re.search(rf"^\s*{number}\. ", output, re.MULTILINE), f"step {number} missing:\n{output}"
    session_id = printed(output, r"^Session ([0-9a-f-]{36})$")
    org = printed(output, r"org (demo-[0-9a-f]{6})")
    token = printed(output, r'paste this token into "API token": (\S+)$')
    assert printed(output, r"Open the dashboard: (\S+)$") == f"{served.url}/"
    # The session, as the API has it: the replayed transcript's tokens, real attribution from the hooks.
    session = call(served, "GET", f"/v1/sessions/{session_id}", token, 200)
    data = session["evidence"]["data"]
    assert data["usage"]["output_tokens"] == OUTPUT_TOKENS
    assert data["code_changes"]["ai_lines_added"] == AI_LINES_ADDED
    assert data["code_changes"]["ai_lines_removed"] == AI_LINES_REMOVED
    assert data["code_changes"]["human_lines_added"] == HUMAN_LINES_ADDED
    assert f"{OUTPUT_TOKENS} out" in output
    assert f"AI +{AI_LINES_ADDED} -{AI_LINES_REMOVED}, human +{HUMAN_LINES_ADDED} -0" in output
    assert [pr["number"] for pr in session["prs"]] == [1]
    return session_id, org, token


def check_github(output: str, org: str, session_id: str, comments: list[Any], runs: list[Any]) -> None:
    # The PR comment, printed as posted: one comment, with the session row.
    assert len(comments) == 1
    body = comments[0]["body"]
    assert body.startswith(MARKER)
    assert f"[`{session_id[:8]}`]" in body
    for line in body.splitlines():
        if line.strip():
            assert f"    {line}" in output
    # The check run on the PR head: the real conclusion (the session's transcript trips no-secrets).
    (run,) = runs
    assert run["name"] == CHECK_NAME
    assert run["status"] == "completed"
    assert f"Check run '{CHECK_NAME}' on {run['head_sha'][:10]}: {run['conclusion']} - {run['output']['title']}" in (
        output
    )
    # (today the replayed transcript trips the built-in no-secrets policy: `PostHogAPIKey = "..."`)
    title = run["output"]["title"]
    assert title.startswith("1 AI session")
    assert run["conclusion"] == ("failure" if "policy violation" in title else "success")
    assert f"{org}/sample-app" in output


def check_dashboard(served: Any, output: str, token: str) -> None:
    cards = call(served, "GET", "/v1/dashboard/ai", token, 200, params={"range": "7d"})
    assert cards["total_sessions"]["value"] == 1
    assert cards["active_users"]["value"] == 1
    assert cards["ai_assisted_prs"]["value"] == 1
    ai_code = cards["ai_authored_code"]["value"]
    assert ai_code == pytest.approx(100 * 4 / 6, abs=0.01)
    assert f"1 session, 1 active user, 1 AI-assisted PR, AI-authored code {ai_code}%" in output


def test_tracemark_demo_against_served_stack(served_stack: Any, tmp_path: Path) -> None:
    served, github = served_stack, served_stack.github
    # Given `tracemark serve` running (its serve.json in the data dir says where and how)
    discovery = served.data_dir / "serve.json"
    assert discovery.stat().st_mode & 0o777 == 0o600
    # When a newcomer runs the demo, twice in the same directory
    first = run_demo("--data-dir", str(served.data_dir), "--dir", str(tmp_path / "tour"))
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_demo("--data-dir", str(served.data_dir), "--dir", str(tmp_path / "tour"))
    # Then both runs work, each with its own organisation and sample repository
    assert again.returncode == 0, again.stdout + again.stderr
    for result in (first, again):
        output = result.stdout
        session_id, org, token = check_tour(served, output)
        full_name = f"{org}/sample-app"
        comments = github.comments_on(full_name, 1)
        runs = github.check_runs_for(full_name)
        check_github(output, org, session_id, comments, runs)
        check_dashboard(served, output, token)
    assert printed(first.stdout, r"org (demo-\w+)") != printed(again.stdout, r"org (demo-\w+)")
    # The user's own login was never touched: the demo keeps its credentials in its directory
    assert (tmp_path / "tour" / "home" / "config" / "tracemark" / "credentials.json").is_file()


def test_demo_with_server_and_token_flags(served_stack: Any, tmp_path: Path) -> None:
    served = served_stack
    result = run_demo(
        "--data-dir",
        str(tmp_path / "no-serve-here"),
        "--server",
        served.url,
        "--token",
        served.admin_token,
        "--webhook-secret",
        served.webhook_secret,
        "--github-url",
        served.github.url,
        "--dir",
        str(tmp_path / "flags"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    check_tour(served, result.stdout)


def test_demo_without_a_server_says_start_make_serve(tmp_path: Path) -> None:
    result = run_demo("--data-dir", str(tmp_path / "nothing"), timeout=60)
    assert result.returncode == 1
    assert "start `make serve` in another terminal first" in result.stderr
    assert "Traceback" not in result.stderr
    # a serve.json left behind by a server that is gone: the same clear message
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "serve.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "admin_token": "x" * 40}))
    result = run_demo("--data-dir", str(stale), timeout=60)
    assert result.returncode == 1
    assert "does not answer" in result.stderr
    assert "make serve" in result.stderr


def test_demo_refuses_a_directory_it_did_not_make(served_stack: Any, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = run_demo("--data-dir", str(served_stack.data_dir), "--dir", str(tmp_path), timeout=60)
    assert result.returncode == 1
    assert "not made by `tracemark demo`" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_make_serve_then_make_demo(tmp_path: Path) -> None:
    """The README's tour: plain `tracemark serve` (no GitHub configured, so it runs its own fake
    GitHub), then `make demo` from the checkout, which finds it through serve.json in serve's data dir.
    `-o` keeps make from reinstalling the virtualenv (other work may have touched pyproject.toml)."""
    data_dir = tmp_path / "data"
    serve = subprocess.Popen(
        [sys.executable, "-m", "tracemark", "serve", "--port", "0", "--data-dir", str(data_dir)],
        cwd=REPO_ROOT,
        env=demo_env({"TRACEMARK_SERVE_MAX_SECONDS": "300"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        discovery = data_dir / "serve.json"
        deadline = time.monotonic() + 90
        while not discovery.exists() and serve.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert discovery.exists(), "serve wrote no serve.json"
        info = json.loads(discovery.read_text())
        assert info["fake_github"] is True
        assert requests.get(f"{info['url']}/healthz", timeout=10).status_code == 200
        result = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-o",
                ".venv/.installed-stamp",
                "demo",
                f"DEMO_ARGS=--data-dir {data_dir} --dir {tmp_path / 'tour'}",
            ],
            cwd=REPO_ROOT,
            env=demo_env(),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(rf"Check run '{CHECK_NAME}' on \w+: (failure|success) - 1 AI session", result.stdout)
        assert f"Open the dashboard: {info['url']}/" in result.stdout
        # And Ctrl-C on serve removes its serve.json: a later demo says to start serve
        serve.send_signal(signal.SIGINT)
        out, _ = serve.communicate(timeout=60)
        assert serve.returncode == 0, out
        assert "a fake GitHub at http://127.0.0.1:" in out
        assert not discovery.exists()
        stopped = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-o",
                ".venv/.installed-stamp",
                "demo",
                f"DEMO_ARGS=--data-dir {data_dir}",
            ],
            cwd=REPO_ROOT,
            env=demo_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stopped.returncode != 0
        assert "start `make serve` in another terminal first" in stopped.stderr
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
