"""`tracemark serve`: start-up time, per-request latency through the HTTP API emulator, and the cold
import time of every Lambda handler module (`python -X importtime`).

Run by hand (`make bench`); writes the `serve` section of benchmarks/README.md.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import requests

from report import ADMIN_TOKEN, ROOT, percentile, start_serve, stop, update_section

RUNS = 3
REQUESTS = 200


def latency(url: str, path: str, headers: dict[str, str]) -> list[float]:
    session = requests.Session()
    session.get(url + path, headers=headers, timeout=10)  # warm
    samples = []
    for _ in range(REQUESTS):
        began = time.perf_counter()
        session.get(url + path, headers=headers, timeout=10)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def cold_imports() -> list[tuple[str, float]]:
    rows = []
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        code = f"import sys; sys.path.insert(0, {str(app.parent)!r}); import app"
        env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, check=False
        )
        match = re.search(r"import time:\s+\d+ \|\s+(\d+) \| app\s*$", result.stderr, re.MULTILINE)
        rows.append((app.parent.name, int(match.group(1)) / 1000 if match else float("nan")))
    return rows


def main() -> None:
    startups = []
    with tempfile.TemporaryDirectory() as data_dir:
        for _ in range(RUNS):
            process, url, seconds = start_serve(data_dir)
            startups.append(seconds)
            stop(process)
        process, url, _ = start_serve(data_dir)
        try:
            token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            health = latency(url, "/healthz", {})
            whoami = latency(url, "/v1/whoami", token)
            missing = latency(url, "/v1/no-such-route", {})
        finally:
            stop(process)
    lines = [
        "| measurement | value |",
        "|---|---|",
        (
            f"| `tracemark serve` start-up to first `/healthz` 200 (median of {RUNS}) "
            f"| {statistics.median(startups):.2f} s |"
        ),
    ]
    for name, samples in (
        ("GET /healthz", health),
        ("GET /v1/whoami (admin token)", whoami),
        ("unknown route (404)", missing),
    ):
        lines.append(
            f"| {name}, loopback HTTP, {REQUESTS} requests | p50 {percentile(samples, 0.5):.1f} ms, "
            f"p95 {percentile(samples, 0.95):.1f} ms |"
        )
    lines += ["", "Cold import of each Lambda handler module (`python -X importtime`, cumulative):", ""]
    lines += ["| handler | cold import |", "|---|---|"]
    lines += [f"| `functions/{name}/app.py` | {ms:.0f} ms |" for name, ms in cold_imports()]
    update_section("serve", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
