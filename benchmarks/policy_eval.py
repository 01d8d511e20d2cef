"""Policy evaluation time per session (issue 5): the seed's three policies (org policies, run in a
sandboxed subprocess with a 2 s limit) and the built-in contract (in-process, warm interpreters),
on Chainloop's example evidence padded to about 50 KB and to about 1 MB.

Run by hand (`make bench`); writes the `policy` section of benchmarks/README.md.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from typing import Any

from report import ROOT, percentile, update_section
from tracemark_common.policy import evaluate_session

SEED = ROOT / "tests" / "fixtures" / "policies" / "seed"
EVIDENCE = ROOT / "tests" / "fixtures" / "chainloop" / "ai-coding-session.json"
RUNS = 15


def padded(size: int) -> dict[str, Any]:
    """The example evidence with `size` bytes' worth of shell commands (what policies scan)."""
    envelope = copy.deepcopy(json.loads(EVIDENCE.read_text()))
    commands = envelope["data"].setdefault("tools_used", {}).setdefault("tracemark_shell_commands", [])
    while len(json.dumps(envelope)) < size:
        commands.append({"command": f"pytest -q tests/unit/test_{len(commands)}.py -k 'not slow'", "exit_code": 0})
    return envelope


def timed(contract: str | None, policies: dict[str, str], envelope: dict[str, Any]) -> list[float]:
    evaluate_session(contract, policies, False, envelope)  # warm the interpreters / caches once
    samples = []
    for _ in range(RUNS):
        began = time.perf_counter()
        report = evaluate_session(contract, policies, False, envelope)
        samples.append((time.perf_counter() - began) * 1000)
        assert all(result["status"] != "neutral" for result in report.results), report.results
    return samples


def main() -> None:
    seed_policies = {path.stem: path.read_text() for path in SEED.glob("*.yaml") if path.stem != "contract"}
    seed_contract = (SEED / "contract.yaml").read_text()
    lines = [
        "| contract | evidence | median | p95 |",
        "|---|---|---|---|",
    ]
    for label, size in (("50 KB", 50_000), ("1 MB", 1_000_000)):
        envelope = padded(size)
        for name, contract, policies in (
            ("the seed's 3 policies (org policies: sandboxed subprocess)", seed_contract, seed_policies),
            ("built-in contract (8 built-ins in-process, warm)", None, {}),
        ):
            samples = timed(contract, policies, envelope)
            lines.append(
                f"| {name} | {label} | {statistics.median(samples):.0f} ms | {percentile(samples, 0.95):.0f} ms |"
            )
    body = f"Per session, {RUNS} runs after one warm-up, `evaluate_session` as ingest calls it.\n\n" + "\n".join(lines)
    update_section("policy", body)
    print(body)


if __name__ == "__main__":
    main()
