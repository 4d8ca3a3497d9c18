"""A no-change `plan` beside its pandas floor, both as whole processes, side by side.

Usage:
  .venv/bin/python bench/bench_plan_floor.py [--users 30000 100000 1000000] [--repeat 5]
                                             [--keep DIR]

For each size: bench_mapping's export and a store already holding what it maps to
(bench_engine's `plan` setup, reused and kept under --keep), a sandbox in its own
process standing in for Pluvo (the plan fetches a token and reads the extra
categories). Then, alternating, `python -m sync plan -c config.yaml` and the floor,
bench/plan_floor.py (read with pyarrow, strip and normalise the mapped columns, one
vectorised hash per row, read the stored hashes from SQLite, merge on ref): each a
fresh interpreter, so start-up and imports count for both. One untimed warm-up of
each, then the medians of --repeat timings, the ratio and each one's peak RSS.
Target: ratio <= 1.2 at every size.

Both run from bytecode: the package's modules are compiled once before the timings, as
installing it compiles them (pip does, for every wheel), and as the floor's libraries
are. Without this, under PYTHONDONTWRITEBYTECODE the plan alone would compile each of
its own modules from source at every start (about 0.1 s), which no deployment does.

The floor runs on the project's interpreter with pyarrow from requirements/bench.txt,
installed on first use into .venv/bench-floor/ and put on the floor's PYTHONPATH only:
in the project's venv, pandas 3 would read strings as pyarrow strings in the engine too.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import prepare_plan, start_sandbox, timed  # noqa: E402

FLOOR = ROOT / "bench" / "plan_floor.py"
FLOOR_DEPS = ROOT / ".venv" / "bench-floor"
MAPPING = ROOT / "mappings" / "example.yaml"


def floor_env() -> dict[str, str]:
    """pyarrow for the floor alone, installed from the hashed bench lock on first use."""
    stamp = FLOOR_DEPS / ".installed"
    lock = ROOT / "requirements" / "bench.txt"
    if not stamp.exists() or lock.stat().st_mtime > stamp.stat().st_mtime:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps",
             "--upgrade", "--target", str(FLOOR_DEPS), "-r", str(lock)],
            check=True, env={**os.environ, "PIP_CONSTRAINT": ""},
        )  # fmt: skip
        stamp.touch()
    return {"PYTHONPATH": str(FLOOR_DEPS)}


def _floor(folder: Path) -> list[str]:
    return [sys.executable, str(FLOOR), str(folder / "hr.csv"), str(MAPPING),
            str(folder / "floor.db")]  # fmt: skip


def bench_size(users: int, keep: Path, url: str, repeat: int, env: dict[str, str]) -> None:
    folder, config = prepare_plan(users, keep, url)
    if not (folder / "floor.db").exists():
        write = [*_floor(folder), "--write"]
        subprocess.run(write, check=True, env={**os.environ, **env}, capture_output=True)
    plan_cmd = [sys.executable, "-m", "sync", "plan", "-c", str(config)]
    plans: list[float] = []
    floors: list[float] = []
    plan_rss = floor_rss = 0.0
    for attempt in range(repeat + 1):
        # Alternating, so drift in the machine's load falls on both alike.
        elapsed, peak, result = timed(plan_cmd, folder)
        ops = re.search(r"Plan \(dry run, nothing sent\): (\d+) operation", result.stdout)
        if result.returncode not in (0, 3) or ops is None or ops.group(1) != "0":
            print(result.stdout[-1500:], result.stderr[-1500:], sep="\n")
            raise SystemExit(f"plan at {users:,}: exit {result.returncode}, not a no-change plan")
        if attempt:
            plans.append(elapsed)
            plan_rss = max(plan_rss, peak)
        elapsed, peak, result = timed(_floor(folder), folder, env)
        if result.returncode != 0 or not result.stdout.rstrip().endswith("differences 0"):
            print(result.stdout[-1500:], result.stderr[-1500:], sep="\n")
            raise SystemExit(f"floor at {users:,}: exit {result.returncode}, not 0 differences")
        if attempt:
            floors.append(elapsed)
            floor_rss = max(floor_rss, peak)
    plan, floor = statistics.median(plans), statistics.median(floors)
    print(
        f"{users:>9,} users: plan {plan:6.2f}s (peak RSS {plan_rss:,.0f} MB)  "
        f"floor {floor:6.2f}s (peak RSS {floor_rss:,.0f} MB)  ratio {plan / floor:4.2f}  "
        f"[medians of {repeat}; plan {min(plans):.2f}-{max(plans):.2f}s, "
        f"floor {min(floors):.2f}-{max(floors):.2f}s]",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[30_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the exports and stores here")
    args = parser.parse_args()
    env = floor_env()
    compileall.compile_dir(ROOT / "sync", quiet=1)
    keep = args.keep or Path(tempfile.mkdtemp(prefix="pluvo-floor-"))
    sandbox, url = start_sandbox(0.0)
    try:
        for users in args.users:
            bench_size(users, keep, url, args.repeat, env)
    finally:
        sandbox.terminate()
        sandbox.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
