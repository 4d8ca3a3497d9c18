"""Reconcile against a large organisation: wall time, requests, in-flight peak, RSS.

Usage: .venv/bin/python bench/bench_reconcile.py [--users 50000] [--latency 0.02]
       [--apply] [--compare-reads] [--keep DIR]

The sandbox runs in its own process (`python -m sync sandbox --port N`) so that its
CPU is not the reconcile's. It is seeded through the control API with N users as
Pluvo would hold them after a sync of the HR export (same refs, emails, names, extra
values, department/location/all-staff groups with their members), of which 1% drifted
by hand (a changed name), plus 1% users HR does not know. The HR export holds the N
employees. The state store starts empty, so the report shows every user as one to
adopt; with --apply the adoption is sent and timed, and a second reconcile (the
steady state: a synced store, 1% drift) is timed after it.

Reconcile itself runs as the CLI in a subprocess, so its peak RSS (ru_maxrss of the
children) is its own; requests are the sandbox's GraphQL request counter, and
in_flight_max the most GraphQL requests the sandbox was answering at once. `--latency`
adds that many seconds to every request, as a network to a remote Pluvo would: on
loopback without it, overlapping requests gain little, since the sandbox shares the
machine's two cores with the client.

--compare-reads then reads the active users in this process twice, through the
client at the same concurrency: by offset pages side by side (what reconcile does)
and by cursor, page after page (its fallback), one page per request both times so
that they differ only in overlapping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.commands.reconcile.live import USER_NODE_SELECTION  # noqa: E402
from sync.config.pluvo import PluvoConfig  # noqa: E402
from sync.pluvo.client import PluvoClient  # noqa: E402
from sync.pluvo.reads import ConnectionRead, read_by_cursor, read_connection  # noqa: E402
from sync.sandbox import SandboxControl  # noqa: E402
from tests.e2e.workspace import employee, make_workspace, ref_of  # noqa: E402

CONCURRENCY = 8
"""pluvo.concurrency of the reconcile: the in-flight peak it may reach."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slug(text: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join("".join(c if c.isalnum() else " " for c in plain.lower()).split())


def seed_users(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    users: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {
        "all-staff": {"ref": "all-staff", "name": "Alle medewerkers", "members": []}
    }
    for i in range(n):
        row = employee(i)
        name = " ".join(p for p in (row["Voornaam"], row["Tussenvoegsel"], row["Achternaam"]) if p)
        if i % 100 == 7:
            name = f"{name} (edited by hand)"
        users.append(
            {
                "ref": ref_of(i),
                "email": row["E-mailadres"],
                "name": name,
                "language": "NL",
                "roles": ["PARTICIPANT"],
                "extra": {
                    "department": row["Afdeling"],
                    "job_title": row["Functie"],
                    "start_date": "2015-03-01T00:00:00+00:00",
                    "is_external": False,
                    "location": row["Locatie"],
                    "skills": ["Excel"],
                },
            }
        )
        for ref, title in (
            (f"dept-{slug(row['Afdeling'])}", row["Afdeling"]),
            (f"loc-{slug(row['Locatie'])}", f"Vestiging {row['Locatie']}"),
            ("all-staff", "Alle medewerkers"),
        ):
            groups.setdefault(ref, {"ref": ref, "name": title, "members": []})
            groups[ref]["members"].append(ref_of(i))
    for i in range(n // 100):
        users.append({"ref": f"EXT-{i}", "email": f"ext{i}@partner.nl", "name": f"Extern {i}"})
    return users, list(groups.values())


def timed_cli(ws: Any, control: SandboxControl, *args: str) -> dict[str, Any]:
    """Run one CLI command; its own peak RSS comes from wait4 on that very child."""
    control.reset_counters()
    out = ws.root / "reconcile.json"
    log = ws.root / "cli.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            ws.command(*args, "--out", str(out)),
            cwd=ws.root,
            env=ws.env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if process.returncode not in (0, 3):
        tail = log.read_text(encoding="utf-8")[-3000:]
        raise SystemExit(f"{args} failed ({process.returncode}):\n{tail}")
    report = json.loads(out.read_text(encoding="utf-8"))
    counters = control.counters()
    return {
        "command": " ".join(args),
        "exit": process.returncode,
        "seconds": round(seconds, 1),
        "graphql_requests": counters["graphql_requests"],
        "in_flight_max": counters["in_flight_max"],
        "concurrency": CONCURRENCY,
        "mutations": counters["mutations_total"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "timings": report.get("timings"),
        "live": report.get("live"),
        "drift": report.get("drift_counts"),
        "planned": report.get("planned"),
    }


async def compare_reads(url: str, control: SandboxControl) -> list[dict[str, Any]]:
    """The active users read both ways; see the module docstring."""
    config = PluvoConfig.model_validate(
        {
            "url": url,
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            "concurrency": CONCURRENCY,
            "batch_size": 1,
        }
    )
    results = []
    async with PluvoClient(config) as client:
        await client.count_users()  # the token and a connection, outside the timings
        for name, read in (("offset pages", read_connection), ("cursor pages", read_by_cursor)):
            control.reset_counters()
            started = time.monotonic()
            done: ConnectionRead = await read(
                client, "paginatedUsers", {"archived": False}, USER_NODE_SELECTION, what="users"
            )
            seconds = time.monotonic() - started
            counters = control.counters()
            results.append(
                {
                    "read": name,
                    "users": len(done.nodes),
                    "seconds": round(seconds, 1),
                    "graphql_requests": counters["graphql_requests"],
                    "in_flight_max": counters["in_flight_max"],
                    "concurrency": CONCURRENCY,
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the sandbox adds to each request"
    )
    parser.add_argument("--apply", action="store_true", help="adopt, then reconcile again")
    parser.add_argument(
        "--compare-reads", action="store_true", help="time the users read by offset and by cursor"
    )
    parser.add_argument("--keep", type=Path, default=None, help="workspace folder to keep")
    args = parser.parse_args()

    port = free_port()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            *("-m", "sync", "sandbox", "--port", str(port), "--latency", str(args.latency)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    control = SandboxControl(url, timeout=600)
    try:
        for _ in range(200):
            try:
                control.counters()
                break
            except OSError:
                time.sleep(0.05)
        t0 = time.monotonic()
        users, groups = seed_users(args.users)
        for start in range(0, len(users), 10_000):
            control.seed(users=users[start : start + 10_000])
        control.seed(groups=groups)
        print(
            f"seeded {len(users)} users, {len(groups)} groups in {time.monotonic() - t0:.1f} s; "
            f"latency {args.latency * 1000:.0f} ms per request"
        )

        folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
        ws = make_workspace(
            folder,
            url,
            **{
                "pluvo.concurrency": CONCURRENCY,
                "safety.max_changes": {"share": 1.0},
                "safety.min_source_ratio": None,
            },
        )
        ws.write_hr(employee(i) for i in range(args.users))
        results = [timed_cli(ws, control, "reconcile")]
        if args.apply:
            results.append(timed_cli(ws, control, "reconcile", "--apply"))
            results.append(timed_cli(ws, control, "reconcile"))
        for result in results:
            print(json.dumps(result, ensure_ascii=False))
        if args.compare_reads:
            for read in asyncio.run(compare_reads(url, control)):
                print(json.dumps(read, ensure_ascii=False))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=60)


if __name__ == "__main__":
    main()
