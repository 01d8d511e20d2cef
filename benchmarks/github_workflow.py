"""The PR correlation workflow through `tracemark serve` with the fake GitHub: GitHub API calls per
`synchronize` (budget ceil(N/100) + 4) and workflow wall time, for N commits and S sessions
(N = 250, S = 20 as in issue 6, plus a small and a >250-commit PR).

Run by hand (`make bench`); writes the `github` section of benchmarks/README.md.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from report import ADMIN_TOKEN, start_serve, stop, update_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "unit" / "backend"))
sys.path.insert(0, str(ROOT / "local"))
sys.path.insert(0, str(ROOT / "layers" / "common"))

from attest_builders import commit_entry, evidence, public_pem, sha, sign, statement  # noqa: E402

from tracemark_common import dsse  # noqa: E402
from tracemark_common.prs.signature import signature_for  # noqa: E402
from tracemark_local.fake_github import FakeGitHub  # noqa: E402

ADMIN = ADMIN_TOKEN
APP_ID = "4242"
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway local secret
CASES = ((10, 2), (250, 20), (400, 20))  # (commits, sessions)
RUNS = 3


def call(url: str, method: str, path: str, token: str, status: int, **kwargs: Any) -> Any:
    response = requests.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs)
    if response.status_code != status:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return response.json()


def deliver(url: str, event: str, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_for(SECRET, data),
    }
    response = requests.post(f"{url}/github/webhook", data=data, headers=headers, timeout=60)
    if response.status_code != 202:
        raise SystemExit(f"webhook: {response.status_code} {response.text[:300]}")


def wait_for(check: Any, deadline_s: float = 300.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.02)
    raise SystemExit("the workflow did not publish in time")


def run_case(url: str, github: FakeGitHub, commits: int, sessions: int, case: int) -> dict[str, Any]:
    org = f"bench-gh-{case}-{uuid.uuid4().hex[:6]}"
    admin = call(url, "POST", "/v1/orgs", ADMIN, 201, json={"name": org})["token"]
    call(url, "POST", "/v1/projects", admin, 201, json={"name": "web"})
    member = call(url, "POST", "/v1/tokens", admin, 201, json={"subject": "dev", "kind": "user"})["token"]
    key = dsse.generate_private_key()
    call(url, "POST", "/v1/keys", member, 201, json={"public_key_pem": public_pem(key)})
    installation_id, repo_id, full_name = 5000 + case, 9000 + case, f"{org}/app"
    deliver(
        url,
        "installation",
        {
            "action": "created",
            "installation": {"id": installation_id, "account": {"login": org, "type": "Organization"}},
            "repositories": [{"id": repo_id, "full_name": full_name, "private": False}],
        },
    )
    call(url, "PUT", f"/v1/installations/{installation_id}", ADMIN, 200, json={"org": org})
    call(url, "PUT", f"/v1/repositories/{repo_id}", admin, 200, json={"project": "web"})
    github.add_repo(full_name, repo_id=repo_id, installation_id=installation_id)
    base = case * 100_000
    for s in range(sessions):
        numbers = [base + n for n in range(1, commits + 1) if n % sessions == s]
        ev = evidence(f"b{case}-s{s}", commits=[commit_entry(n) for n in numbers])
        call(url, "POST", "/v1/attestations", member, 201, json=sign(statement(ev, org=org), key))
    messages = [f"change {n}\n\nTracemark-Sessions: b{case}-s{n % sessions}" for n in range(1, commits + 1)]
    github.add_pull(full_name, 1, messages, shas=[sha(base + n) for n in range(1, commits + 1)])

    def event(action: str) -> dict[str, Any]:
        return {
            "action": action,
            "number": 1,
            "pull_request": {"number": 1},
            "repository": {"id": repo_id, "full_name": full_name},
            "installation": {"id": installation_id},
        }

    deliver(url, "pull_request", event("opened"))
    wait_for(lambda: github.check_runs_for(full_name, github.pull(full_name, 1).head_sha))
    calls, times = [], []
    for run in range(RUNS):
        head = github.push(full_name, 1, [f"more {run}"], shas=[sha(base + 90_000 + run)])
        github.calls.clear()
        began = time.perf_counter()
        deliver(url, "pull_request", event("synchronize"))
        wait_for(lambda head=head: github.check_runs_for(full_name, head))
        times.append(time.perf_counter() - began)
        calls.append(len(github.api_calls()))
    total = commits + RUNS
    return {
        "commits": total,
        "sessions": sessions,
        "calls": max(calls),
        "budget": math.ceil(total / 100) + 4,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "comments": len(github.comments_on(full_name, 1)),
    }


def main() -> int:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeGitHub(app_id=APP_ID, public_key_pem=public.decode(), max_lifetime_seconds=1800) as github,
    ):
        key_path = Path(tmp) / "app.pem"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        process, url, _ = start_serve(
            str(Path(tmp) / "data"),
            {
                "TRACEMARK_GITHUB_APP_ID": APP_ID,
                "TRACEMARK_GITHUB_PRIVATE_KEY": str(key_path),
                "TRACEMARK_GITHUB_WEBHOOK_SECRET": SECRET,
                "GITHUB_API_URL": github.url,
            },
        )
        try:
            rows = [run_case(url, github, n, s, i) for i, (n, s) in enumerate(CASES, start=1)]
        finally:
            stop(process)
    lines = [
        (
            "Through `tracemark serve` on loopback with the fake GitHub (`tracemark_local.fake_github`); a "
            f"`synchronize` webhook after one more commit, {RUNS} runs each; wall time from the webhook to the "
            "check run on the new head (Step Functions on moto, handlers in-process). API calls exclude the "
            "installation token (cached in memory)."
        ),
        "",
        "| commits N | sessions S | GitHub API calls | budget ceil(N/100)+4 | median | max | comments on the PR |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['commits']} | {r['sessions']} | {r['calls']} | {r['budget']} | {r['median_s']:.2f} s "
        f"| {r['max_s']:.2f} s | {r['comments']} |"
        for r in rows
    ]
    update_section("github", "\n".join(lines))
    print("\n".join(lines))
    return 0 if all(r["calls"] <= r["budget"] and r["comments"] == 1 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
