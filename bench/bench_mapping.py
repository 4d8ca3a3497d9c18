"""Read + map + validate throughput on synthetic HR exports.

Usage: .venv/bin/python bench/bench_mapping.py [--rows 100000 1000000] [--keep DIR]

Each size runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own.
The export looks like samples/hr.csv (semicolon separated, Dutch headers, accented
names, repeated departments and dates) with a small share of bad rows, and is read
through the real CSV source adapter, mapped with mappings/example.yaml and merged.
Target on a 2-core machine: 1M rows in under 10 s and 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "Personeelsnummer;Voornaam;Tussenvoegsel;Achternaam;E-mailadres;Afdeling;Functie;"
    "Locatie;Leidinggevende;Rol;Taal;Datum in dienst;Datum uit dienst;Extern;Vaardigheden;Status"
)
FIRST = ["Anouk", "Daan", "Sanne", "Zoë", "Chloë", "René", "Noé", "Anaïs", "Bram", "Iris"]
TUSSEN = ["", "", "", "de", "van", "van der", "van den"]
LAST = ["Vries", "Jansen", "Berg", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Boer"]
DEPTS = ["HR", "Financiën", "ICT", "Verkoop", "Marketing", "Logistiek", "Klantenservice"]
TITLES = ["Adviseur", "Manager", "Medewerker", "Specialist", "Planner", "Ontwikkelaar"]
LOCATIONS = ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Groningen"]
ROLES = ["", "", "", "", "manager", "trainer", "planner, author"]
SKILLS = ["", "Python", "SQL, Excel", "Leadership", "Sales, Design", "Excel"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    starts = [f"{d:02d}-{m:02d}-{y}" for y in range(2000, 2025) for m in (1, 4, 9) for d in (1, 15)]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        lines = []
        for i in range(rows):
            ref = 100000 + i
            first, tussen, last = rng.choice(FIRST), rng.choice(TUSSEN), rng.choice(LAST)
            email = f"u{ref}.{last.lower()}@voorbeeld-bv.nl"
            if i % 5000 == 1:
                email = f"u{ref}@broken"  # invalid
            if i % 7000 == 2:
                ref -= 1  # duplicate of the previous row
            manager = str(100000 + rng.randrange(max(1, rows))) if i else ""
            end = "31-01-2020" if i % 1000 == 3 else ""
            start = "01-01-2099" if i % 2000 == 4 else rng.choice(starts)
            lines.append(
                f"{ref};{first};{tussen};{last};{email};{rng.choice(DEPTS)};"
                f"{rng.choice(TITLES)};{rng.choice(LOCATIONS)};{manager};{rng.choice(ROLES)};"
                f"NL;{start};{end};{rng.choice(('ja', 'nee'))};{rng.choice(SKILLS)};Actief\n"
            )
            if len(lines) >= 50000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def measure(csv_path: Path) -> dict[str, float]:
    """One run in this process: read with the CSV adapter, then map + merge."""
    from sync.config.sources import CsvSourceConfig
    from sync.core.mapping.mapper import check_columns, map_source
    from sync.core.mapping.merge import merge
    from sync.core.mapping.spec import load_mapping
    from sync.core.sources import open_source

    spec = load_mapping(ROOT / "mappings" / "example.yaml")
    config = CsvSourceConfig(
        name="bench", type="csv", path=str(csv_path), mapping=ROOT / "mappings/example.yaml"
    )
    t0 = time.perf_counter()
    data = open_source(config, base_dir=csv_path.parent).read()
    t1 = time.perf_counter()
    check_columns("bench", data.columns, spec, files=data.files)
    result = map_source("bench", data.frame, spec, today=date(2025, 6, 1))
    desired = merge([result])
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "rows": len(data.frame),
        "read_s": t1 - t0,
        "map_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_mb": peak,
        "users": len(desired.users),
        "rejections": len(desired.rejections),
        "memberships": len(desired.memberships),
        "extra_values": len(desired.extra_values),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="Keep the generated CSVs in this folder")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pluvo-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        path = folder / f"hr-{rows}.csv"
        if not path.exists():
            started = time.perf_counter()
            generate(path, rows)
            print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f}s ({path})")
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{rows:>9,} rows: read {stats['read_s']:.2f}s + map/validate {stats['map_s']:.2f}s"
            f" = {stats['total_s']:.2f}s, {stats['rows'] / stats['total_s']:,.0f} rows/s,"
            f" peak RSS {stats['peak_mb']:,.0f} MB"
            f" ({stats['users']:,} users, {stats['rejections']:,} rejections,"
            f" {stats['memberships']:,} memberships, {stats['extra_values']:,} values)"
        )
        if not args.keep:
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
