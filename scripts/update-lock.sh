#!/usr/bin/env bash
# Refresh the dev/test/CI lock, requirements/dev.txt, from pyproject.toml's ranges (the
# project's dependencies, its dev and postgres extras) and requirements/tools.in (the
# build tools), with hashes, for every platform and Python 3.11+ at once.
#
#   bash scripts/update-lock.sh                    # every package to its newest allowed
#   bash scripts/update-lock.sh --upgrade-package cryptography   # just that one
#   bash scripts/update-lock.sh --keep             # only what a changed range forces
#
# Run it after changing a range in pyproject.toml, and on purpose (say monthly, or for
# a security release) to move the lock forward; commit the result with the code it
# needs. uv does the resolving; it is installed, at a pinned version, into a venv of its
# own under .venv-tools/ (installing the lock needs only pip).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.venv-tools"
UV_VERSION="0.13.9"
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "${PYTHON:-python3}" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet "uv==$UV_VERSION"
fi
MODE=(--upgrade)
if [ "${1:-}" = "--keep" ]; then MODE=(); shift; fi
if [ "${1:-}" = "--upgrade-package" ]; then MODE=(); fi
cd "$ROOT"
"$TOOLS/bin/uv" pip compile pyproject.toml requirements/tools.in \
  --extra dev --extra postgres \
  --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command "bash scripts/update-lock.sh" \
  "${MODE[@]}" "$@" -o requirements/dev.txt
# The plan-floor bench's pyarrow (bench/bench_plan_floor.py installs it apart from .venv's
# packages, so that the engine's pandas never sees it).
"$TOOLS/bin/uv" pip compile requirements/bench.in \
  --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command "bash scripts/update-lock.sh" \
  "${MODE[@]}" -o requirements/bench.txt
echo "requirements/dev.txt and bench.txt refreshed; git diff requirements/ shows what moved"
