#!/usr/bin/env bash
# Quick start: a real sync of the bundled sample HR data into a local sandbox, SQLite state.
source "$(dirname "$0")/_venv.sh"
exec pluvo-sync demo "$@"
