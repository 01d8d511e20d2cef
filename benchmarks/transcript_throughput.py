"""Transcript parsing throughput: MB/s and records/s on a large synthetic Claude Code transcript
built from the real fixtures (message ids rewritten per copy so every response stays distinct),
in-process and through `tracemark sessions inspect --json`, with peak memory; side by side with
ccusage (npm, version 18) when it is installed (`npm install ccusage@18`, or on PATH).

Run by hand (`make bench`, or `python benchmarks/transcript_throughput.py --mb 200`); writes the
`transcript` section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import update_section

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "claude"
SESSION_ID = "6da7d497-00e2-460d-a6b4-d280e0314cfd"
RSS_WRAPPER = (
    "import resource, subprocess, sys;"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
)


def build(path: Path, megabytes: int) -> tuple[int, int]:
    """(bytes, records) of a synthetic transcript of about `megabytes` MB."""
    lines = [
        line + b"\n" for p in sorted(FIXTURES.glob("claude_transcript_*.jsonl")) for line in p.read_bytes().splitlines()
    ]
    target = megabytes * 1024 * 1024
    size = records = copy = 0
    with path.open("wb") as out:
        while size < target:
            tag = f'"msg_r{copy}_'.encode()
            for line in lines:
                data = line.replace(b'"msg_', tag)
                out.write(data)
                size += len(data)
                records += 1
            copy += 1
    return size, records


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in KB) of one run of `command`."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *command], capture_output=True, text=True, env=env, check=False
    )
    elapsed = time.perf_counter() - started
    rss, code = result.stdout.split()
    if code != "0":
        raise RuntimeError(f"{command[0]} failed: {result.stderr[-500:]}")
    return elapsed, int(rss)


def in_process(path: Path) -> float:
    sys.path[:0] = [str(ROOT / "cli"), str(ROOT / "layers" / "common")]
    from tracemark.transcript import parse_claude_session

    started = time.perf_counter()
    parse_claude_session(path)
    return time.perf_counter() - started


def redaction(path: Path, target: Path) -> float:
    """The pre-push work on a transcript: redact every line and gzip it."""
    from tracemark.push import write_redacted_transcript
    from tracemark.redact import Redaction

    started = time.perf_counter()
    write_redacted_transcript([path], target, Redaction())
    return time.perf_counter() - started


def find_ccusage() -> list[str] | None:
    local = Path(os.environ.get("CCUSAGE_PREFIX", "/tmp/ccusage")) / "node_modules" / ".bin" / "ccusage"
    if local.exists():
        return [str(local)]
    found = shutil.which("ccusage")
    return [found] if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200, help="size of the synthetic transcript (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        projects = Path(tmp) / "claude" / "projects" / "-bench"
        projects.mkdir(parents=True)
        path = projects / f"{SESSION_ID}.jsonl"
        size, records = build(path, args.mb)
        mb = size / (1024 * 1024)
        parse = min(in_process(path) for _ in range(args.runs))
        redact = redaction(path, Path(tmp) / "redacted.jsonl.gz")
        ours = [
            measure([sys.executable, "-m", "tracemark", "sessions", "inspect", "--json", str(path)])
            for _ in range(args.runs)
        ]
        best, rss = min(t for t, _ in ours), max(r for _, r in ours)
        rows = [
            f"| what | time (best of {args.runs}) | MB/s | records/s | peak RSS |",
            "|---|---|---|---|---|",
            f"| parse_claude_session (in-process) | {parse:.2f} s | {mb / parse:.0f} | {records / parse:,.0f} | - |",
            (
                f"| redact + gzip for upload (pre-push, in-process) | {redact:.2f} s | {mb / redact:.0f} "
                f"| {records / redact:,.0f} | - |"
            ),
            (
                f"| `tracemark sessions inspect --json` | {best:.2f} s | {mb / best:.0f} | {records / best:,.0f} "
                f"| {rss / 1024:.0f} MB |"
            ),
        ]
        ccusage = find_ccusage()
        if ccusage:
            env = {**os.environ, "CLAUDE_CONFIG_DIR": str(Path(tmp) / "claude")}
            theirs = [measure([*ccusage, "session", "--json", "--offline"], env) for _ in range(args.runs)]
            c_best, c_rss = min(t for t, _ in theirs), max(r for _, r in theirs)
            rows.append(
                f"| ccusage 18 `session --json --offline` | {c_best:.2f} s | {mb / c_best:.0f} "
                f"| {records / c_best:,.0f} | {c_rss / 1024:.0f} MB |"
            )
        else:
            rows.append("| ccusage 18 | not installed (`npm install --prefix /tmp/ccusage ccusage@18`) | | | |")
    body = (
        f"Synthetic transcript: {mb:.0f} MB, {records:,} records, built from the six real fixtures "
        "(message ids made unique per copy).\n\n" + "\n".join(rows)
    )
    print(body)
    update_section("transcript", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
