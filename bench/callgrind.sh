#!/usr/bin/env bash
# Instructions the server executes per tools/call, counted by callgrind
# (deterministic: the same binary and input give the same count, however
# busy the machine is; see BENCHMARKS.md).
#
#   bench/callgrind.sh BIN [CALLS] [TOOL] [OUT]
#
# BIN is a release server binary; CALLS (default 5000) calls of TOOL
# (whoami, or fetch_orders over ten seeded orders) at 16 connections, after
# a 5 s warm-up whose counts are zeroed. Prints instructions per call and
# leaves the profile in OUT (default callgrind.<tool>.out) for
# callgrind_annotate. Uses a fresh Postgres database on 127.0.0.1.
set -euo pipefail
BIN=$1 CALLS=${2:-5000} TOOL=${3:-whoami}
OUT=${4:-callgrind.$TOOL.out}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && cargo build --release --example loadgen >&2)
LOADGEN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/loadgen
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
DB=fm_callgrind_$$ PORT=$((30000 + $$ % 10000))
URL=${PG_ADMIN%/*}/$DB
TMP=$(mktemp -d)
psql -q "$PG_ADMIN" -c "CREATE DATABASE $DB" >/dev/null
cleanup() {
    [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null || true
    wait 2>/dev/null || true
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
"$BIN" migrate --database-url "$URL" >/dev/null
KEY=$("$BIN" keys create --email callgrind@example.com --json --database-url "$URL" 2>/dev/null |
    sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.%p" \
    "$BIN" --log warn serve --bind "127.0.0.1:$PORT" --database-url "$URL" >"$TMP/server.log" 2>&1 &
SPID=$!
up=""
for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] || { cat "$TMP/server.log" >&2; echo "the server did not start under valgrind" >&2; exit 1; }
post() {
    curl -s -X POST "http://127.0.0.1:$PORT/mcp" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'MCP-Protocol-Version: 2025-11-25' --data "$1"
}
ARGS='{}'
if [ "$TOOL" = fetch_orders ]; then
    ARGS='{"limit":10}'
    for i in $(seq 1 10); do
        post "{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"create_order\",\"arguments\":{\"customer_name\":\"C $i\",\"delivery_address\":\"$i Bench Street\",\"delivery_lat\":40.7,\"delivery_lng\":-74.0,\"expected_delivery_time\":\"2030-01-01T12:00:00Z\"}}}" |
            grep -q '"isError":false' || { echo "could not seed orders" >&2; exit 1; }
    done
fi
run() { "$LOADGEN" "http://127.0.0.1:$PORT/mcp" --key "$KEY" --tool "$TOOL" --args "$ARGS" --connections 16 --warmup 0 "$@"; }
run --duration 5 >/dev/null
callgrind_control -z "$SPID" >/dev/null
run --duration 600 --max-requests "$CALLS" >/dev/null
callgrind_control -d "$SPID" >/dev/null
sleep 1
mv "$(ls -t "$TMP"/cg.* | head -1)" "$OUT"
total=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
echo "$(basename "$BIN") $TOOL calls=$CALLS instructions_per_call=$((total / CALLS)) profile=$OUT"
