#!/usr/bin/env bash
# The package as integration engineers install it: build the sdist and the wheel,
# install the wheel into a clean virtualenv outside the checkout with the newest
# versions pyproject.toml's ranges allow (what `pipx install` resolves today, not the
# lock), and run demo, db upgrade, doctor, plan, run and status there against a sandbox
# it starts itself; then the SFTP and PostgreSQL tests against that installed wheel.
# When something fails, the last lines name the versions that differ from the lock.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d /tmp/pluvo-sync-wheel.XXXXXX)"
SANDBOX_PID=""
versions() {  # versions PYTHON: the key packages' versions there, one line
  "$1" "$ROOT/scripts/versions.py"
}
differs_from_lock() {  # the installed packages whose version is not the lock's
  [ -x "$WORK/venv/bin/python" ] || return 0
  "$WORK/venv/bin/python" "$ROOT/scripts/versions.py" --lock "$ROOT/requirements/dev.txt"
}
cleanup() {
  local code=$?
  [ -n "$SANDBOX_PID" ] && kill "$SANDBOX_PID" 2>/dev/null || true
  if [ "$code" != 0 ] && [ -x "$WORK/venv/bin/python" ]; then
    echo
    echo "newest-versions job failed with: $(versions "$WORK/venv/bin/python")"
    echo "not as locked: $(differs_from_lock)"
    echo "(fix with a range in pyproject.toml or a code change, then scripts/update-lock.sh)"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "build sdist and wheel, from a copy of the tree (setuptools writes build/ and"
echo "   *.egg-info into the folder it builds in; the checkout stays as it is)"
mkdir "$WORK/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # What git tracks or would track, as it is on disk (uncommitted edits too).
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -t "$WORK/src")
else
  cp -r "$ROOT/." "$WORK/src"   # an unpacked sdist: nothing to leave out
fi
"$PY" -m venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install --quiet --upgrade pip build
"$WORK/build-env/bin/python" -m build --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
if grep -i "warning" "$WORK/build.log" | grep -iv "byte-compil"; then
  echo "the build warns (above)"; exit 1
fi
ls "$WORK/dist"

step "install the wheel into a clean virtualenv, outside the checkout"
"$PY" -m venv "$WORK/venv"
WHEEL="$(ls "$WORK"/dist/*.whl)"
"$WORK/venv/bin/python" -m pip install --quiet "$WHEEL[postgres]"
BIN="$WORK/venv/bin/pluvo-sync"
echo "newest allowed: $(versions "$WORK/venv/bin/python")"
echo "not as locked: $(differs_from_lock)"
cd "$WORK"
mkdir run && cd run

step "pluvo-sync demo"
"$BIN" demo --dir demo | tail -n 3

step "pluvo-sync init: the starter files, from the wheel alone"
"$BIN" init site | head -n 1
for pair in config.yaml:deploy/config.example.yaml mappings/example.yaml:mappings/example.yaml \
  pluvo-sync.env.example:deploy/pluvo-sync.env.example \
  deploy/pluvo-sync.service:deploy/pluvo-sync.service deploy/pluvo-sync.timer:deploy/pluvo-sync.timer \
  deploy/pluvo-sync.cron:deploy/pluvo-sync.cron; do
  cmp "site/${pair%%:*}" "$ROOT/${pair#*:}" || { echo "init wrote ${pair%%:*} unlike the tree's"; exit 1; }
done
set +e; "$BIN" init site >/dev/null 2>"$WORK/init.txt"; got=$?; set -e
[ "$got" = 2 ] && grep -q "already holds" "$WORK/init.txt" \
  || { echo "a second init did not refuse (exit $got)"; cat "$WORK/init.txt"; exit 1; }

step "a config of one's own against a sandbox"
PORT="$("$WORK/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$BIN" sandbox --port "$PORT" >"$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
mkdir -p hr
cp demo/hr/hr.csv hr/hr.csv
cp demo/mapping.yaml mapping.yaml
cat >config.yaml <<YAML
pluvo:
  url: http://127.0.0.1:$PORT/
  client_id: sandbox-client
  client_secret: \${PLUVO_CLIENT_SECRET}
sources:
  - name: hr
    type: csv
    path: hr/hr.csv
    mapping: mapping.yaml
state:
  url: sqlite:///state.db
YAML
export PLUVO_CLIENT_SECRET=sandbox-secret

expect() {  # expect CODE command...: run it, show its tail, insist on its exit code
  local want=$1; shift
  set +e; "$@" >"$WORK/out.txt" 2>&1; local got=$?; set -e
  tail -n 4 "$WORK/out.txt"
  [ "$got" = "$want" ] || { echo "'$*' exited $got, expected $want"; cat "$WORK/out.txt"; exit 1; }
}

step "pluvo-sync db upgrade";  expect 0 "$BIN" -c config.yaml db upgrade
step "pluvo-sync doctor";      expect 0 "$BIN" -c config.yaml doctor
step "pluvo-sync plan";        expect 3 "$BIN" -c config.yaml plan   # the sample has bad rows on purpose
step "pluvo-sync run";         expect 3 "$BIN" -c config.yaml run
step "pluvo-sync plan (again)"; expect 3 "$BIN" -c config.yaml plan
grep -q "0 operation(s)" "$WORK/out.txt" || { echo "the second plan is not empty"; exit 1; }
step "pluvo-sync status";      expect 0 "$BIN" -c config.yaml status

step "SFTP and PostgreSQL paths: their tests against the installed wheel"
# The tests are copied out of the checkout (with the data they read), so `import sync`
# finds the wheel, not the source tree; the runner comes at the newest versions of the
# dev extra's ranges too.
cd "$WORK"
mkdir suite
cp -r "$ROOT/tests" "$ROOT/mappings" "$ROOT/samples" "$ROOT/pyproject.toml" suite/
"$WORK/venv/bin/python" - "$ROOT/pyproject.toml" >"$WORK/runner.txt" <<'PY'
import re, sys, tomllib
dev = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["dev"]
print("\n".join(r for r in dev if re.match(r"(pytest|hypothesis)", r)))
PY
"$WORK/venv/bin/python" -m pip install --quiet -r "$WORK/runner.txt"
cd suite
mapfile -t FILES < <(grep -rlE "mark\.(sftp|postgres)" tests --include='test_*.py' | sort)
[ -n "${PLUVO_SYNC_TEST_PG_URL:-}" ] || echo "(PLUVO_SYNC_TEST_PG_URL unset: the PostgreSQL tests skip)"
"$WORK/venv/bin/python" -c 'import sync, sys; "site-packages" in sync.__file__ or sys.exit(f"the tests would import {sync.__file__}, not the wheel")'
"$WORK/venv/bin/python" -m pytest -p no:cacheprovider -q -m "sftp or postgres" "${FILES[@]}"

echo
echo "installed package: every command worked outside the checkout"
