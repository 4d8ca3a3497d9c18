# Sourced by the other scripts: make (once) and activate the project's virtualenv.
#
# The dev/test/CI environment is the lock, requirements/dev.txt (every package pinned,
# with hashes), not whatever the registry serves that day: the same commit tests the
# same packages on every machine. Installing it needs only pip. The project itself goes
# in editable and without dependencies, so nothing outside the lock slips in; `pip
# check` then proves the lock satisfies pyproject.toml's ranges. scripts/update-lock.sh
# refreshes the lock.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PLUVO_SYNC_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
LOCK="$ROOT/requirements/dev.txt"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "pluvo-sync needs Python 3.11 or newer ($PY is $("$PY" -V 2>&1))" >&2; exit 2; }
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.installed-lock"
if [ ! -f "$STAMP" ] || [ "$LOCK" -nt "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  log="$(mktemp)"
  # A machine-wide pip constraint file (PIP_CONSTRAINT, /etc/pip.conf) would fight the
  # lock's pins; the lock is the one authority here.
  if ! PIP_CONSTRAINT="" "$VENV/bin/python" -m pip install --quiet --require-hashes \
      --no-deps -r "$LOCK" >"$log" 2>&1; then
    # pip's last ERROR line is the verdict ("No matching distribution found for X==Y",
    # "THESE PACKAGES DO NOT MATCH THE HASHES ..."); the earlier ones are its working.
    reason="$(grep -E '^ERROR' "$log" | grep -v 'Ignored the following' | tail -n 1)"
    echo "lock: cannot install requirements/dev.txt: ${reason:-$(tail -n 1 "$log")}" >&2
    echo "lock: (pip's full output: $log; refresh with scripts/update-lock.sh)" >&2
    exit 2
  fi
  if ! PIP_CONSTRAINT="" "$VENV/bin/python" -m pip install --quiet --no-deps \
      --no-build-isolation -e "$ROOT" >"$log" 2>&1; then
    echo "lock: cannot install the project itself: $(grep -E '^ERROR' "$log" | head -n 1)" >&2
    echo "lock: (pip's full output: $log)" >&2
    exit 2
  fi
  if ! "$VENV/bin/python" -m pip check >"$log" 2>&1; then
    echo "lock: requirements/dev.txt does not satisfy pyproject.toml: $(head -n 1 "$log")" >&2
    echo "lock: refresh it with scripts/update-lock.sh" >&2
    exit 2
  fi
  rm -f "$log"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
