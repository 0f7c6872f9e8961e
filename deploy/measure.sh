#!/usr/bin/env bash
# How far one Postgres carries FleetMind replicas behind HAProxy: whoami and
# fetch_orders (10 rows) driven by examples/loadgen (a) straight at one
# replica, (b) through deploy/haproxy.cfg to one replica, (c) through it to
# two replicas, (d) as (c) with connections to the replicas kept open; with
# the CPU used by the replicas, HAProxy and Postgres.
#
#   bash deploy/measure.sh [--duration S] [--connections N]
#
# Release build; loopback only; bounded (4 topologies x 2 tools x duration);
# every process it starts is stopped by PID. Run as root (HAProxy switches
# user). On a machine with few cores the load generator, HAProxy, Postgres
# and the replicas share them: read the CPU columns, not only requests/s.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=8 CONC=32
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONC=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
(cd "$ROOT" && cargo build --quiet --release --bin fleetmind --example loadgen >&2)
BIN=$ROOT/target/release/fleetmind LOADGEN=$ROOT/target/release/examples/loadgen

TMP=$(mktemp -d) DB=fm_test_measure_$$ PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
psql -q "$PG_ADMIN" -c "CREATE DATABASE $DB" >/dev/null
URL=${PG_ADMIN%/*}/$DB
"$BIN" migrate --database-url "$URL" >/dev/null
KEY=$("$BIN" keys create --email measure@example.com --json --database-url "$URL" 2>/dev/null |
    sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
[ -n "$KEY" ] || { echo "could not issue a key" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_healthy() {   # PORT PID
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$1/healthz" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "nothing healthy on port $1" >&2; exit 1
}
replica() {   # -> sets RPORT, RPID
    RPORT=$(free_port)
    "$BIN" serve --database-url "$URL" --bind "127.0.0.1:$RPORT" --trusted-proxies 127.0.0.1 \
        >"$TMP/replica-$RPORT.log" 2>&1 &
    RPID=$!; PIDS+=("$RPID")
    wait_healthy "$RPORT" "$RPID"
}
haproxy_up() {   # REPLICA1_PORT REPLICA2_PORT [CONFIG] -> sets LPORT, LPID
    LPORT=$(free_port)
    FM_LISTEN=127.0.0.1:$LPORT FM_REPLICA1=127.0.0.1:$1 FM_REPLICA2=127.0.0.1:$2 \
        FM_HAPROXY_SOCKET=$TMP/haproxy.sock FM_HAPROXY_LOG=/dev/null \
        haproxy -db -f "${3:-$ROOT/deploy/haproxy.cfg}" >"$TMP/haproxy.log" 2>&1 &
    LPID=$!; PIDS+=("$LPID")
    wait_healthy "$LPORT" "$LPID"
    sleep 2.5   # both servers past their first health checks ("rise 2")
}
# CPU seconds (user + system) of the given PIDs; all postgres processes with "pg".
ticks() {
    local total=0 pid
    for pid in "$@"; do
        [ "$pid" = pg ] && { total=$((total + $(ticks $(pgrep -x postgres)))); continue; }
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

replica; R1=$RPORT R1PID=$RPID
replica; R2=$RPORT R2PID=$RPID
for i in $(seq 1 10); do
    args="{\"customer_name\":\"Customer $i\",\"delivery_address\":\"$i Main Street\",\"delivery_lat\":40.7,\"delivery_lng\":-74.0,\"expected_delivery_time\":\"2030-01-01T12:00:00Z\"}"
    curl -s "http://127.0.0.1:$R1/mcp" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-11-25' \
        --data "{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"create_order\",\"arguments\":$args}}" |
        grep -q '"isError":false' || { echo "could not seed orders" >&2; exit 1; }
done

echo "# $(date -u +%FT%TZ) $(git -C "$ROOT" rev-parse --short HEAD) nproc=$(nproc) duration=${DURATION}s connections=$CONC $(haproxy -v | head -n1 | cut -d' ' -f1-3)"
measure() {   # LABEL URL
    local tool args before after line
    for tool in whoami fetch_orders; do
        args='{}'; [ "$tool" = fetch_orders ] && args='{"limit":10}'
        "$LOADGEN" "$2" --key "$KEY" --tool "$tool" --args "$args" --connections "$CONC" \
            --duration 1 --warmup 0 >/dev/null 2>&1   # open the pools
        before="$(ticks "$R1PID") $(ticks "$R2PID") $(ticks "${LPID:-0}") $(ticks pg)"
        line=$("$LOADGEN" "$2" --key "$KEY" --tool "$tool" --args "$args" --connections "$CONC" \
            --duration "$DURATION" --warmup 1 2>/dev/null)
        after="$(ticks "$R1PID") $(ticks "$R2PID") $(ticks "${LPID:-0}") $(ticks pg)"
        # shellcheck disable=SC2086
        set -- "$1" "$2" $before $after
        awk -v l="$1" -v t="$tool" -v line="$line" -v hz="$HZ" -v d="$((DURATION + 1))" \
            -v b1="$3" -v b2="$4" -v bl="$5" -v bp="$6" -v a1="$7" -v a2="$8" -v al="$9" -v ap="${10}" \
            'BEGIN { printf "%-22s %-12s %s cpu_replica1=%.2f cpu_replica2=%.2f cpu_haproxy=%.2f cpu_postgres=%.2f\n",
                l, t, line, (a1-b1)/hz/d, (a2-b2)/hz/d, (al-bl)/hz/d, (ap-bp)/hz/d }'
    done
}
LPID=0; measure "direct-1-replica" "http://127.0.0.1:$R1/mcp"
haproxy_up "$R1" "$R1"; measure "haproxy-1-replica" "http://127.0.0.1:$LPORT/mcp"
kill "$LPID"; wait "$LPID" 2>/dev/null || true
haproxy_up "$R1" "$R2"; measure "haproxy-2-replicas" "http://127.0.0.1:$LPORT/mcp"
kill "$LPID"; wait "$LPID" 2>/dev/null || true
# The same without http-server-close: what a new connection per request costs.
grep -v 'option http-server-close' "$ROOT/deploy/haproxy.cfg" >"$TMP/keepalive.cfg"
haproxy_up "$R1" "$R2" "$TMP/keepalive.cfg"; measure "haproxy-2-keepalive" "http://127.0.0.1:$LPORT/mcp"
