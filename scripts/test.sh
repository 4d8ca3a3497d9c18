#!/usr/bin/env bash
# The whole test suite (unit, integration, e2e, faults); extra args go to pytest.
# Two workers (PYTEST_WORKERS; 0 runs in this process), a test file each at a time: the
# end-to-end and fault tests mostly wait on subprocesses and sleeps, so two files run
# side by side take about half the time on two cores (8.5 min instead of 14 for the
# whole suite). Tests isolate themselves (ports 0, temp dirs, a database per test).
source "$(dirname "$0")/_venv.sh"
WORKERS="${PYTEST_WORKERS:-2}"
if [ "$WORKERS" = 0 ]; then
  exec python -m pytest "$@"
fi
exec python -m pytest -n "$WORKERS" --dist loadfile "$@"
