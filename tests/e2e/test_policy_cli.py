"""`tracemark policy eval` as a user runs it: the console script in a subprocess, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVIDENCE = FIXTURES / "chainloop" / "ai-coding-session-with-attribution.json"
SEED = FIXTURES / "policies" / "seed"


def tracemark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracemark", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("args", "code", "stream", "text"),
    [
        (["--policy", "builtin:token-budget"], 0, "stdout", "PASS  token-budget"),
        (["--policy", "builtin:token-budget", "--with", "max_tokens=10"], 1, "stdout", "over the budget of 10"),
        (["--policy", "builtin:token-budget", "--with", "x=1"], 2, "stderr", "has no input 'x'"),
        (["--policy", str(SEED / "missing.yaml")], 2, "stderr", "does not exist"),
    ],
    ids=["pass", "violation", "bad-argument", "missing-file"],
)
def test_exit_codes(args: list[str], code: int, stream: str, text: str) -> None:
    result = tracemark("policy", "eval", "--input", str(EVIDENCE), *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert text in getattr(result, stream)


def test_json_report_of_the_seed_contract() -> None:
    result = tracemark(
        "policy",
        "eval",
        "--policy",
        str(SEED / "contract.yaml"),
        "--input",
        str(EVIDENCE),
        "--json",
        *(f"--org-policy={name}={SEED / name}.yaml" for name in ("approved-models", "token-budget", "ai-code-ratio")),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["policy"] for r in report["results"]] == ["approved-models", "token-budget", "ai-code-ratio"]
    assert report["gated"] is False
