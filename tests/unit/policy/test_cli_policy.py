"""`tracemark policy eval|check|builtins`: exit 0 pass, 1 violations, 2 error."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from policy_helpers import FIXTURES, SEED, load_evidence, with_changes

from tracemark.main import main

EVIDENCE = FIXTURES / "chainloop" / "ai-coding-session-with-attribution.json"


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_builtin_pass_and_violation_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "eval", "--policy", "builtin:token-budget", "--input", str(EVIDENCE)]) == 0
    assert "PASS  token-budget" in capsys.readouterr().out
    code = main(
        ["policy", "eval", "--policy", "builtin:token-budget", "--input", str(EVIDENCE), "--with", "max_tokens=100"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  token-budget" in out
    assert "Session used 302 tokens, over the budget of 100" in out


def test_seed_policy_file_with_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = with_changes(load_evidence(EVIDENCE.name), {"data.model.models_used": ["gpt-4o"]})
    code = main(
        [
            "policy",
            "eval",
            "--policy",
            str(SEED / "approved-models.yaml"),
            "--input",
            write(tmp_path, "e.json", envelope),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["results"][0]["violations"] == ["Model 'gpt-4o' is not approved."]
    assert report["gated"] is False


def test_contract_with_org_policies_and_gate_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["policy", "eval", "--policy", str(SEED / "contract.yaml"), "--input", str(EVIDENCE), "--json"]
    args += [f"--org-policy={name}={SEED / name}.yaml" for name in ("approved-models", "token-budget", "ai-code-ratio")]
    assert main([*args, "--gate-default"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in report["results"]] == ["pass", "pass", "pass"]
    assert all(r["gate"] for r in report["results"])


def test_raw_rego_file_and_signed_envelope_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a DSSE envelope around an in-toto statement whose predicate holds the evidence
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [],
        "predicate": {"evidence": load_evidence(EVIDENCE.name)},
    }
    dsse = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
        "signatures": [],
    }
    rego = 'package main\nimport rego.v1\nviolations contains sprintf("agent %s", [input.data.agent.name]) if true\n'
    code = main(
        ["policy", "eval", "--policy", write(tmp_path, "agent.rego", rego), "--input", write(tmp_path, "a.json", dsse)]
    )
    assert code == 1
    assert "agent claude-code" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case",
    [
        ("missing.rego", None, [], "does not exist"),
        ("p.rego", "not json", [], "is not valid JSON"),
        ("p.rego", "[1, 2]", [], "must be a JSON object"),
        ("p.rego", '{"payloadType": "x", "payload": "%%%"}', [], "not base64-encoded JSON"),
        ("p.rego", '{"_type": "s", "predicate": {}}', [], "no `evidence` object"),
        ("bad.rego", None, [], "no `package` declaration"),
        ("builtin:nope", None, [], "there is no built-in policy 'nope'"),
        ("builtin:token-budget", None, ["--with", "budget=1"], "has no input 'budget'"),
        ("builtin:token-budget", None, ["--with", "novalue"], "expects KEY=VALUE"),
        ("contract.yaml", None, ["--with", "a=1"], "--with applies to a single policy"),
        ("contract.yaml", None, [], "the organisation has no policy 'approved-models'"),
        ("p.rego", None, ["--timeout", "0"], "--timeout must be between"),
    ],
)
def test_errors_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, str | None, list[str], str]
) -> None:
    policy, evidence, extra, message = case
    write(tmp_path, "p.rego", 'package main\nviolations contains "x" if false\n')
    write(tmp_path, "bad.rego", "violations contains 1\n")
    write(tmp_path, "contract.yaml", (SEED / "contract.yaml").read_text())
    target = policy if policy.startswith("builtin:") else str(tmp_path / policy)
    evidence_path = write(tmp_path, "in.json", evidence) if evidence is not None else str(EVIDENCE)
    assert main(["policy", "eval", "--policy", target, "--input", evidence_path, *extra]) == 2
    assert message in capsys.readouterr().err


def test_rego_error_and_timeout_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(tmp_path, "broken.rego", "package main\nimport rego.v1\nresult := nofunc(1)\n")
    assert main(["policy", "eval", "--policy", broken, "--input", str(EVIDENCE)]) == 2
    assert (
        "ERROR broken (rego_error: the policy failed to evaluate: Function not found: nofunc)"
        in capsys.readouterr().out
    )
    loop = write(
        tmp_path,
        "loop.rego",
        "package main\nimport rego.v1\nviolations contains x if { some x in numbers.range(1, 1000000000); x < 0 }\n",
    )
    assert main(["policy", "eval", "--policy", loop, "--input", str(EVIDENCE), "--timeout", "0.5"]) == 2
    assert "timeout" in capsys.readouterr().out


def test_oversize_input_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemark.commands.policy as command

    monkeypatch.setattr(command, "MAX_INPUT_FILE_BYTES", 100)
    assert main(["policy", "eval", "--policy", "builtin:no-secrets", "--input", str(EVIDENCE)]) == 2
    assert "larger than" in capsys.readouterr().err


def test_check_and_builtins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(SEED / "token-budget.yaml")]) == 0
    assert "the policy is valid" in capsys.readouterr().out
    args = ["policy", "check", str(SEED / "contract.yaml")]
    args += [f"--org-policy={name}={SEED / name}.yaml" for name in ("approved-models", "token-budget", "ai-code-ratio")]
    assert main(args) == 0
    assert "3 policies attached" in capsys.readouterr().out
    assert main(["policy", "check", write(tmp_path, "x.rego", "package main\nviolations contains {\n")]) == 2
    assert "does not compile" in capsys.readouterr().err
    assert main(["policy", "builtins"]) == 0
    listing = capsys.readouterr().out
    assert "builtin:no-dangerous-commands" in listing
    assert "--with max_tokens=...  (default '500000')" in listing
    assert main(["policy"]) == 2


def test_without_regopy_the_command_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "regopy" else real(name, *a))
    assert main(["policy", "eval", "--policy", "builtin:no-secrets", "--input", str(EVIDENCE)]) == 2
    assert "pip install 'tracemark[policy]'" in capsys.readouterr().err
