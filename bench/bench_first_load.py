"""The first load of a large organisation: a fresh state store, the whole export applied.

Usage:
  .venv/bin/python bench/bench_first_load.py [--users 100000 1000000] [--latency 0 0.02]
                                             [--keep DIR] [--profile SECONDS]

What every new customer does first. For each size and latency: bench_mapping's
generator writes an HR export of N users (departments, locations, managers, roles,
extra values, a few bad rows), a fresh SQLite store is migrated, a sandbox runs in its
own process with that latency, and `pluvo-sync run` applies everything as a
subprocess. Printed per case: wall time, requests, mutations, the client's CPU seconds
(user + system, from wait4) and per mutation, the client's peak RSS, the sandbox's CPU
over the same window (from /proc) and the server's share of the two.

Targets (issue 18): client CPU <= 0.2 ms per mutation; at 0 ms latency the client uses
less CPU than the sandbox; client peak RSS grows with the plan's size, <= 2 GB at 1M;
the 1M first load completes. `--profile S` attaches py-spy to the client S seconds in
until it exits, and prints its top frames (py-spy must be installed).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import SECRET_ENV, start_sandbox, write_config  # noqa: E402
from bench_mapping import generate  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def profile(pid: int, out: Path) -> subprocess.Popen[str] | None:
    """py-spy on the client from now until it exits."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("(py-spy not installed: no profile)")
        return None
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def top_frames(raw: Path, count: int = 12) -> list[str]:
    """Self time by innermost frame from py-spy's raw (collapsed stack) output."""
    totals: dict[str, int] = {}
    grand = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        own = [f for f in frames if "(sync/" in f]  # the engine's innermost frame
        leaf = own[-1] if own else frames[-1]
        totals[leaf] = totals.get(leaf, 0) + int(samples)
        grand += int(samples)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return [f"{100 * n / max(grand, 1):5.1f}% {leaf}" for leaf, n in ranked]


def first_load(users: int, latency: float, keep: Path | None, spy_after: int) -> dict[str, Any]:
    from sync.sandbox.control import SandboxControl

    base = keep or Path(tempfile.mkdtemp(prefix="pluvo-first-load-"))
    folder = base / f"load-{users}-{latency * 1000:.0f}ms"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    sandbox, url = start_sandbox(latency)
    env = {**os.environ, SECRET_ENV: "sandbox-secret"}
    try:
        config = write_config(folder, url, "hr.csv")
        generate(folder / "hr.csv", users)
        subprocess.run(
            [sys.executable, "-m", "sync", "db", "upgrade", "-c", str(config)],
            check=True, cwd=folder, env=env, capture_output=True,
        )  # fmt: skip
        control = SandboxControl(url)
        control.reset_counters()
        server_before = cpu_seconds(sandbox.pid)
        with (folder / "out.txt").open("w") as out, (folder / "err.txt").open("w") as err:
            started = time.perf_counter()
            client = subprocess.Popen(
                [sys.executable, "-m", "sync", "run", "-c", str(config)],
                cwd=folder, env=env, stdout=out, stderr=err, text=True,
            )  # fmt: skip
            spy = None
            if spy_after:
                time.sleep(spy_after)
                if client.poll() is None:
                    spy = profile(client.pid, folder / "profile.txt")
            _, status, usage = os.wait4(client.pid, 0)
            wall = time.perf_counter() - started
        server_cpu = cpu_seconds(sandbox.pid) - server_before
        if spy is not None:
            spy.wait()
        seen = control.counters()
        client_cpu = usage.ru_utime + usage.ru_stime
        mutations = int(seen["mutations_total"])
        stdout = (folder / "out.txt").read_text()
        result = {
            "users": users,
            "latency_ms": latency * 1000,
            "exit": os.waitstatus_to_exitcode(status),
            "wall_s": wall,
            "requests": int(seen["graphql_requests"]) + int(seen["token_requests"]),
            "mutations": mutations,
            "client_cpu_s": client_cpu,
            "client_ms_per_mutation": 1000 * client_cpu / max(mutations, 1),
            "client_peak_mb": usage.ru_maxrss / 1024,
            "server_cpu_s": server_cpu,
            "server_share": server_cpu / max(server_cpu + client_cpu, 1e-9),
        }
        if result["exit"] not in (0, 3):
            print((folder / "err.txt").read_text()[-3000:])
        if not stdout.strip():
            print("(the run printed no report)")
        if spy is not None and (folder / "profile.txt").exists():
            result["profile"] = top_frames(folder / "profile.txt")
        return result
    finally:
        sandbox.terminate()
        sandbox.wait()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--keep", type=Path, help="keep each case's folder here")
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS")
    args = parser.parse_args()
    for users in args.users:
        for latency in args.latency:
            r = first_load(users, latency, args.keep, args.profile)
            print(
                f"first load {r['users']:>9,} users, {r['latency_ms']:3.0f} ms latency: "
                f"{r['wall_s']:7.1f}s wall, {r['requests']:,} requests, "
                f"{r['mutations']:,} mutations, client CPU {r['client_cpu_s']:.1f}s "
                f"({r['client_ms_per_mutation']:.3f} ms/mutation), "
                f"peak RSS {r['client_peak_mb']:,.0f} MB, server CPU {r['server_cpu_s']:.1f}s "
                f"(server share {100 * r['server_share']:.0f}%), exit {r['exit']}",
                flush=True,
            )
            for line in r.get("profile", []):
                print("    " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
