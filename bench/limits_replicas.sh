#!/usr/bin/env bash
# Per-key rate limit held across replicas (issue 13; see ARCHITECTURE.md,
# "Limits across replicas", for the bound this measures).
#
#   bench/limits_replicas.sh [--duration S] [--rate N] [--sync-ms MS] [--restart]
#
# Three replicas of the release binary on one Postgres database, one key
# limited to RATE calls a minute (default 600), all three hammered with
# whoami (bench/limits_driver.py, two connections each) for DURATION
# seconds (default 60). With --restart, replica 2 is stopped (SIGTERM) at
# half time and started again at once. Prints the calls admitted (the 200s
# the clients got, and the total in key_limit_counts after the replicas
# stopped) against a single bucket's allowance C + C*T/60.
#
# Environment: FLEETMIND_BIN (a prebuilt binary; default: build the release
# binary), PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres).
# Uses only 127.0.0.1; everything it starts is stopped on exit, its
# database dropped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=60 RATE=600 SYNC_MS=250 RESTART=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --sync-ms) SYNC_MS=$2; shift 2 ;;
        --restart) RESTART=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
if [ -n "${FLEETMIND_BIN:-}" ]; then
    BIN=$FLEETMIND_BIN
else
    (cd "$ROOT" && cargo build --release --bin fleetmind >&2)
    BIN=$ROOT/target/release/fleetmind
fi

TMP=$(mktemp -d)
PGDB=fm_limits_enforce_$$
PG_URL=${PG_ADMIN%/*}/$PGDB
declare -A PID
cleanup() {
    for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PGDB" >/dev/null
"$BIN" migrate --database-url "$PG_URL" >/dev/null
json=$("$BIN" keys create --email limits-bench@example.com --json --database-url "$PG_URL" 2>/dev/null)
KEY=$(printf '%s' "$json" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
KEY_ID=$(printf '%s' "$json" | sed -n 's/.*"key_id":\([0-9]*\).*/\1/p')
[ -n "$KEY" ] && [ -n "$KEY_ID" ] || { echo "could not issue a key: $json" >&2; exit 1; }
psql -q "$PG_URL" -c "UPDATE api_keys SET rate_limit_per_minute = $RATE WHERE key_id = $KEY_ID"

BASE=$((20000 + $$ % 20000))
start_replica() {   # N
    local port=$((BASE + $1))
    "$BIN" --log warn serve --bind "127.0.0.1:$port" --database-url "$PG_URL" \
        --limits-sync-ms "$SYNC_MS" >>"$TMP/replica$1.log" 2>&1 &
    PID[$1]=$!
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
        sleep 0.1
    done
    cat "$TMP/replica$1.log" >&2
    echo "replica $1 did not start" >&2
    exit 1
}
stop_replica() {   # N
    kill -TERM "${PID[$1]}" 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
}
for n in 1 2 3; do start_replica "$n"; done
URLS=()
for n in 1 2 3; do URLS+=("http://127.0.0.1:$((BASE + n))/mcp"); done

python3 "$ROOT/bench/limits_driver.py" "$DURATION" "$KEY" "${URLS[@]}" >"$TMP/driver.json" &
DRIVER=$!
if [ "$RESTART" = 1 ]; then
    sleep "$(awk "BEGIN { print $DURATION / 2 }")"
    stop_replica 2
    start_replica 2
fi
wait "$DRIVER"
for n in 1 2 3; do stop_replica "$n"; done
counted=$(psql -At "$PG_URL" -c "SELECT coalesce(sum(calls), 0) FROM key_limit_counts WHERE key_id = $KEY_ID")
ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok_total"])' "$TMP/driver.json")
allowance=$(awk "BEGIN { printf \"%d\", $RATE + $RATE * $DURATION / 60 }")
echo "limits replicas=3 rate=$RATE/min duration=${DURATION}s sync_ms=$SYNC_MS restart=$RESTART admitted=$ok counted=$counted single_bucket_allowance=$allowance over=$((ok - allowance))"
cat "$TMP/driver.json"
