#!/usr/bin/env bash
# The connection table under attack (issue 9, finding 2), measured:
# valid whoami calls (examples/loadgen, 16 keep-alive connections) alone, then
# while examples/edge_hold holds IDLE connections that send nothing and SLOW
# slowloris ones (a header byte a second), reopening any the server closes;
# the server's resident memory and open descriptors before, during and after.
#
#   bench/edges.sh [--idle 2000] [--slow 200] [--hold 40] [--fd-limit N] [-- SERVER FLAGS]
#
# --fd-limit runs the server with `ulimit -n N` (soft and hard). FLEETMIND_BIN
# picks the server binary (default: target/release/fleetmind, built here), so
# an older build can be measured the same way. SQLite in a temporary
# directory; only 127.0.0.1. Prints one line per measurement.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IDLE=2000 SLOW=200 HOLD=40 FD_LIMIT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --idle) IDLE=$2; shift 2 ;;
        --slow) SLOW=$2; shift 2 ;;
        --hold) HOLD=$2; shift 2 ;;
        --fd-limit) FD_LIMIT=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$HOLD" -ge 30 ] || { echo "--hold must be at least 30 (s)" >&2; exit 2; }

# One cargo call: built alone, the binary would get other features of its
# dependencies than with the examples, and everything would build twice.
(cd "$ROOT" && cargo build --release --bin fleetmind --example loadgen --example edge_hold >&2)
BIN=${FLEETMIND_BIN:-$ROOT/target/release/fleetmind}
LOADGEN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/loadgen
HOLDER=$ROOT/target/release/examples/edge_hold

TMP=$(mktemp -d)
PORT=$((30000 + $$ % 20000))
SPID="" HPID=""
cleanup() {
    [ -n "$HPID" ] && kill "$HPID" 2>/dev/null || true
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

(
    [ -n "$FD_LIMIT" ] && ulimit -n "$FD_LIMIT"
    exec "$BIN" serve --bind "127.0.0.1:$PORT" --database-url "sqlite://$TMP/edges.db" "$@"
) >"$TMP/server.out" 2>"$TMP/server.err" &
SPID=$!
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
    sleep 0.1
done
KEY=$(grep -o 'fm_[A-Za-z0-9_-]\{43\}' "$TMP/server.out" | head -1)
[ -n "$KEY" ] || { cat "$TMP/server.out" "$TMP/server.err" >&2; echo "no key" >&2; exit 1; }
URL=http://127.0.0.1:$PORT/mcp

snapshot() {   # LABEL
    local rss fds
    rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SPID/status")
    fds=$(ls "/proc/$SPID/fd" | wc -l)
    echo "$1: server_rss_mb=$rss server_fds=$fds"
}
measure() {    # LABEL
    echo "$1: $("$LOADGEN" "$URL" --key "$KEY" --connections 16 --duration 10 --warmup 2 2>/dev/null)"
}

echo "server: $BIN ${FD_LIMIT:+(ulimit -n $FD_LIMIT)} $*"
measure "alone"
snapshot "before"
"$HOLDER" "127.0.0.1:$PORT" --idle "$IDLE" --slow "$SLOW" --seconds "$HOLD" --reconnect \
    >"$TMP/hold.log" 2>&1 &
HPID=$!
sleep 8
snapshot "holding $IDLE idle + $SLOW slowloris"
measure "while held"
snapshot "holding $IDLE idle + $SLOW slowloris"
wait "$HPID" || true
HPID=""
sed 's/^/holder: /' "$TMP/hold.log"
sleep 15
snapshot "15 s after they closed"
measure "after"
echo "server log: $(grep -c . "$TMP/server.err" || true) lines; connection warnings:"
grep -i "refused: --max-connections\|accepting a connection failed" "$TMP/server.err" | head -5 || true
