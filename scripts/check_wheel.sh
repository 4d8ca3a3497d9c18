#!/usr/bin/env bash
# The package as integration engineers install it: build the sdist and the wheel,
# install the wheel into a clean virtualenv outside the checkout, and run demo,
# db upgrade, doctor, plan, run and status there against a sandbox it starts itself.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d /tmp/pluvo-sync-wheel.XXXXXX)"
SANDBOX_PID=""
cleanup() {
  [ -n "$SANDBOX_PID" ] && kill "$SANDBOX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "build sdist and wheel"
"$PY" -m venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install --quiet --upgrade pip build
"$WORK/build-env/bin/python" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
if grep -i "warning" "$WORK/build.log" | grep -iv "byte-compil"; then
  echo "the build warns (above)"; exit 1
fi
ls "$WORK/dist"

step "install the wheel into a clean virtualenv, outside the checkout"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet "$WORK"/dist/*.whl
BIN="$WORK/venv/bin/pluvo-sync"
cd "$WORK"
mkdir run && cd run

step "pluvo-sync demo"
"$BIN" demo --dir demo | tail -n 3

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
echo
echo "installed package: every command worked outside the checkout"
