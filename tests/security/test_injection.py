"""Injection into the PR comment and check run, and XSS in the dashboard (docs/security.md §T7-T8).

Session data is untrusted: a path, a model name, a command or a policy message is whatever a
pusher signed (or whatever file name a contributor committed). Rendered Markdown must keep every
such value inside its cell, list item or code span: no new lines, no HTML, no links or images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tracemark_common.prs.correlate import PrCommit, correlate
from tracemark_common.prs.render import Links, render_check, render_comment
from tracemark_common.store.records import SessionRecord

REPO_ROOT = Path(__file__).resolve().parents[2]
SHA = "a" * 40
EVIL_URL = "https://evil.example.test/x"
HOSTILE = (
    "x @acme/security\n\n## Approved by security\n<img src=x onerror=alert(1)> "
    f"[click]({EVIL_URL}) ![t]({EVIL_URL}) `code` | col"
)


def _record(session_id: str) -> SessionRecord:
    evidence = {
        "chainloop.material.evidence.id": "CHAINLOOP_AI_CODING_SESSION",
        "data": {
            "schema_version": "v1",
            "agent": {"name": "claude-code", "version": HOSTILE},
            "session": {"id": session_id, "started_at": "2026-11-20T10:00:00Z", "ended_at": "2026-11-20T10:10:00Z"},
            "model": {"primary": HOSTILE, "models_used": [HOSTILE]},
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "tools_used": {"tracemark_shell_commands": [{"command": "rm -rf / # " + HOSTILE, "exit_code": 0}]},
            "code_changes": {
                "files": [
                    {
                        "path": "src/" + HOSTILE + "\n</details>\n# pwned",
                        "status": "modified",
                        "lines_added": 3,
                        "lines_removed": 0,
                        "attribution": "ai",
                        "line_ranges": [{"start": 1, "end": 3}],
                    },
                    {
                        "path": ".github/workflows/" + HOSTILE,
                        "status": "created",
                        "lines_added": 1,
                        "lines_removed": 0,
                        "attribution": "ai",
                    },
                ]
            },
        },
    }
    return SessionRecord(
        id=session_id,
        org="acme",
        project="web",
        user="dev",
        user_kind="user",
        agent="claude-code",
        started_at="2026-11-20T10:00:00Z",
        ended_at="2026-11-20T10:10:00Z",
        at="2026-11-20T10:10:00Z",
        received_at="2026-11-20T10:11:00Z",
        last_received_at="2026-11-20T10:11:00Z",
        commits=[SHA],
        rewritten_from={},
        digests=["d"],
        gated=True,
        evidence_key="k",
        summary={},
        facts={},
        transcript=None,
        policy_results=[
            {"policy": "p " + HOSTILE, "status": "fail", "gate": True, "violations": [HOSTILE]},
            {"policy": "q", "status": "neutral", "reason": HOSTILE, "violations": []},
        ],
        evidence=evidence,
    )


class _Lookup:
    def get_session(self, org: str, session_id: str) -> SessionRecord | None:
        return _record(session_id) if org == "acme" else None


def _check_markdown(text: str, allowed_details: int) -> None:
    prose = re.sub(r"`[^`\n]*`", "", text)  # code spans render their content literally
    assert not re.search(r"<(?!/?details>|/?summary>|/?code>|/?sub>|!--)", prose), "raw HTML from session data"
    assert f"]({EVIL_URL})" not in prose.replace("\\]", ""), "a link or image built from session data"
    assert not re.search(r"^#{1,6} (Approved|pwned)", text, re.MULTILINE), "a heading injected"
    assert text.count("</details>") == allowed_details
    assert "<img" not in prose
    assert not re.search(r"@[A-Za-z0-9]", prose), "a mention built from session data would notify people"


def test_comment_keeps_hostile_session_data_inert() -> None:
    """T7.1: the summary comment escapes paths, models, agents, commands and messages, and
    neutralises mentions."""
    correlation = correlate("acme", [PrCommit(SHA, "feat\n\nTracemark-Sessions: s-1")], _Lookup())
    comment = render_comment(correlation, Links("https://github.com/acme/app", SHA, "https://dash.test"))
    assert comment is not None and "s-1" in comment
    _check_markdown(comment, allowed_details=1)
    for line in comment.splitlines():
        if line.startswith("| ") and "src/" in line:
            assert line.endswith("|"), line  # the hostile path stayed inside its table row


def test_check_run_keeps_hostile_session_data_inert() -> None:
    """T7.2: the check run's title and summary escape the same values (the title is counts only)."""
    correlation = correlate("acme", [PrCommit(SHA, "feat\n\nTracemark-Sessions: s-1")], _Lookup())
    check = render_check(correlation, skip_missing=False)
    assert check.conclusion == "failure"
    assert "\n" not in check.title and "<" not in check.title
    _check_markdown(check.summary, allowed_details=0)
    assert not any(line.startswith("## Approved") for line in check.summary.splitlines())


def test_trailer_ids_outside_the_id_pattern_are_ignored() -> None:
    """T7.3: ids from commit messages (anyone's) are kept only when they match ^[A-Za-z0-9_-]{1,128}$."""
    message = f"x\n\nTracemark-Sessions: <img src=x>, [a]({EVIL_URL}), ok-id"
    correlation = correlate("other-org", [PrCommit(SHA, message)], _Lookup())
    assert set(correlation.missing) == {"ok-id"}
    comment = render_comment(correlation, Links("https://github.com/acme/app", SHA))
    assert comment is not None
    _check_markdown(comment, allowed_details=0)


def test_dashboard_renders_data_as_text_only_under_a_strict_csp() -> None:
    """T8.1: app.js never parses data as HTML; index.html's CSP allows only same-origin scripts and
    styles (no inline, no eval); links taken from data must be https."""
    source = (REPO_ROOT / "dashboard" / "app.js").read_text(encoding="utf-8")
    app = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in app, sink
    assert re.search(r"/\^https:\\/\\//\.test\(p\.url\)", app), "PR links are checked to be https"
    fetches = re.findall(r"fetch\(([^,]+),", app)
    assert fetches == ["apiBase + path"], fetches  # the API base is deploy configuration, never data
    assert 'credentials: "omit"' in app
    html = (REPO_ROOT / "dashboard" / "index.html").read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    policy: dict[str, Any] = {d.split()[0]: d.split()[1:] for d in csp.group(1).split(";") if d.strip()}
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"] and policy["base-uri"] == ["'none'"]
    assert "unsafe-inline" not in csp.group(1) and "unsafe-eval" not in csp.group(1)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "no inline script"
    assert not re.search(r'src="(https?:)?//', html), "no third-party script or style"
