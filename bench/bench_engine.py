"""Engine benchmarks: `plan` with nothing to do, and `run` of changed users.

Usage:
  .venv/bin/python bench/bench_engine.py plan [--users 100000 1000000] [--keep DIR]
  .venv/bin/python bench/bench_engine.py run [--users 10000] [--latency 0.02] [--naive 500]

plan: a synthetic HR export (bench_mapping's generator) and a state store that already
holds exactly what that export maps to (written in bulk from the mapped state, as if a
run had applied it), then `pluvo-sync plan` as a subprocess: wall time and peak RSS.
Targets: 100k users <= 3 s, 1M users <= 15 s and <= 2 GB.

run: a sandbox in its own process with the given latency; an initial sync of N users
(not timed), then every user changes (name and job title), and `pluvo-sync run` is
timed with the sandbox's request counters. A naive client (one mutation per request,
sequential, no batching) applies the same kind of change to a sample of users on the
same sandbox; its per-user time is scaled to N. Targets: >= 20x faster than naive,
<= 0.2 requests per changed user.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_mapping import HEADER, generate  # noqa: E402

SECRET_ENV = "PLUVO_BENCH_SECRET"


def write_config(folder: Path, url: str, csv_name: str) -> Path:
    config = folder / "config.yaml"
    config.write_text(
        f"""pluvo:
  url: {url}
  client_id: sandbox-client
  client_secret: ${{{SECRET_ENV}}}
  batch_size: 25
  concurrency: 8
sources:
  - {{name: hr, type: csv, path: {csv_name}, mapping: {ROOT / "mappings" / "example.yaml"}}}
state:
  url: sqlite:///state.db
leavers: {{grace_runs: 0}}
safety:
  max_changes: {{share: 1.0}}
report:
  dir: reports
""",
        encoding="utf-8",
    )
    return config


def seed_state(config_file: Path) -> dict[str, int]:
    """Write the mapped desired state into the store as if a run had applied it."""
    import uuid

    import pandas as pd
    from sqlalchemy import insert

    from sync.config import load_config
    from sync.core.load import load_desired
    from sync.hashing import extras_hash, fields_hash, groups_hash
    from sync.model import USER_FIELDS
    from sync.state.models import ExtraValueRow, GroupRow, ManagerRow, MembershipRow, UserRow
    from sync.state.store import StateStore, upgrade

    config = load_config(config_file)
    desired = load_desired(config, today=date.today())
    store = StateStore(config.state_url())
    upgrade(store.engine)
    now = datetime.now(UTC)
    users = desired.users
    frame = pd.DataFrame(
        {
            "ref": users.index,
            **{f: users[f].to_numpy() for f in USER_FIELDS},
            "pluvo_id": [str(uuid.uuid4()) for _ in range(len(users))],
            "fields_hash": fields_hash(users).to_numpy(),
            "extras_hash": extras_hash(desired.extra_values)
            .reindex(users.index, fill_value=0)
            .to_numpy(),
            "groups_hash": groups_hash(desired.memberships)
            .reindex(users.index, fill_value=0)
            .to_numpy(),
        }
    )
    extra = {
        "owned": "created",
        "archived": False,
        "left_action": None,
        "first_seen": now,
        "last_seen": now,
        "missing_since": None,
        "missing_runs": 0,
    }
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (UserRow, [{**r, **extra} for r in frame.to_dict(orient="records")]),
        (
            GroupRow,
            [
                {"ref": ref, "name": name, "pluvo_id": str(uuid.uuid4()), "owned": "created"}
                for ref, name in desired.groups["name"].items()
            ],
        ),
        (MembershipRow, desired.memberships[["group_ref", "user_ref"]].to_dict("records")),
        (ManagerRow, desired.managers[["group_ref", "user_ref"]].to_dict("records")),
        (
            ExtraValueRow,
            desired.extra_values[["user_ref", "category_ref", "category_type", "value"]].to_dict(
                "records"
            ),
        ),
    ]
    counts = {}
    with store.engine.begin() as conn:
        for table, rows in tables:
            for start in range(0, len(rows), 50_000):
                conn.execute(insert(table), rows[start : start + 50_000])
            counts[table.__tablename__] = len(rows)
    store.close()
    return counts


def seed(folder: Path, users: int) -> None:
    started = time.perf_counter()
    generate(folder / "hr.csv", users)
    counts = seed_state(folder / "config.yaml")
    print(f"setup {users:,} users: {time.perf_counter() - started:.1f}s {counts}", flush=True)


def timed(
    cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall time, the command's own peak RSS (MB) and its output.

    The peak comes from wait4 on that one child: RUSAGE_CHILDREN would be the largest
    of every child this bench has waited for so far.
    """
    env = {**os.environ, SECRET_ENV: "sandbox-secret", **(extra_env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(cmd, process.returncode, out.read(), err.read())
    return elapsed, usage.ru_maxrss / 1024, result


def bench_plan(sizes: list[int], keep: Path | None) -> None:
    # plan reads the organisation's extra categories once (read-only), so a sandbox
    # holding the example mapping's categories stands in for Pluvo.
    sandbox, url = start_sandbox(0.0)
    try:
        for users in sizes:
            _bench_plan_once(users, keep, url)
    finally:
        sandbox.terminate()
        sandbox.wait()


def prepare_plan(users: int, keep: Path | None, url: str) -> tuple[Path, Path]:
    """A folder with an export of `users` rows and a store already holding what it maps
    to (kept and reused under `keep`), and a config for the sandbox at `url`."""
    folder = (keep or Path(tempfile.mkdtemp(prefix="pluvo-plan-"))) / f"plan-{users}"
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, url, "hr.csv")
    if not (folder / "state.db").exists():
        # In a process of its own: a child forked from a bench process holding the
        # seeded state would report that process's memory as its own peak RSS.
        env = {**os.environ, SECRET_ENV: "sandbox-secret"}
        seed = [sys.executable, __file__, "seed", str(folder), "--users", str(users)]
        subprocess.run(seed, check=True, env=env)
    return folder, config


def _bench_plan_once(users: int, keep: Path | None, url: str) -> None:
    folder, config = prepare_plan(users, keep, url)
    # A fresh interpreter per measurement: its peak RSS is the plan's own.
    elapsed, peak, result = timed([sys.executable, "-m", "sync", "plan", "-c", str(config)], folder)
    ops = re.search(r"Plan \(dry run, nothing sent\): (\d+) operation", result.stdout)
    print(
        f"plan, {users:>9,} users, nothing changed: {elapsed:6.2f}s wall, "
        f"peak RSS {peak:,.0f} MB, exit {result.returncode}, "
        f"{ops.group(1) if ops else '?'} operation(s)"
    )
    if result.returncode not in (0, 3):
        print(result.stderr[-2000:])


def start_sandbox(latency: float) -> tuple[subprocess.Popen[str], str]:
    # Its log goes to a file: a pipe nobody drains would block the sandbox once full.
    log = Path(tempfile.mkstemp(prefix="pluvo-sandbox-", suffix=".log")[1])
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "sync", "sandbox", "--port", "0", "--latency", str(latency)],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+/)", log.read_text())
        if match:
            return process, match.group(1)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("sandbox did not start")


async def naive(url: str, refs: list[str]) -> float:
    """One mutation per request, one request at a time: the hand-written script."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        token_answer = await session.post(
            url + "oauth/token/",
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
                "scope": "users.write extra_categories.write",
            },
        )
        token = (await token_answer.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        for ref in refs:
            for query in (
                f'mutation {{ updateOrCreateUser(ref: "{ref}", sendInvite: false, '
                f'user: {{name: "Naive {ref}"}}) {{ created }} }}',
                f'mutation {{ updateExtraCategoryValues(contentType: USER, modelRef: "{ref}", '
                'values: [{categoryRef: "job_title", stringValue: "Naive"}]) '
                "{ extraCategoryValues { __typename } } }",
            ):
                async with session.post(
                    url + "graphql/", json={"query": query}, headers=headers
                ) as answer:
                    body = await answer.json()
                    assert not body.get("errors"), body
        return time.perf_counter() - started


def counters(url: str) -> dict[str, Any]:
    from sync.sandbox.control import SandboxControl

    return SandboxControl(url).counters()


def bench_run(users: int, latency: float, naive_sample: int) -> None:
    from sync.sandbox.control import SandboxControl

    folder = Path(tempfile.mkdtemp(prefix="pluvo-run-"))
    sandbox, url = start_sandbox(0.0)
    try:
        config = write_config(folder, url, "hr.csv")
        generate(folder / "hr.csv", users)
        env = {**os.environ, SECRET_ENV: "sandbox-secret"}
        subprocess.run(
            [sys.executable, "-m", "sync", "db", "upgrade", "-c", str(config)],
            check=True, cwd=folder, env=env, capture_output=True,
        )  # fmt: skip
        elapsed, _, result = timed([sys.executable, "-m", "sync", "run", "-c", str(config)], folder)
        print(f"initial load of {users:,} users: {elapsed:.1f}s (exit {result.returncode})")
        # Every user changes: name and job title (Achternaam and Functie columns).
        lines = (folder / "hr.csv").read_text(encoding="utf-8").splitlines()
        header = HEADER.split(";")
        last, title = header.index("Achternaam"), header.index("Functie")
        changed = [lines[0]]
        for line in lines[1:]:
            cells = line.split(";")
            cells[last] += "-Gewijzigd"
            cells[title] = "Teamleider"
            changed.append(";".join(cells))
        (folder / "hr.csv").write_text("\n".join(changed) + "\n", encoding="utf-8")
        control = SandboxControl(url)
        control.set_faults(latency=latency)
        control.reset_counters()
        elapsed, peak, result = timed(
            [sys.executable, "-m", "sync", "run", "-c", str(config)], folder
        )
        seen = counters(url)
        changed_users = int(
            re.search(r"update_user\s+(\d+)", result.stdout).group(1)  # type: ignore[union-attr]
        )
        requests = seen["graphql_requests"] + seen["token_requests"]
        print(
            f"run, {changed_users:,} changed users, {latency * 1000:.0f} ms latency: "
            f"{elapsed:.2f}s wall, {requests} requests "
            f"({requests / changed_users:.3f} per changed user), {seen['mutations_total']} "
            f"mutations, peak RSS {peak:,.0f} MB, exit {result.returncode}"
        )
        # Users Pluvo has (rows the mapping rejected were never created).
        sample = [u["ref"] for u in control.state()["users"][:naive_sample]]
        naive_time = asyncio.run(naive(url, sample))
        scaled = naive_time / len(sample) * changed_users
        print(
            f"naive client (1 mutation/request, sequential): {len(sample)} users in "
            f"{naive_time:.2f}s -> {scaled:.1f}s for {changed_users:,} users; "
            f"speed-up {scaled / elapsed:.1f}x"
        )
    finally:
        sandbox.terminate()
        sandbox.wait()


def main() -> int:
    os.environ.setdefault(SECRET_ENV, "sandbox-secret")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    plan = sub.add_parser("plan")
    plan.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    plan.add_argument("--keep", type=Path)
    seeding = sub.add_parser("seed", help="(used by plan) write one plan folder's data")
    seeding.add_argument("folder", type=Path)
    seeding.add_argument("--users", type=int, required=True)
    run = sub.add_parser("run")
    run.add_argument("--users", type=int, default=10_000)
    run.add_argument("--latency", type=float, default=0.02)
    run.add_argument("--naive", type=int, default=500, help="users the naive client updates")
    args = parser.parse_args()
    if args.what == "plan":
        bench_plan(args.users, args.keep)
    elif args.what == "seed":
        seed(args.folder, args.users)
    else:
        bench_run(args.users, args.latency, args.naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
