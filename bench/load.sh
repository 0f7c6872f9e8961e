#!/usr/bin/env bash
# Load benchmark of FleetMind MCP over HTTP (see BENCHMARKS.md).
#
#   bench/load.sh [--label NAME] [--duration S] [--only LIST] [--client C]
#
# Builds the release binary, the benchmark-only no-auth example and the load
# generator, then, with the server pinned to CPU 0 (taskset -c 0) and the
# client plus the server's Postgres backends on CPU 1:
#   matrix   whoami and fetch_orders (10 rows) at 16 and 64 connections, on
#            SQLite and on Postgres: requests/s, p50, p99, server CPU, peak RSS
#   noauth   the same server with a fixed caller and no key check, run
#            alternately with the real one (whoami, 64 connections, Postgres)
#   writes   100,000 whoami calls by one key -> api_keys row updates
#            (pg_stat_user_tables.n_tup_upd, read after the server exits)
#   flood    valid-key p99 (16 connections) alone, then while another client
#            (wrk + bench/flood.lua) sends random well-formed keys (16 conn.)
#   observe  (only when asked for) what issue 11's logs and metrics cost:
#            the same build four ways side by side, alternating, 3 rounds,
#            whoami at 64 connections on Postgres: access log off
#            (--log warn) or on (the default filter, which writes one
#            fleetmind::access line per call to a file), metrics off or on
#            (--metrics-bind, scraped once a second during each round)
#   limits   (only when asked for) issue 13's check on every call: whoami at
#            64 connections on Postgres, one server, alternating a key
#            without limits and a key with a rate limit too high to trip
#            (1,000,000,000 a minute), 3 rounds each
#   compare  (only when asked for, with COMPARE_BIN=another server binary)
#            the two builds side by side, alternating, 3 rounds: whoami at 64
#            and fetch_orders at 16 connections, Postgres. E.g. mimalloc vs
#            the system allocator:
#              cargo build --release --features system-alloc
#              cp target/release/fleetmind /tmp/fleetmind-system-alloc
#              cargo build --release
#              COMPARE_BIN=/tmp/fleetmind-system-alloc bench/load.sh --only compare
# --only takes a comma list of those names (default: all but compare).
# --client picks what drives the valid requests:
#   loadgen  (default) examples/loadgen: one thread, raw HTTP/1.1, every
#            answer checked; about a tenth of wrk+Lua's CPU per request
#   wrk      the neutral bench.sh (wrk + Lua) named by BENCH_SH, as the
#            predecessor was measured
#
# Environment: COMPARE_BIN (see compare), FLEETMIND_BIN (a prebuilt server binary, e.g. an older build:
# then the server is not built and noauth is skipped), PG_ADMIN (default
# postgres://postgres@127.0.0.1:5432/postgres), BENCH_SH (the path of the
# neutral bench.sh, which lives outside this repository; needed by --client
# wrk only, and never searched for).
# Uses only 127.0.0.1. Prints one line per measurement.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABEL=after DURATION=10 ONLY=matrix,noauth,writes,flood CLIENT=loadgen
while [ $# -gt 0 ]; do
    case "$1" in
        --label) LABEL=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --client) CLIENT=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
log() { echo "load: $*" >&2; }

PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
case "$CLIENT" in
    loadgen) ;;
    wrk)
        if [ -z "${BENCH_SH:-}" ]; then
            echo "--client wrk needs BENCH_SH: the path of the neutral bench.sh (wrk + Lua), e.g. BENCH_SH=/path/to/shared/bench/bench.sh bench/load.sh --client wrk" >&2
            exit 1
        fi
        [ -x "$BENCH_SH" ] || { echo "BENCH_SH=$BENCH_SH is not an executable file" >&2; exit 1; } ;;
    *) echo "--client is loadgen or wrk" >&2; exit 2 ;;
esac
if want flood || [ "$CLIENT" = wrk ]; then
    command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
fi

(cd "$ROOT" && cargo build --release --example loadgen >&2)
LOADGEN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/loadgen
if [ -n "${FLEETMIND_BIN:-}" ]; then
    BIN=$FLEETMIND_BIN NOAUTH=""
else
    (cd "$ROOT" && cargo build --release --bin fleetmind >&2 \
        && cargo build --release --example bench_noauth --features bench-noauth >&2)
    BIN=$ROOT/target/release/fleetmind NOAUTH=$ROOT/target/release/examples/bench_noauth
fi

TMP=$(mktemp -d)
PGDB=fm_bench_$$
PG_URL=${PG_ADMIN%/*}/$PGDB
SQLITE_URL=sqlite://$TMP/bench.db
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS ${PGDB}_b WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
psql -q "$PG_ADMIN" -c "CREATE DATABASE $PGDB" >/dev/null

PORT=$((20000 + $$ % 20000))
# start_server NAME CMD... : runs CMD on CPU 0, waits for /healthz; sets SPID, SURL.
start_server() {
    local name=$1; shift
    PORT=$((PORT + 1))
    taskset -c 0 "$@" >"$TMP/$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    SURL=http://127.0.0.1:$PORT/mcp
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2
    echo "server $name did not start" >&2
    exit 1
}
stop_server() {
    kill -TERM "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
}
serve() { start_server "$1" "$BIN" serve --bind "127.0.0.1:$((PORT + 1))" --database-url "$2"; }
# Peak resident memory of the server so far, in MB.
rss_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SPID/status" 2>/dev/null || echo "?"; }
# The server's Postgres backends onto CPU 1, beside wrk (new ones inherit
# nothing, so this runs after the warm-up has opened the pool).
pin_pg() {   # [DATABASE, default the benchmark's]
    local pid
    for pid in $(psql -At "$PG_ADMIN" -c "SELECT pid FROM pg_stat_activity WHERE datname = '${1:-$PGDB}'"); do
        taskset -p -c 1 "$pid" >/dev/null 2>&1 || true
    done
}
# bench URL KEY TOOL ARGS CONC [--duration S --warmup S --max-requests N]
# -> prints the client's line (rps= p50_ms= p99_ms= errors= server_cpu= ...)
bench() {
    local url=$1 key=$2 tool=$3 args=$4 conc=$5 duration=$DURATION; shift 5
    # A caller's --duration replaces the default: the clients reject it twice.
    if [ "${1:-}" = --duration ]; then duration=$2; shift 2; fi
    if [ "$CLIENT" = loadgen ]; then
        taskset -c 1 "$LOADGEN" "$url" --key "$key" --tool "$tool" --args "$args" \
            --connections "$conc" --duration "$duration" --server-pid "$SPID" "$@" 2>"$TMP/bench.err"
    else
        # The no-auth server ignores keys; bench.sh needs to be told so.
        local mode=auth; [ "$SPID" = "${NOAUTH_PID:-}" ] && mode=noauth
        taskset -c 1 "$BENCH_SH" "$url" "$key" --tool "$tool" --args "$args" --mode "$mode" \
            --concurrency "$conc" --duration "$duration" --server-pid "$SPID" "$@" 2>"$TMP/bench.err"
    fi || { cat "$TMP/bench.err" >&2; return 1; }
}
issue_key() {   # URL -> sets KEY, USER_ID
    local json
    "$BIN" migrate --database-url "$1" >/dev/null   # `keys` never creates a database
    json=$("$BIN" keys create --email bench@example.com --json --database-url "$1" 2>/dev/null)
    KEY=$(printf '%s' "$json" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
    USER_ID=$(printf '%s' "$json" | sed -n 's/.*"user_id":"\([^"]*\)".*/\1/p')
    [ -n "$KEY" ] || { echo "could not issue a key: $json" >&2; exit 1; }
}
mcp_post() {   # URL KEY BODY -> answer body (the server is stateless: no handshake)
    curl -s -X POST "$1" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-11-25' \
        --data "$3"
}
has_tool() {   # URL KEY TOOL
    mcp_post "$1" "$2" '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | grep -q "\"name\":\"$3\""
}
# Ten orders for fetch_orders, through the server's own create tool.
seed_orders() {   # URL KEY
    local i args
    for i in $(seq 1 10); do
        args="{\"customer_name\":\"Bench Customer $i\",\"delivery_address\":\"$i Bench Street, Springfield\",\"delivery_lat\":40.7,\"delivery_lng\":-74.0,\"expected_delivery_time\":\"2030-01-01T12:00:00Z\"}"
        mcp_post "$1" "$2" "{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"create_order\",\"arguments\":$args}}" \
            | grep -q '"isError":false' || { echo "could not seed orders (create_order)" >&2; return 1; }
    done
}
echo "# label=$LABEL client=$CLIENT duration=${DURATION}s bin=$BIN $(date -u +%FT%TZ)"

if want matrix; then
    for backend in sqlite postgres; do
        url=$SQLITE_URL; [ "$backend" = postgres ] && url=$PG_URL
        issue_key "$url"
        serve "$LABEL-$backend" "$url"
        tools=whoami
        if has_tool "$SURL" "$KEY" fetch_orders && seed_orders "$SURL" "$KEY"; then
            tools="whoami fetch_orders"
        else
            log "fetch_orders not available on this build: whoami only"
        fi
        for tool in $tools; do
            args='{}'; [ "$tool" = fetch_orders ] && args='{"limit":10}'
            # Open the whole pool first, so that pin_pg finds every backend.
            if [ "$backend" = postgres ]; then
                bench "$SURL" "$KEY" "$tool" "$args" 64 --duration 1 --warmup 0 >/dev/null
                pin_pg
            fi
            for conc in 16 64; do
                line=$(bench "$SURL" "$KEY" "$tool" "$args" "$conc")
                echo "$LABEL $backend $tool c=$conc $line rss_mb=$(rss_mb)"
            done
        done
        stop_server
    done
fi

if want noauth && [ -n "$NOAUTH" ]; then
    issue_key "$PG_URL"
    serve "$LABEL-auth" "$PG_URL"; AUTH_PID=$SPID AUTH_URL=$SURL
    start_server "$LABEL-noauth" "$NOAUTH" "$PG_URL" "127.0.0.1:$((PORT + 1))" "$USER_ID"
    NOAUTH_PID=$SPID NOAUTH_URL=$SURL
    for round in 1 2 3 4; do
        SPID=$AUTH_PID; line=$(bench "$AUTH_URL" "$KEY" whoami '{}' 64)
        echo "$LABEL postgres whoami c=64 auth round=$round $line"
        SPID=$NOAUTH_PID; line=$(bench "$NOAUTH_URL" "$KEY" whoami '{}' 64)
        echo "$LABEL postgres whoami c=64 noauth round=$round $line"
    done
    SPID=$AUTH_PID; stop_server; SPID=$NOAUTH_PID; stop_server
fi

if want writes; then
    issue_key "$PG_URL"
    upd() { psql -At "$PG_URL" -c "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'api_keys'"; }
    sleep 1.5; before=$(upd)
    serve "$LABEL-writes" "$PG_URL"
    line=$(bench "$SURL" "$KEY" whoami '{}' 64 --duration 120 --warmup 0 --max-requests 100000)
    requests=$(sed -n 's/.*detail: requests=\([0-9]*\).*/\1/p' "$TMP/bench.err" | tail -1)
    stop_server
    # Backends report their statistics when they exit.
    sleep 1.5; after=$(upd)
    echo "$LABEL postgres writes requests=$requests api_keys_updates=$((after - before)) ($line)"
fi

if want compare; then
    [ -x "${COMPARE_BIN:-}" ] || { echo "compare needs COMPARE_BIN=<server binary>" >&2; exit 2; }
    # Each build on its own database: a build's migrations are refused by an
    # older one (e.g. the base before the edge), and neither sees the
    # other's rows. Same data on both: a key and ten orders.
    issue_key "$PG_URL"; A_KEY=$KEY
    serve "$LABEL-compare-a" "$PG_URL"; A_PID=$SPID A_URL=$SURL
    seed_orders "$A_URL" "$A_KEY"
    psql -q "$PG_ADMIN" -c "CREATE DATABASE ${PGDB}_b" >/dev/null
    B_DB=${PG_URL}_b
    BIN=$COMPARE_BIN issue_key "$B_DB"; B_KEY=$KEY
    start_server "$LABEL-compare-b" "$COMPARE_BIN" serve --bind "127.0.0.1:$((PORT + 1))" --database-url "$B_DB"
    B_PID=$SPID B_URL=$SURL
    seed_orders "$B_URL" "$B_KEY"
    for tool in whoami fetch_orders; do
        args='{}' conc=64; [ "$tool" = fetch_orders ] && args='{"limit":10}' conc=16
        # Open both pools before pinning.
        bench "$A_URL" "$A_KEY" "$tool" "$args" 64 --duration 1 --warmup 0 >/dev/null
        bench "$B_URL" "$B_KEY" "$tool" "$args" 64 --duration 1 --warmup 0 >/dev/null
        pin_pg "$PGDB"; pin_pg "${PGDB}_b"
        for round in 1 2 3; do
            SPID=$A_PID; line=$(bench "$A_URL" "$A_KEY" "$tool" "$args" "$conc")
            echo "$LABEL postgres $tool c=$conc bin=a round=$round $line"
            SPID=$B_PID; line=$(bench "$B_URL" "$B_KEY" "$tool" "$args" "$conc")
            echo "$LABEL postgres $tool c=$conc bin=b round=$round $line"
        done
    done
    echo "# a=$BIN b=$COMPARE_BIN"
    SPID=$A_PID; stop_server; SPID=$B_PID; stop_server
fi

if want observe; then
    issue_key "$PG_URL"
    declare -A O_PID O_URL O_METRICS
    for cfg in off access metrics both; do
        log=warn; [ "$cfg" = access ] || [ "$cfg" = both ] && log="info,rmcp=warn,sqlx=warn"
        metrics=(); O_METRICS[$cfg]=""
        if [ "$cfg" = metrics ] || [ "$cfg" = both ]; then
            O_METRICS[$cfg]=127.0.0.1:$((PORT + 1001))
            metrics=(--metrics-bind "${O_METRICS[$cfg]}")
        fi
        start_server "$LABEL-observe-$cfg" "$BIN" --log "$log" serve \
            --bind "127.0.0.1:$((PORT + 1))" --database-url "$PG_URL" "${metrics[@]}"
        O_PID[$cfg]=$SPID O_URL[$cfg]=$SURL
        # Open the pool before pinning.
        bench "$SURL" "$KEY" whoami '{}' 64 --duration 1 --warmup 0 >/dev/null
    done
    pin_pg
    for round in 1 2 3; do
        for cfg in off access metrics both; do
            SPID=${O_PID[$cfg]}
            scraper=""
            if [ -n "${O_METRICS[$cfg]}" ]; then
                # As Prometheus would, only more often: once a second.
                (while sleep 1; do curl -sf -o /dev/null "http://${O_METRICS[$cfg]}/metrics" || true; done) &
                scraper=$!
            fi
            line=$(bench "${O_URL[$cfg]}" "$KEY" whoami '{}' 64)
            [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
            echo "$LABEL postgres whoami c=64 observe=$cfg round=$round $line"
        done
    done
    for cfg in access both; do
        echo "# $cfg: $(grep -c 'fleetmind::access' "$TMP/$LABEL-observe-$cfg.log") access lines written"
    done
    for cfg in metrics both; do
        echo "# $cfg: $(curl -sf "http://${O_METRICS[$cfg]}/metrics" | grep '^fleetmind_tool_calls_total')"
    done
    for cfg in off access metrics both; do SPID=${O_PID[$cfg]}; stop_server; done
fi

if want limits; then
    issue_key "$PG_URL"; FREE_KEY=$KEY
    json=$("$BIN" keys create --email bench-limited@example.com --json --database-url "$PG_URL" 2>/dev/null)
    LIMITED_KEY=$(printf '%s' "$json" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
    LIMITED_ID=$(printf '%s' "$json" | sed -n 's/.*"key_id":\([0-9]*\).*/\1/p')
    psql -q "$PG_URL" -c "UPDATE api_keys SET rate_limit_per_minute = 1000000000 WHERE key_id = $LIMITED_ID"
    serve "$LABEL-limits" "$PG_URL"
    # Open the pool before pinning.
    bench "$SURL" "$FREE_KEY" whoami '{}' 64 --duration 1 --warmup 0 >/dev/null
    pin_pg
    for round in 1 2 3; do
        line=$(bench "$SURL" "$FREE_KEY" whoami '{}' 64)
        echo "$LABEL postgres whoami c=64 key=unlimited round=$round $line"
        line=$(bench "$SURL" "$LIMITED_KEY" whoami '{}' 64)
        echo "$LABEL postgres whoami c=64 key=rate_limited round=$round $line rss_mb=$(rss_mb)"
    done
    stop_server
fi

if want flood; then
    issue_key "$PG_URL"
    serve "$LABEL-flood" "$PG_URL"
    pin_pg
    line=$(bench "$SURL" "$KEY" whoami '{}' 16)
    echo "$LABEL postgres flood=off valid c=16 $line"
    MCP_PATH=/mcp taskset -c 1 wrk -t1 -c16 -d$((DURATION + 6))s --timeout 10s \
        -s "$ROOT/bench/flood.lua" "http://127.0.0.1:$PORT/mcp" >"$TMP/flood.out" 2>&1 &
    FLOOD=$!
    PIDS+=("$FLOOD")
    sleep 1
    line=$(bench "$SURL" "$KEY" whoami '{}' 16)
    wait "$FLOOD" || true
    echo "$LABEL postgres flood=on valid c=16 $line $(grep '^flood:' "$TMP/flood.out" || echo flood: failed) rss_mb=$(rss_mb)"
    stop_server
fi
