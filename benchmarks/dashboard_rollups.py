"""Dashboard query cost: DynamoDB requests and latency of `GET /v1/dashboard/ai` for an organisation
with 1,000 and with 100,000 sessions (issue 7: the request count must be identical and the latency
ratio at most 1.2), plus the dashboard page's weight and time to first render in Chromium.

Sessions go through the real `RollupWriter` (in memory, for speed); the bucket items it produced are
then loaded into DynamoDB on moto and queried through the real `DynamoRollupStore`, counting calls.

Run by hand (`make bench`, or `python benchmarks/dashboard_rollups.py [--large 100000]`); writes the
`dashboard` section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from report import update_section

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "common")]
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ.setdefault(_name, "bench")

from tracemark_common.rollups import (  # noqa: E402
    CommitLines,
    InMemoryRollupStore,
    ModelUsage,
    RollupWriter,
    SessionFacts,
    query_dashboard,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TABLE = "bench-app-table"
USERS = [f"dev{i:03d}@example.com" for i in range(60)] + ["ci-bot", "release-bot"]
MODELS = ["claude-opus-4-6", "claude-sonnet-4-5", "gpt-5", "gemini-2.5-pro", "claude-haiku-4-5"]
PROJECTS = ["web", "api", "ml"]


def seed(count: int, rng: random.Random) -> InMemoryRollupStore:
    store = InMemoryRollupStore()
    writer = RollupWriter(store)
    shared: list[str] = []
    for i in range(count):
        user = rng.choice(USERS)
        commits = {}
        for _ in range(rng.randint(0, 2)):
            sha = rng.choice(shared) if shared and rng.random() < 0.1 else f"{rng.getrandbits(160):040x}"
            shared.append(sha)
            commits[sha] = CommitLines(40, 10, rng.randint(0, 30), rng.randint(0, 5))
        shared = shared[-200:]
        model = rng.choice(MODELS)
        tokens = rng.randint(1_000, 200_000)
        facts = SessionFacts(
            org="bench",
            project=rng.choice(PROJECTS),
            session_id=f"s{i}",
            user=user,
            user_kind="service" if user.endswith("-bot") else "user",
            at=NOW - timedelta(seconds=rng.randint(0, 89 * 86_400)),
            models={model: ModelUsage(total_tokens=tokens, cost_usd=tokens / 100_000)},
            total_tokens=tokens,
            cost_usd=tokens / 100_000,
            commits=commits,
        )
        writer.record_session(None, facts)
    for n in range(count // 20):
        writer.record_pr_correlated("bench", rng.choice(PROJECTS), 1, n, NOW - timedelta(hours=rng.randint(0, 2000)))
    return store


class CountingClient:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        self.calls += 1
        return getattr(self._client, name)


def load_into_dynamodb(client: Any, store: InMemoryRollupStore, org: str) -> int:
    """Copy the writer's buckets into DynamoDB through the adapter's own port (`put_bucket`), so
    the items have exactly the layout the service writes (hourly buckets packed per day)."""
    from tracemark_common.rollups.dynamo import DynamoRollupStore

    target = DynamoRollupStore(TABLE, client)
    for key in sorted(store.buckets):
        bucket = store.get_bucket(key)[1]
        moved = (key[0].replace("bench", org, 1), key[1])
        version, _, ops = target.get_bucket(moved)
        assert target.put_bucket(moved, bucket, version, ops)
    target.put_user_names(org, {ident: name for (_org, ident), name in store.names.items()})
    return len(store.buckets)


def measure_queries(
    client: Any, small: str, large: str, runs: int
) -> dict[str, tuple[tuple[int, int], tuple[float, float], float]]:
    """{range: ((requests small, large), (median seconds small, large), ratio)}. Each run queries
    the small organisation, then the large one, back to back; the ratio is the median over runs
    of large / small, so that the machine's drifting load (a shared VM) hits both sides of each
    pair alike rather than skewing one median."""
    from tracemark_common.rollups.dynamo import DynamoRollupStore

    result = {}
    for range_ in ("24h", "7d", "30d", "3m"):
        calls = []
        for org in (small, large):
            counting = CountingClient(client)
            query_dashboard(DynamoRollupStore(TABLE, counting), org, range_, None, NOW)  # warm-up; count
            calls.append(counting.calls)
        pairs = []
        for _ in range(runs):
            pair = []
            for org in (small, large):
                store = DynamoRollupStore(TABLE, client)
                started = time.perf_counter()
                query_dashboard(store, org, range_, None, NOW)
                pair.append(time.perf_counter() - started)
            pairs.append(pair)
        medians = (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        result[range_] = ((calls[0], calls[1]), medians, ratio)
    return result


class SizingClient(CountingClient):
    """Adds up the bytes of the attribute values the query's reads return."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.bytes = 0

    def batch_get_item(self, **kwargs: Any) -> Any:
        response = self._client.batch_get_item(**kwargs)
        for items in response.get("Responses", {}).values():
            for item in items:
                for name, value in item.items():
                    self.bytes += len(name) + sum(len(v) for v in value.values() if isinstance(v, str | bytes))
        return response


def read_size(client: Any, org: str, range_: str) -> int:
    """The bytes one query reads: the projected attributes (`pk`, `sk`, the buckets' `b`, the
    running totals of a `24h` query's hour packs, the user directory) of every item returned."""
    from tracemark_common.rollups.dynamo import DynamoRollupStore

    sizing = SizingClient(client)
    query_dashboard(DynamoRollupStore(TABLE, sizing), org, range_, None, NOW)
    return sizing.bytes


def page_load(store: InMemoryRollupStore) -> tuple[int, float, float] | None:
    """(bytes transferred, first contentful paint ms, cards rendered ms) in headless Chromium, with
    every request answered from disk or from the rollups by Playwright's router (no network)."""
    import json

    executable = shutil.which("chromium")
    if executable is None:
        return None
    from playwright.sync_api import Route, sync_playwright

    dashboard = ROOT / "dashboard"
    transferred = 0
    body_json = json.dumps(query_dashboard(store, "bench", "7d", None, NOW)).encode()

    def handle(route: Route) -> None:
        nonlocal transferred
        path = route.request.url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
        if path.startswith("v1/dashboard/ai"):
            transferred += len(body_json)
            route.fulfill(status=200, body=body_json, content_type="application/json")
            return
        file = dashboard / (path or "index.html")
        data = file.read_bytes() if file.is_file() else b""
        transferred += len(data)
        kinds = {"js": "text/javascript", "css": "text/css", "html": "text/html"}
        kind = kinds.get(file.suffix.lstrip("."), "text/plain")
        route.fulfill(status=200 if data else 404, body=data, content_type=kind)

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=args)
        page = browser.new_page()
        page.route("http://dashboard.bench/**", handle)
        page.add_init_script("sessionStorage.setItem('tracemark.token', 'bench-token')")
        page.goto("http://dashboard.bench/")
        page.wait_for_selector('[data-card="total_sessions"]')
        fcp = page.evaluate(
            "performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint')?.startTime ?? -1"
        )
        cards = page.evaluate("performance.now()")
        browser.close()
    return transferred, float(fcp), float(cards)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=41)
    args = parser.parse_args()

    import boto3
    import moto

    rows = []
    stores = {}
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for count in (args.small, args.large):
            started = time.perf_counter()
            store = seed(count, random.Random(count))
            seeded = time.perf_counter() - started
            items = load_into_dynamodb(client, store, f"bench{count}")
            stores[count] = store
            print(f"{count:,} sessions: seeded in {seeded:.1f} s, {items:,} bucket items", flush=True)
            rows.append((count, seeded, items))
        results = measure_queries(client, f"bench{args.small}", f"bench{args.large}", args.runs)
        sizes = {n: {r: read_size(client, f"bench{n}", r) for r in ("24h", "7d", "30d", "3m")} for n in stores}
    lines = [
        (
            f"An organisation with {args.small:,} and with {args.large:,} sessions (62 users, 5 models, 3 projects, "
            "over 90 days), written by the real `RollupWriter`; queries through `DynamoRollupStore` on moto "
            f"(in-process), {args.runs} runs, each querying the small organisation then the large one back to back: "
            "latencies are the medians, the ratio the median of the runs' large / small. "
            "Bytes = what one query's reads return (`pk`, `sk` and the blobs: a daily bucket per day; for `24h` the "
            "hours' counters of each day and at most two running totals of its users and models; the organisation's "
            "user directory). Real DynamoDB was not measured."
        ),
        "",
        "| range | requests (small / large) | bytes read (small / large) | latency small | latency large | ratio |",
        "|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for range_ in ("24h", "7d", "30d", "3m"):
        (calls_s, calls_l), (t_s, t_l), ratio = results[range_]
        worst = max(worst, ratio)
        size_s, size_l = sizes[args.small][range_], sizes[args.large][range_]
        lines.append(
            f"| {range_} | {calls_s} / {calls_l} | {size_s / 1024:.0f} / {size_l / 1024:.0f} KiB "
            f"| {t_s * 1000:.1f} ms | {t_l * 1000:.1f} ms | {ratio:.2f} |"
        )
    lines.append("")
    for count, seeded, items in rows:
        lines.append(f"- {count:,} sessions: seeded through the writer in {seeded:.1f} s; {items:,} buckets.")
    same = all(calls[0] == calls[1] for calls, _, _ in results.values())
    lines.append(f"- Request counts identical: {'yes' if same else 'NO'}; worst latency ratio {worst:.2f}.")
    load = page_load(stores[args.large])
    if load is None:
        lines.append("- Page load: skipped (Debian's chromium is not installed).")
    else:
        transferred, fcp, cards = load
        lines.append(
            f"- Page load (headless Chromium, local, cache empty): {transferred / 1024:.1f} KiB transferred "
            f"(HTML, JS, CSS, config and the 7-day API answer); first contentful paint {fcp:.0f} ms; "
            f"cards rendered at {cards:.0f} ms."
        )
    update_section("dashboard", "\n".join(lines))
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
