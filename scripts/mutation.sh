#!/usr/bin/env bash
# Mutation testing of the code that decides and records what the engine does, against
# the fast test tier (tests/unit + tests/integration). Prints the score and every mutant
# the tests did not kill; exits 1 when the score is below MUTATION_THRESHOLD.
#
# What is mutated: TARGETS below, one entry per line, either "path" (every function in
# the file) or "path:func,func" (only those top-level functions or methods). Paths may
# be globs; an entry that matches no file is skipped, so a module that does not exist
# yet, or has moved, costs nothing.
TARGETS=(
  "sync/core/diff.py"
  "sync/core/guards.py"
  "sync/core/hold.py"
  "sync/core/release.py:released_part"
  "sync/state/held.py"
  "sync/core/executor.py"
  "sync/core/adopt.py"
  "sync/state/write.py"
  "sync/state/journal.py"
  "sync/commands/reconcile/drift.py"
  # reconcile's drift before it became a package (for MUTATION_REV of older commits)
  "sync/commands/reconcile.py:compute_drift,_vanished"
)
#
# Settings (environment):
#   MUTATION_ONLY       entries to use instead of TARGETS, one per line or space, same
#                       form (e.g. "sync/core/diff.py"), to look at one module
#   MUTATION_THRESHOLD  lowest acceptable score in percent (default 90)
#   MUTATION_JOBS       mutants tested at once (default 2, the machine's cores)
#   MUTATION_SAMPLE     test this many mutants, drawn at random from each file in
#                       proportion to its mutants (default 300; 0: all of them). The full
#                       set is ~3,000 mutants, and a survivor costs a whole run of the
#                       tests that reach its function (up to ~25 s), so all of them take
#                       over an hour on 2 cores. At a score near 77%, 300 took 9 minutes
#                       on a quiet 2-core machine (14 CPU-minutes) and 400 took 31 while
#                       it was shared with other work; 300 give the score to about ±4
#                       points (the report prints the margin). The higher the score, the
#                       fewer survivors and the faster the run.
#   MUTATION_SEED       seed of that draw (default 1, so a sample is the same each run
#                       while the code is the same)
#   MUTATION_SHARD      K/N: test only shard K of N (1-based; every Nth mutant in name
#                       order), to spread the full set over several runs (with
#                       MUTATION_SAMPLE=0)
#   MUTATION_REV        test this committed revision (e.g. HEAD) in a temporary export
#                       instead of the working tree; for a tree others are editing
#   MUTATION_REPORT     where the full report goes (default mutants/mutation-report.txt)
#   MUTATION_VERBOSE=1  show mutmut's own output as well as writing it to mutants/mutmut.log
#
# How: mutmut 3 (settings under [tool.mutmut] in pyproject.toml) copies sync/ and tests/
# to mutants/, compiles every mutant of the target functions into that copy behind a
# switch, runs the fast tier once to record which tests reach which function, then runs
# each mutant against only those tests, with -x. mutants/ is made anew on every run.
# Afterwards, from the directory the run used, `.venv/bin/mutmut show NAME` prints one
# mutant's diff and `.venv/bin/mutmut browse` explores them all.
#
# Survivors that cannot be killed (equivalent mutants) are listed in
# tests/mutation-survivors.md; the report marks them, and gives the score without them.
# The rest is one block, read whole before it runs: editing this file (TARGETS, say)
# while a run is under way cannot derail that run.
{
source "$(dirname "$0")/_venv.sh"

THRESHOLD="${MUTATION_THRESHOLD:-90}"
JOBS="${MUTATION_JOBS:-2}"
WORKDIR="$ROOT"
if [ -n "${MUTATION_REV:-}" ]; then
  WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/pluvo-sync-mutation.XXXXXX")"
  git -C "$ROOT" archive "$MUTATION_REV" | tar -x -C "$WORKDIR"
  if ! grep -q '^\[tool\.mutmut\]' "$WORKDIR/pyproject.toml"; then
    # a revision older than these settings: borrow them from the working tree
    { echo; sed -n '/^\[tool\.mutmut\]/,/^\[/{/^\[tool\.mutmut\]/p;/^\[/!p}' "$ROOT/pyproject.toml"; } \
      >>"$WORKDIR/pyproject.toml"
  fi
  echo "testing $MUTATION_REV ($(git -C "$ROOT" rev-parse --short "$MUTATION_REV")) in $WORKDIR"
fi
REPORT="${MUTATION_REPORT:-$WORKDIR/mutants/mutation-report.txt}"
case "$REPORT" in /*) ;; *) REPORT="$ROOT/$REPORT" ;; esac

cd "$WORKDIR"
rm -rf mutants
mkdir -p mutants

if [ -n "${MUTATION_ONLY:-}" ]; then
  set -f  # split on blanks, but leave globs to the driver
  export MUTATION_TARGETS="$(printf '%s\n' $MUTATION_ONLY)"
  set +f
else
  export MUTATION_TARGETS="$(printf '%s\n' "${TARGETS[@]}")"
fi
export MUTATION_THRESHOLD="$THRESHOLD" MUTATION_JOBS="$JOBS" MUTATION_REPORT="$REPORT"
export MUTATION_SURVIVORS_FILE="$ROOT/tests/mutation-survivors.md"

read -r -d '' DRIVER <<'PY' || true
import ast
import fnmatch
import glob
import math
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import mutmut.__main__ as mm
from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.format_utils import get_mutant_name, make_mutant_key, parse_mutant_key

phase = sys.argv[1]
started = float(os.environ.get("MUTATION_STARTED", time.time()))

# TARGETS -> {file: [name globs]}
targets: dict[str, list[str]] = {}
for line in os.environ["MUTATION_TARGETS"].splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    pattern, _, funcs = line.partition(":")
    for path in sorted(glob.glob(pattern)):
        globs = targets.setdefault(path, [])
        if not funcs:
            globs.append(get_mutant_name(Path(path), "*"))
            continue
        for func in funcs.split(","):
            func = func.strip()
            globs.append(get_mutant_name(Path(path), make_mutant_key(func)) + "__mutmut_*")
            globs.append(get_mutant_name(Path(path), make_mutant_key(func, "*")) + "__mutmut_*")


def selected(path: str, keys) -> list[str]:
    return [k for k in keys if any(fnmatch.fnmatchcase(k, g) for g in targets[path])]


def mutants_by_file() -> dict[str, SourceFileMutationData]:
    out = {}
    for path in targets:
        data = SourceFileMutationData(path=path)
        data.load()
        out[path] = data
    return out


cfg = config()
cfg.only_mutate = list(targets)
# Tests read files from the repository root (mappings, samples, migrations, lint
# settings): copy every top-level entry git knows about, beside sync/ and tests/.
listing = os.popen("git ls-files --cached --others --exclude-standard 2>/dev/null").read().split()
top = {name.split("/")[0] for name in listing} or {p.name for p in Path(".").iterdir()}
skip = {"sync", "tests", "mutants", ".git", ".venv"}
cfg.also_copy += [Path(name) for name in sorted(top - skip) if Path(name).exists()]

if phase == "generate":
    if not targets:
        sys.exit("no file matches TARGETS")
    # mutmut's own generation step, without running anything yet
    mm.copy_src_dir()
    mm.copy_also_copy_files()
    mm.setup_source_paths()
    mm.create_mutants(int(os.environ["MUTATION_JOBS"]))
    by_file = {path: sorted(selected(path, data.exit_code_by_key)) for path, data in mutants_by_file().items()}
    population = sum(len(keys) for keys in by_file.values())
    shard = os.environ.get("MUTATION_SHARD", "")
    if shard:
        k, n = (int(x) for x in shard.split("/"))
        by_file = {path: keys[k - 1 :: n] for path, keys in by_file.items()}
        population = sum(len(keys) for keys in by_file.values())
        print(f"shard {k}/{n}: {population} mutants", file=sys.stderr)
    sample = int(os.environ.get("MUTATION_SAMPLE", "300") or 0)
    if 0 < sample < population:
        # stratified by file, so every module keeps its share of the sample
        seed = int(os.environ.get("MUTATION_SEED") or 1)
        rng = random.Random(seed)
        by_file = {path: rng.sample(keys, round(sample * len(keys) / population)) for path, keys in by_file.items()}
        print(f"sample of {sum(map(len, by_file.values()))} of {population} mutants (seed {seed})", file=sys.stderr)
    names = sorted(k for keys in by_file.values() for k in keys)
    Path("mutants/selected.txt").write_text("\n".join(names) + "\n")
    Path("mutants/population.txt").write_text(f"{population}\n")
    print(f"{len(names)} mutants from {len(targets)} files", file=sys.stderr)
    sys.exit(0)

if phase == "run":
    names = Path("mutants/selected.txt").read_text().split()
    if not names:  # mutmut would take an empty list to mean every mutant
        sys.exit(0)
    mm.cli(["run", "--max-children", os.environ["MUTATION_JOBS"], *names], standalone_mode=False)
    sys.exit(0)

# phase == "report"
equivalent: set[str] = set()
survivors_file = Path(os.environ["MUTATION_SURVIVORS_FILE"])
if survivors_file.exists():
    equivalent = set(re.findall(r"`([\w.]+__mutmut_\d+)`", survivors_file.read_text()))

chosen = set(Path("mutants/selected.txt").read_text().split())
DETECTED = {"killed", "timeout", "caught by type check"}


def first_lines(path: str) -> dict[str, int]:
    """Mangled function key -> line where the function (with decorators) starts."""
    tree = ast.parse(Path(path).read_text())
    lines = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines[make_mutant_key(node.name)] = min([node.lineno] + [d.lineno for d in node.decorator_list])
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    start = min([item.lineno] + [d.lineno for d in item.decorator_list])
                    lines[make_mutant_key(item.name, node.name)] = start
    return lines


def shown(func: str) -> str:
    """x_name -> name, xǁClassǁname -> Class.name"""
    name, cls = parse_mutant_key(func)
    return f"{cls}.{name}" if cls else name


def changed_lines(diff: str, start: int) -> tuple[int, list[str]]:
    """Source line of the first change, and the changed lines themselves."""
    line, first, changes = start, None, []
    for text in diff.splitlines()[2:]:
        hunk = re.match(r"@@ -(\d+)", text)
        if hunk:
            line = start + int(hunk.group(1)) - 1
        elif text.startswith("-"):
            first = line if first is None else first
            changes.append(text)
            line += 1
        elif text.startswith("+"):
            first = line if first is None else first
            changes.append(text)
        else:
            line += 1
    return (first or start), changes


rows = []
report: list[str] = []
survivors: list[str] = []
uncovered: dict[tuple[str, str], int] = Counter()
total = Counter()
for path, data in mutants_by_file().items():
    keys = [k for k in selected(path, data.exit_code_by_key) if k in chosen]
    if not keys:
        continue
    starts = first_lines(path)
    counts = Counter(status_by_exit_code[data.exit_code_by_key[k]] for k in keys)
    total.update(counts)
    detected = sum(counts[s] for s in DETECTED)
    rows.append((path, len(keys), detected, counts))
    for key in sorted(keys, key=lambda k: (k.partition("__mutmut_")[0], int(k.rpartition("_")[2]))):
        status = status_by_exit_code[data.exit_code_by_key[key]]
        if status in DETECTED:
            continue
        func = key.partition("__mutmut_")[0].rpartition(".")[2]
        if status == "no tests":
            uncovered[(path, func)] += 1
            continue
        start = starts.get(func, 1)
        try:
            line, changes = changed_lines(get_diff_for_mutant(key, path=path), start)
        except Exception as error:  # the report must not die on one odd mutant
            line, changes = start, [f"(no diff: {error})"]
        mark = " [listed as equivalent]" if key in equivalent else ""
        survivors.append(f"{path}:{line}  {key}  {status}{mark}")
        survivors.extend(f"    {c}" for c in changes)

all_count = sum(r[1] for r in rows)
all_detected = sum(total[s] for s in DETECTED)
score = 100.0 * all_detected / all_count if all_count else 0.0
listed = sum(1 for s in survivors if "[listed as equivalent]" in s)

report.append("score per file (killed includes timeouts):")
report.append(f"  {'file':40} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'no test':>7} {'other':>5} {'score':>7}")
for path, n, detected, counts in rows:
    other = n - detected - counts["survived"] - counts["no tests"]
    report.append(
        f"  {path:40} {n:7} {counts['killed']:7} {counts['timeout']:7} {counts['survived']:8} "
        f"{counts['no tests']:7} {other:5} {100.0 * detected / n:6.1f}%"
    )
report.append("")
if uncovered:
    report.append("functions no fast-tier test reaches (their mutants count as not killed):")
    for (path, func), n in sorted(uncovered.items()):
        report.append(f"  {path}:{first_lines(path).get(func, 1)}  {shown(func)}  ({n} mutants)")
    report.append("")
if survivors:
    report.append("mutants the tests did not kill (file:line, mutant, status, change):")
    report.extend(f"  {s}" for s in survivors)
    report.append("")
elapsed = time.time() - started
summary = (
    f"mutation score: {all_detected}/{all_count} killed = {score:.1f}% "
    f"(threshold {os.environ['MUTATION_THRESHOLD']}%)"
)
population = int(Path("mutants/population.txt").read_text())
if 1 < all_count < population:
    p = all_detected / all_count
    margin = 196.0 * math.sqrt(p * (1 - p) / all_count * (population - all_count) / (population - 1))
    summary += f"; a sample of {all_count} of {population} mutants, so ±{margin:.1f} points (95%)"
if listed:
    summary += f"; {listed} listed as equivalent, {100.0 * all_detected / (all_count - listed):.1f}% without them"
report.append(
    f"{all_count} mutants: {total['killed']} killed, {total['timeout']} timeout, {total['survived']} survived, "
    f"{total['no tests']} no test, {all_count - all_detected - total['survived'] - total['no tests']} other; "
    f"{elapsed / 60:.1f} min"
)
report.append(summary)
text = "\n".join(report) + "\n"
Path(os.environ["MUTATION_REPORT"]).parent.mkdir(parents=True, exist_ok=True)
Path(os.environ["MUTATION_REPORT"]).write_text(text)
print(text, end="")
print(f"full report: {os.environ['MUTATION_REPORT']}")
sys.exit(0 if score >= float(os.environ["MUTATION_THRESHOLD"]) else 1)
PY

export MUTATION_STARTED="$(date +%s)"
python -c "$DRIVER" generate >mutants/generate.log
run_mutmut() {
  if [ "${MUTATION_VERBOSE:-0}" = 1 ]; then
    python -c "$DRIVER" run 2>&1 | tee mutants/mutmut.log
  else
    python -c "$DRIVER" run >mutants/mutmut.log 2>&1
  fi
}
echo "running mutmut (log: $WORKDIR/mutants/mutmut.log)"
if ! run_mutmut; then
  tr '\r' '\n' <mutants/mutmut.log | grep -v '^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]' | tail -n 25 >&2
  # A test that failed before any mutant ran (the recording run or the clean run) makes
  # mutmut stop. Timing-sensitive tests can fail once under the recording's overhead on a
  # busy machine, so that stage gets one more try; a failure after it is final.
  if tr '\r' '\n' <mutants/mutmut.log | grep -q "^Running mutation testing"; then
    echo "mutmut failed" >&2; exit 2
  fi
  echo "mutmut stopped before testing any mutant (above); trying once more" >&2
  mv mutants/mutmut.log mutants/mutmut-first-try.log
  run_mutmut || {
    tr '\r' '\n' <mutants/mutmut.log | grep -v '^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]' | tail -n 25 >&2
    echo "mutmut failed" >&2; exit 2; }
fi
python -c "$DRIVER" report
exit
}
