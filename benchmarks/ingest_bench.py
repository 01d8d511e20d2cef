"""Attestation ingest through `tracemark serve` over HTTP: a 50 KB evidence posted directly, a
5 MB evidence through a presigned upload, and replays of the same envelope.

Run by hand (`make bench`); writes the `ingest` section of benchmarks/README.md.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from report import ADMIN_TOKEN, percentile, start_serve, stop, update_section

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "chainloop" / "ai-coding-session.json"
ADMIN = ADMIN_TOKEN
SMALL_RUNS = 40
LARGE_RUNS = 5


def evidence(session_id: str, size: int) -> dict[str, Any]:
    """The Chainloop fixture, its raw transcript padded to about `size` bytes."""
    envelope = json.loads(FIXTURE.read_text())
    data = envelope["data"]
    data["session"]["id"] = session_id
    line = data["raw_session"]["main"][0]
    filler = copy.deepcopy(line)
    filler["message"]["content"] = "x" * 900
    step = len(json.dumps(filler))
    data["raw_session"]["main"] = [line] + [filler] * max(0, (size - len(json.dumps(envelope))) // step)
    sha = f"{abs(hash(session_id)):040x}"[-40:]
    data["git_context"]["tracemark_commits"] = [{"sha": sha, "files": [], "line_ranges": []}]
    return envelope


def envelope_for(org: str, session_id: str, size: int, key: Any) -> bytes:
    from tracemark_common import dsse

    ev = evidence(session_id, size)
    sha = ev["data"]["git_context"]["tracemark_commits"][0]["sha"]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": sha, "digest": {"gitCommit": sha}}],
        "predicateType": "https://tracemark.dev/ai-coding-session/v1",
        "predicate": {"evidence": ev, "project": "bench", "organization": org, "cli_version": "bench"},
    }
    return json.dumps(dsse.sign(json.dumps(statement).encode(), key)).encode()


def setup(url: str) -> tuple[str, str, Any]:
    from tracemark_common import dsse

    org = "bench-" + str(int(time.time()))
    admin = requests.post(f"{url}/v1/orgs", json={"name": org}, headers=_auth(ADMIN), timeout=30).json()["token"]
    requests.post(f"{url}/v1/projects", json={"name": "bench"}, headers=_auth(admin), timeout=30).raise_for_status()
    token = requests.post(
        f"{url}/v1/tokens", json={"subject": "bench", "kind": "user"}, headers=_auth(admin), timeout=30
    ).json()["token"]
    key = dsse.generate_private_key()
    pem = dsse.public_key_pem(key.public_key())
    requests.post(f"{url}/v1/keys", json={"public_key_pem": pem}, headers=_auth(token), timeout=30).raise_for_status()
    return org, token, key


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(url: str, token: str, body: bytes, expect: int) -> float:
    began = time.perf_counter()
    response = requests.post(
        f"{url}/v1/attestations", data=body, headers={**_auth(token), "Content-Type": "application/json"}, timeout=120
    )
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != expect:
        raise SystemExit(f"expected {expect}, got {response.status_code}: {response.text[:300]}")
    return elapsed


def upload_and_post(url: str, token: str, body: bytes) -> float:
    began = time.perf_counter()
    upload = requests.post(f"{url}/v1/uploads", json={"kind": "attestation"}, headers=_auth(token), timeout=30).json()
    requests.put(upload["url"], data=body, headers=upload["headers"], timeout=120).raise_for_status()
    response = requests.post(
        f"{url}/v1/attestations", json={"upload_id": upload["upload_id"]}, headers=_auth(token), timeout=120
    )
    if response.status_code != 201:
        raise SystemExit(f"upload ingest failed: {response.status_code} {response.text[:300]}")
    return (time.perf_counter() - began) * 1000


def row(what: str, size: int, samples: list[float]) -> str:
    return (
        f"| {what} | {size / 1024:,.0f} KB | {len(samples)} | {statistics.median(samples):.0f} ms "
        f"| {percentile(samples, 0.95):.0f} ms |"
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        process, url, _ = start_serve(data_dir)
        try:
            org, token, key = setup(url)
            small = [envelope_for(org, f"small-{n}", 50 * 1024, key) for n in range(SMALL_RUNS)]
            new_small = [post(url, token, body, 201) for body in small]
            replays = [post(url, token, small[0], 200) for _ in range(SMALL_RUNS)]
            large = [envelope_for(org, f"large-{n}", 5 * 1024 * 1024, key) for n in range(LARGE_RUNS)]
            new_large = [upload_and_post(url, token, body) for body in large]
        finally:
            stop(process)
    body = "\n".join(
        [
            (
                "Through `tracemark serve` on loopback (moto server, handlers in-process), one client, "
                "sequential requests; each attestation a new session (verify, schema, policies, S3, "
                "DynamoDB transaction, rollups)."
            ),
            "",
            "| what | envelope | n | median | p95 |",
            "|---|---|---|---|---|",
            row("new attestation, 50 KB evidence, direct POST", len(small[0]), new_small),
            row("replay of the same envelope (200)", len(small[0]), replays),
            row("new attestation, 5 MB evidence, upload + PUT + POST", len(large[0]), new_large),
        ]
    )
    update_section("ingest", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
