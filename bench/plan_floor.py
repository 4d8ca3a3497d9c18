"""The floor for a no-change `plan`: the least pandas program that can tell "nothing changed".

Usage (bench/bench_plan_floor.py runs it; pyarrow from requirements/bench.txt):
  python bench/plan_floor.py EXPORT.csv MAPPING.yaml HASHES.db [--write]

It reads the export with pyarrow (every column as text), strips the columns the mapping
uses and normalises the ones the engine normalises (ref upper-cased, email lower-cased,
the name template joined and its spaces collapsed), computes one vectorised hash per row,
reads the stored (ref, hash) pairs from SQLite, merges them on ref and counts the refs
that are new, gone or changed. `--write` stores this very program's hashes (untimed
setup), so a run on the same export finds 0 differences.

What it leaves out is on purpose: the engine also validates (emails, duplicate refs,
roles, dates), filters, builds groups, memberships and extra values, and guards. Those
are the plan's own costs on top of this floor, which is the bar the issue sets: read,
normalise, hash, read the store, merge.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml

_PLACEHOLDER = re.compile(r"\{([^{}|]+)(?:\|[^{}]*)?\}")


def used_columns(spec: Any) -> list[str]:
    """Every source column the mapping names: `column:` keys and template placeholders."""
    found: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "column" and isinstance(value, str):
                    found[value] = None
                elif key in ("template", "ref", "name") and isinstance(value, str):
                    for name in _PLACEHOLDER.findall(value):
                        found[name.strip()] = None
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(spec)
    users = spec.get("users", {})
    email = users.get("email")
    if isinstance(email, str):
        found[email] = None
    return list(found)


def _column_of(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("column"), str):
        return str(entry["column"])
    return None


def normalised(table: pa.Table, spec: Any) -> pd.DataFrame:
    """The mapped columns stripped (in pyarrow, vectorised), the engine's normalisations."""
    users = spec.get("users", {})
    ref_column = _column_of(users.get("ref"))
    email_column = _column_of(users.get("email"))
    columns: dict[str, pa.ChunkedArray] = {}
    for name in used_columns(spec):
        values = pc.utf8_trim_whitespace(table.column(name))
        if name == ref_column:
            values = pc.utf8_upper(values)
        elif name == email_column:
            values = pc.utf8_lower(values)
        columns[name] = values
    name_spec = users.get("name")
    template = name_spec.get("template") if isinstance(name_spec, dict) else None
    if template:
        parts = [columns[p.strip()] for p in _PLACEHOLDER.findall(template)]
        joined = pc.binary_join_element_wise(*parts, " ")
        columns["name"] = pc.utf8_trim_whitespace(pc.replace_substring_regex(joined, " +", " "))
    frame = pa.table(columns).to_pandas()
    if ref_column is None:
        raise SystemExit("the mapping has no users.ref column")
    return frame.rename(columns={ref_column: "ref"})


def row_hashes(frame: pd.DataFrame) -> pd.DataFrame:
    """One hash per row over every normalised column but the ref, keyed by ref."""
    content = frame.drop(columns=["ref"])
    hashed = pd.util.hash_pandas_object(content, index=False).to_numpy().view(np.int64)
    return pd.DataFrame({"ref": frame["ref"].to_numpy(), "hash": hashed})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("mapping", type=Path)
    parser.add_argument("hashes", type=Path, help="SQLite file of (ref, hash)")
    parser.add_argument("--write", action="store_true", help="store the hashes (setup)")
    args = parser.parse_args()
    spec = yaml.safe_load(args.mapping.read_text(encoding="utf-8"))
    with args.export.open(encoding="utf-8") as export:
        header = export.readline().rstrip("\r\n").split(";")
    # Every column as text, as the engine reads them: no type inference to pay for.
    table = pacsv.read_csv(
        args.export,
        parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False
        ),
    )
    ours = row_hashes(normalised(table, spec))
    if args.write:
        args.hashes.unlink(missing_ok=True)
        with sqlite3.connect(args.hashes) as db:
            db.execute("CREATE TABLE floor_hashes (ref TEXT PRIMARY KEY, hash INTEGER NOT NULL)")
            # A duplicated ref keeps its first row, as a store holds one row per ref.
            unique = ours.drop_duplicates("ref")
            db.executemany(
                "INSERT INTO floor_hashes VALUES (?, ?)",
                zip(unique["ref"].tolist(), unique["hash"].tolist(), strict=True),
            )
        print(f"wrote {len(unique):,} hashes")
        return 0
    with sqlite3.connect(args.hashes) as db:
        stored = pd.DataFrame(
            db.execute("SELECT ref, hash FROM floor_hashes").fetchall(), columns=["ref", "hash"]
        )
    ours = ours.drop_duplicates("ref")
    merged = ours.merge(stored, on="ref", how="outer", suffixes=("", "_stored"), indicator=True)
    new = int((merged["_merge"] == "left_only").sum())
    gone = int((merged["_merge"] == "right_only").sum())
    both = merged["_merge"] == "both"
    changed = int((merged.loc[both, "hash"] != merged.loc[both, "hash_stored"]).sum())
    print(
        f"floor: {len(ours):,} rows, {len(stored):,} stored: {new} new, {gone} gone, "
        f"{changed} changed; differences {new + gone + changed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
