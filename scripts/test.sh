#!/usr/bin/env bash
# The whole test suite (unit, integration, e2e, faults); extra args go to pytest.
source "$(dirname "$0")/_venv.sh" dev
exec python -m pytest "$@"
