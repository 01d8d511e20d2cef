"""Shared by the benchmark scripts: rewriting one marked section of benchmarks/README.md
(`<!-- BEGIN name -->` ... `<!-- END name -->`), percentiles, and starting `tracemark serve`."""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"
ROOT = README.parent.parent
ADMIN_TOKEN = "bench-admin-token-0123456789abcdefghijkl"  # noqa: S105 - a throwaway local token


def machine() -> str:
    import os

    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
    )


def update_section(name: str, body: str) -> None:
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"<!-- BEGIN {name} -->\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.DOTALL)
    text = pattern.sub(lambda _match: block, text) if pattern.search(text) else text.rstrip() + f"\n\n{block}\n"
    README.write_text(text)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(
    data_dir: str, env: Mapping[str, str] | None = None, timeout_s: float = 120
) -> tuple[subprocess.Popen[bytes], str, float]:
    """`tracemark serve` on a free loopback port: (process, URL, seconds until /healthz answered)."""
    import requests

    port = free_port()
    base = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MOTO_"))}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "tracemark", "serve", "--port", str(port), "--data-dir", data_dir, "--quiet"],
        cwd=ROOT,
        env={**base, "TRACEMARK_ADMIN_TOKEN": ADMIN_TOKEN, "TRACEMARK_SERVE_MAX_SECONDS": "3600", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < timeout_s:
        try:
            if requests.get(f"{url}/healthz", timeout=10).status_code == 200:
                return process, url, time.perf_counter() - started
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise SystemExit(f"serve exited: {process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.02)
    process.kill()
    raise SystemExit(f"serve did not answer within {timeout_s:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
