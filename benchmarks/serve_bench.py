"""`tracemark serve`: start-up time, per-request latency through the HTTP API emulator, and the cold
import time of every Lambda handler module (`python -X importtime`).

Run by hand (`make bench`); writes the `serve` section of benchmarks/README.md.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from report import percentile, update_section

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
REQUESTS = 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(data_dir: str) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    env = {**os.environ, "TRACEMARK_ADMIN_TOKEN": "bench-admin-token-0123456789abcdefghijkl"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "tracemark", "serve", "--port", str(port), "--data-dir", data_dir, "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, time.perf_counter() - started
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise SystemExit(f"serve exited: {process.stderr.read().decode() if process.stderr else ''}")
        if time.perf_counter() - started > 60:
            process.kill()
            raise SystemExit("serve did not answer within 60 s")
        time.sleep(0.02)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


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
            token = {"Authorization": "Bearer bench-admin-token-0123456789abcdefghijkl"}
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
