"""Pluvo client throughput: batches with variables vs. literals, against a sandbox.

Usage: .venv/bin/python bench/bench_client.py [--users 10000] [--latency 0.02]
       [--batch-size 25] [--concurrency 4] [--naive-sample 200]

Each mode gets its own sandbox (`python -m sync sandbox --port 0`) in a subprocess, so
server work (parsing and validating documents, executing them) runs on its own core
and is not paid for by the client's event loop, as with a real Pluvo. A mode sends
`--users` upserts and then as many set_extra_values (four values each: string,
datetime, boolean, multiselect) through `run_calls`, and reports wall time and
requests. The naive baseline (one mutation per request, one request at a time) is
timed on a sample of upserts and extrapolated: run in full it would take minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.config.pluvo import PluvoConfig  # noqa: E402
from sync.pluvo import ops  # noqa: E402
from sync.pluvo.client import PluvoClient  # noqa: E402

ROLES = ["PARTICIPANT", "MANAGER,PARTICIPANT", "TRAINER", "PLANNER"]
SKILLS = [["Python"], ["SQL", "Excel"], ["Leadership"], ["Sales", "Design"]]


@contextmanager
def sandbox(latency: float) -> Iterator[str]:
    """A sandbox in a subprocess; yields its base URL once it listens.

    Its output is drained by a thread: a full pipe would stall the server mid-run.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", "sandbox", "--port", "0", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = re.search(r"listening on (\S+)", line)
            if found:
                break
        else:
            raise RuntimeError("the sandbox did not start")
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def upserts(n: int, prefix: str = "E") -> list[ops.Call]:
    return [
        ops.upsert_user(
            f"{prefix}{i:06d}",
            {
                "name": f"Person {i}",
                "email": f"{prefix.lower()}{i}@example.org",
                "roles": ROLES[i % len(ROLES)],
                "language": "NL" if i % 3 else "EN",
                "is_active": True,
            },
            send_invite=False,
        )
        for i in range(n)
    ]


def value_calls(n: int) -> list[ops.Call]:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    return [
        ops.set_extra_values(
            f"E{i:06d}",
            [
                {"categoryRef": "department", "stringValue": f"Dept {i % 40}"},
                {"categoryRef": "start_date", "datetimeValue": start + timedelta(days=i % 1500)},
                {"categoryRef": "is_external", "booleanValue": i % 7 == 0},
                {
                    "categoryRef": "skills",
                    "choiceValues": [{"stringValue": s} for s in SKILLS[i % len(SKILLS)]],
                },
            ],
        )
        for i in range(n)
    ]


def config(url: str, **overrides: Any) -> PluvoConfig:
    values: dict[str, Any] = {
        "url": url,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        **overrides,
    }
    return PluvoConfig.model_validate(values)


async def timed(client: PluvoClient, calls: list[ops.Call]) -> tuple[float, int, int]:
    before = client.counters.requests
    start = time.perf_counter()
    results = await client.run_calls(calls)
    elapsed = time.perf_counter() - start
    failed = sum(1 for r in results if not r.ok)
    return elapsed, client.counters.requests - before, failed


async def mode(url: str, args: argparse.Namespace, *, inline: bool) -> dict[str, Any]:
    settings = config(
        url, batch_size=args.batch_size, concurrency=args.concurrency, inline_arguments=inline
    )
    async with PluvoClient(settings) as client:
        await client.count_users()  # token and connection, outside the timings
        up = await timed(client, upserts(args.users))
        values = await timed(client, value_calls(args.users))
    return {"upserts": up, "values": values}


async def naive(url: str, sample: int) -> float:
    """Seconds per upsert for one mutation per request, sequentially."""
    async with PluvoClient(config(url, batch_size=1, concurrency=1)) as client:
        await client.count_users()
        elapsed, _, _ = await timed(client, upserts(sample, prefix="N"))
    return elapsed / sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--naive-sample", type=int, default=200)
    args = parser.parse_args()

    print(
        f"{args.users} upserts + {args.users} set_extra_values, latency {args.latency * 1000:.0f}"
        f" ms, batch_size {args.batch_size}, concurrency {args.concurrency}"
    )
    upsert_times: dict[str, float] = {}
    for name, inline in (("variables", False), ("literals", True)):
        with sandbox(args.latency) as url:
            result = asyncio.run(mode(url, args, inline=inline))
        total = 0.0
        for part in ("upserts", "values"):
            elapsed, requests, failed = result[part]
            total += elapsed
            print(
                f"  {name:<9} {part:<7} {elapsed:7.2f} s  {requests:6d} requests"
                f"  {requests / args.users:.3f} req/record  {failed} failed"
            )
        print(f"  {name:<9} total   {total:7.2f} s")
        upsert_times[name] = result["upserts"][0]
    with sandbox(args.latency) as url:
        per_call = asyncio.run(naive(url, args.naive_sample))
    estimate = per_call * args.users
    print(
        f"  naive     upserts {estimate:7.2f} s  {args.users:6d} requests"
        f"  (extrapolated from {args.naive_sample}: {per_call * 1000:.1f} ms each)"
    )
    print(
        "  upserts vs naive: "
        + ", ".join(f"{name} {estimate / t:.0f}x faster" for name, t in upsert_times.items())
    )


if __name__ == "__main__":
    main()
