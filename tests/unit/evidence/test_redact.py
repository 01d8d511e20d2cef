"""Secret redaction: true positives per rule, false positives that must survive, the allow marker,
and JSON-safe transcript redaction."""

from __future__ import annotations

import json

import pytest

from tracemark.redact import Redaction, redact_json, redact_jsonl_line, redact_text, strip_url_credentials

# Test secrets are assembled at run time so no scanner mistakes this file for a leak.
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GH = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
KEY = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Y\nq1w2e3r4t5y6\n-----END RSA " + "PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"export AWS_ACCESS_KEY_ID={AWS_ID}", "aws-access-key-id"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws-secret-access-key"),
        (f"curl -H 'Authorization: token {GH}'", "github-token"),
        ("github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github-token"),
        ("glpat-" + "abcdefghij1234567890", "gitlab-token"),
        ("xoxb-" + "123456789012-abcdefghijklmnop", "slack-token"),
        (KEY, "private-key"),
        (f"Bearer {JWT}", "jwt"),
        ('password="hunter22"', "generic-secret-assignment"),
        ("DB_PASSWORD=s3cr3t!", "generic-secret-assignment"),
        ("api_key: 'q8f7e6d5c4'", "generic-secret-assignment"),
        ("git clone https://alice:hunter22@example.com/a/b", "url-credentials"),
        ("client_config = Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg", "high-entropy-assignment"),
        ("sk-ant-" + "api03-abcdefghijklmnopqrstuvwxyz0123456789", "anthropic-api-key"),
    ],
)
def test_true_positives(text: str, rule: str) -> None:
    redacted, found = redact_text(text)
    assert f"[REDACTED:{rule}]" in redacted
    assert found.counts[rule] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "commit 3b90afc1234567890abcdef1234567890abcdef1",
        "sha256 = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "session_id: 6da7d497-00e2-460d-a6b4-d280e0314cfd",
        "path = /Users/alex/workspace/cli/.worktrees/3/docs/geese.md",
        "password = getpass()",
        "api_key: config.api_key",
        "password = os.environ['DB_PASSWORD']",
        "token = ${GITHUB_TOKEN}",
        "const x = 'hello world'",
        "the password is strong",
        "tool_use_id = toolu_01SZF6abcdefghijklmnop",
        "checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "url = https://github.com/entireio/cli/blob/main/x.go",
        "message_id=msg_01AbCdEfGhIjKlMnOpQrStUv",
    ],
)
def test_false_positives_survive(text: str) -> None:
    redacted, found = redact_text(text)
    assert redacted == text, found.counts
    assert found.total == 0


def test_allow_marker_exempts_its_line_only() -> None:
    text = f"a = '{AWS_ID}'  # tracemark:allow\nb = '{AWS_ID}'"
    redacted, found = redact_text(text)
    assert redacted.splitlines()[0].startswith(f"a = '{AWS_ID}'")
    assert "[REDACTED:aws-access-key-id]" in redacted.splitlines()[1]
    assert found.total == 1


def test_counts_per_rule_accumulate() -> None:
    total = Redaction()
    for text in (AWS_ID, AWS_ID + " " + GH):
        total += redact_text(text)[1]
    assert total.as_dict() == {"total": 3, "rules": {"aws-access-key-id": 2, "github-token": 1}}


def test_json_redaction_keeps_ids_and_structure() -> None:
    record = {"uuid": "x", "sessionId": AWS_ID, "message": {"content": [{"type": "text", "text": f"key {AWS_ID}"}]}}
    found = Redaction()
    cleaned = redact_json(record, found)
    assert cleaned["sessionId"] == AWS_ID  # protected key
    assert cleaned["message"]["content"][0]["text"] == "key [REDACTED:aws-access-key-id]"
    assert found.total == 1


def test_jsonl_line_stays_valid_json_and_untouched_lines_are_byte_identical() -> None:
    found = Redaction()
    clean_line = b'{"type":"user","message":{"content":"hello"}}\n'
    assert redact_jsonl_line(clean_line, found) is clean_line
    line = json.dumps({"type": "user", "toolUseResult": {"stdout": KEY + "\n" + GH}}).encode() + b"\n"
    out = redact_jsonl_line(line, found)
    parsed = json.loads(out)
    assert parsed["toolUseResult"]["stdout"] == "[REDACTED:private-key]\n[REDACTED:github-token]"
    assert out.endswith(b"\n")
    # a corrupt line is redacted as text, never dropped
    assert b"[REDACTED:github-token]" in redact_jsonl_line(b'{"broken ' + GH.encode(), found)


def test_binary_junk_does_not_crash() -> None:
    found = Redaction()
    assert redact_jsonl_line(b"\xff\xfe\x00token=" + GH.encode(), found)
    assert found.total >= 1


def test_strip_url_credentials() -> None:
    assert strip_url_credentials("https://user:tok@github.com/a/b.git") == "https://github.com/a/b.git"
    assert strip_url_credentials("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert strip_url_credentials("ssh://git@host/x") == "ssh://host/x"


def test_pathological_input_is_fast_enough() -> None:
    # a long line of `a=` repeated must not blow up the regex engine (no timing assertion:
    # the test timeout is the guard)
    redact_text("password=" * 20000 + "x" * 100000)


def test_secret_valued_json_keys_in_structured_data() -> None:
    found = Redaction()
    record = {
        "tool_input": {"password": "hunter22", "key": "src/main.py", "max_tokens": "4096", "token_count": "12"},
        "env": [{"name": "X", "client_secret": "s3cr3t-value"}],
    }
    line = json.dumps(record).encode() + b"\n"
    cleaned = json.loads(redact_jsonl_line(line, found))
    assert cleaned["tool_input"]["password"] == "[REDACTED:generic-secret-assignment]"
    assert cleaned["env"][0]["client_secret"] == "[REDACTED:generic-secret-assignment]"
    assert cleaned["tool_input"]["key"] == "src/main.py"
    assert cleaned["tool_input"]["max_tokens"] == "4096"
    assert found.total == 2


def test_assignments_inside_json_strings_pass_the_line_gate() -> None:
    found = Redaction()
    line = json.dumps({"type": "user", "message": {"content": 'config:\n  db_password: "hunter22"\n'}}).encode()
    cleaned = json.loads(redact_jsonl_line(line, found))
    assert "hunter22" not in cleaned["message"]["content"]
    assert found.counts["generic-secret-assignment"] == 1


def test_non_ascii_text_whose_lowercase_changes_length() -> None:
    # "İ".lower() is two characters: offsets must still point at the original text
    redacted, found = redact_text("İİİ password='hunter22' İ")
    assert redacted == "İİİ password='[REDACTED:generic-secret-assignment]' İ"
    assert found.total == 1


def test_large_clean_lines_are_not_rewritten() -> None:
    found = Redaction()
    line = json.dumps(
        {"type": "assistant", "message": {"content": "x" * 100_000, "usage": {"input_tokens": 3}}}
    ).encode()
    assert redact_jsonl_line(line, found) is line
