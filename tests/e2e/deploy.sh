#!/usr/bin/env bash
# The deployment in deploy/, tested: real HAProxy in front of two real
# replicas on one fresh Postgres database (see deploy.py for the checks).
#
#   bash tests/e2e/deploy.sh [--keep-tmp]
#
# Needs haproxy (Debian: apt-get install haproxy; .ci/run installs it), psql,
# python3, root (HAProxy drops to its `haproxy` user as in production), and
# systemd-analyze for the unit check. Environment: FLEETMIND_E2E_PG (admin
# URL, default postgres://postgres@127.0.0.1:5432/postgres); CI=true makes
# every check required (nothing skips). Loopback only; every process it starts
# is stopped by PID. Exit 0 only if every check passed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

say() { echo "[deploy] $*"; }
die() { echo "[deploy] error: $*" >&2; exit 2; }

command -v haproxy >/dev/null || die "haproxy is not on PATH (Debian: apt-get install haproxy)"
command -v psql >/dev/null || die "psql is not on PATH"
command -v python3 >/dev/null || die "python3 is not on PATH"
[[ $(id -u) == 0 ]] || die "run as root: deploy/haproxy.cfg switches to the haproxy user"

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
run_bg() {   # SECONDS CMD...: CMD under a timeout, stopped by our traps
  local secs="$1"; shift
  timeout -k 10 "$secs" "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return $rc
}

say "cargo build --bin fleetmind"
(cd "$ROOT" && run_bg 1800 cargo build --quiet --bin fleetmind)
BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/debug/fleetmind"
[[ -x $BINARY ]] || die "no binary at $BINARY"

say "$(haproxy -v | head -n1)"
rc=0
run_bg 120 python3 "$HERE/deploy.py" --binary "$BINARY" \
  --pg-admin-url "${FLEETMIND_E2E_PG:-postgres://postgres@127.0.0.1:5432/postgres}" "$@" || rc=$?
if [[ $rc == 124 || $rc == 137 ]]; then
  say "the deployment e2e did not finish within 120 s"
fi
exit "$rc"
