#!/usr/bin/env bash
# Soak run of FleetMind MCP (issue 9; figures in RELIABILITY.md).
#
#   bench/soak.sh [--minutes 10] [--backend postgres|sqlite|both]
#                 [--connections 8] [--kill-every 30] [--no-build]
#
# Builds the release binary (unless --no-build; FLEETMIND_BIN names another
# one), starts it on 127.0.0.1 on a fresh database, issues two tenants' keys
# with `fleetmind keys create`, and drives mixed load for --minutes with
# bench/soak_driver.py (Python standard library): fleet reads, order and
# driver creation, create-assign-complete deliveries; 1 % of requests with
# an unknown key, 1 % with a malformed body. On Postgres, every --kill-every
# seconds every connection of the server (application_name 'fleetmind', this
# run's database only) is ended with pg_terminate_backend.
#
# Reports requests, answers by status, 5xx other than 503, timeouts, valid
# keys refused, panics and lines in the server's log, and the server's RSS
# and open descriptors (/proc/PID/fd) at start and end, with a sample at
# every kill. Exits 1 if any 5xx other than 503, panic, timeout or refused
# valid key was seen.
#
# Loopback only; stops by itself (the driver has a deadline, every request a
# 10 s timeout); kills only the processes it started, by PID.
# Environment: PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres),
# FLEETMIND_BIN, SOAK_KEEP_LOG=DIR (copy the server logs there).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MINUTES=10 BACKENDS=postgres CONNECTIONS=8 KILL_EVERY=30 BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --backend) BACKENDS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --kill-every) KILL_EVERY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case "$BACKENDS" in
    postgres|sqlite) ;;
    both) BACKENDS="postgres sqlite" ;;
    *) echo "--backend is postgres, sqlite or both" >&2; exit 2 ;;
esac
SECONDS_TOTAL=$(python3 -c "import sys; print(max(1, int(float(sys.argv[1]) * 60)))" "$MINUTES")
log() { echo "soak: $*" >&2; }

PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
export PGOPTIONS="-c client_min_messages=warning"   # no NOTICE on DROP IF EXISTS
if [ -n "${FLEETMIND_BIN:-}" ]; then
    BIN=$FLEETMIND_BIN
else
    BIN=$ROOT/target/release/fleetmind
    if [ "$BUILD" = 1 ]; then (cd "$ROOT" && cargo build --release --bin fleetmind >&2); fi
fi
[ -x "$BIN" ] || { echo "no server binary at $BIN" >&2; exit 1; }

TMP=$(mktemp -d)
PGDB=fm_soak_$$
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${SOAK_KEEP_LOG:-}" ]; then mkdir -p "$SOAK_KEEP_LOG" && cp "$TMP"/*.log "$SOAK_KEEP_LOG"/ 2>/dev/null || true; fi
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

issue_key() {   # URL EMAIL -> prints the key
    "$BIN" migrate --database-url "$1" >/dev/null   # `keys` never creates a database
    "$BIN" keys create --email "$2" --json --database-url "$1" 2>/dev/null \
        | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p'
}

# start_server URL NAME: sets SPID and SURL, or exits.
start_server() {
    local url=$1 name=$2 port attempt
    for attempt in 1 2 3 4 5; do
        port=$((20000 + (RANDOM % 20000)))
        NO_COLOR=1 "$BIN" serve --bind "127.0.0.1:$port" --database-url "$url" >"$TMP/$name.log" 2>&1 &
        SPID=$!
        PIDS+=("$SPID")
        for _ in $(seq 1 100); do
            if ! kill -0 "$SPID" 2>/dev/null; then break; fi   # e.g. port taken: next one
            if curl -sf -m 2 -o /dev/null "http://127.0.0.1:$port/healthz"; then
                SURL=http://127.0.0.1:$port/mcp
                return 0
            fi
            sleep 0.1
        done
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    done
    cat "$TMP/$name.log" >&2
    echo "the server did not start" >&2
    exit 1
}

# Ends the server's Postgres connections every KILL_EVERY seconds until
# the file STOP appears; writes one line per round to $TMP/kills.
terminator() {
    local start=$SECONDS sleeper=""
    # Ended early: take the pending sleep along.
    trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' TERM
    while [ ! -e "$TMP/STOP" ]; do
        sleep "$KILL_EVERY" &
        sleeper=$!
        wait "$sleeper" || true
        sleeper=""
        [ -e "$TMP/STOP" ] && break
        local n
        n=$(psql -At "$PG_ADMIN" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
            WHERE application_name = 'fleetmind' AND datname = '$PGDB'" 2>/dev/null || echo error)
        echo "t=$((SECONDS - start))s terminated=$n rss_kb=$(rss_kb "$SPID") fds=$(fds "$SPID")" >>"$TMP/kills"
    done
}

STATUS=0
echo "# soak: ${MINUTES} min per backend, $CONNECTIONS connections, bin=$BIN commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo ?) $(date -u +%FT%TZ)"
for backend in $BACKENDS; do
    if [ "$backend" = postgres ]; then
        psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null
        psql -q "$PG_ADMIN" -c "CREATE DATABASE $PGDB" >/dev/null
        url=${PG_ADMIN%/*}/$PGDB
    else
        url=sqlite://$TMP/soak.db
    fi
    key_a=$(issue_key "$url" soak-a@example.com)
    key_b=$(issue_key "$url" soak-b@example.com)
    [ -n "$key_a" ] && [ -n "$key_b" ] || { echo "could not issue keys" >&2; exit 1; }
    start_server "$url" "$backend"
    log "$backend: server pid $SPID at $SURL"

    # Drivers for the deliveries (each tenant), then the starting figures.
    python3 "$ROOT/bench/soak_driver.py" "$SURL" --keys "$key_a,$key_b" --seconds 3 \
        --connections 2 --unknown-rate 0 --malformed-rate 0 >/dev/null
    rss_start=$(rss_kb "$SPID") fds_start=$(fds "$SPID")
    rm -f "$TMP/STOP" "$TMP/kills"
    if [ "$backend" = postgres ]; then
        terminator &
        PIDS+=("$!")
        TERM_PID=$!
    fi
    log "$backend: driving load for $SECONDS_TOTAL s"
    python3 "$ROOT/bench/soak_driver.py" "$SURL" --keys "$key_a,$key_b" \
        --seconds "$SECONDS_TOTAL" --connections "$CONNECTIONS" >"$TMP/driver.json"
    touch "$TMP/STOP"
    if [ "$backend" = postgres ]; then
        kill "$TERM_PID" 2>/dev/null || true
        wait "$TERM_PID" 2>/dev/null || true
    fi
    rss_end=$(rss_kb "$SPID") fds_end=$(fds "$SPID") hwm=$(hwm_kb "$SPID")
    healthz=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "${SURL%/mcp}/healthz" || echo none)
    kill -TERM "$SPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true

    serverlog=$TMP/$backend.log
    # Colour codes out, in case the log has them.
    sed -i 's/\x1b\[[0-9;]*m//g' "$serverlog"
    panics=$(grep -c 'panicked' "$serverlog" || true)
    errors=$(grep -c ' ERROR ' "$serverlog" || true)
    warns=$(grep -c ' WARN ' "$serverlog" || true)
    lines=$(wc -l <"$serverlog") bytes=$(wc -c <"$serverlog")
    kills=$(cat "$TMP/kills" 2>/dev/null || true)
    python3 - "$backend" "$TMP/driver.json" "$rss_start" "$rss_end" "$hwm" "$fds_start" "$fds_end" \
        "$panics" "$errors" "$warns" "$lines" "$bytes" "$healthz" "$kills" <<'EOF' || STATUS=1
import json, sys
(backend, path, rss0, rss1, hwm, fd0, fd1, panics, errors, warns, lines, size, healthz, kills) = sys.argv[1:]
d = json.load(open(path))
print(f"{backend}: requests={d['requests']} seconds={d['seconds']} rps={d['rps']} "
      f"p50_ms={d['p50_ms']} p99_ms={d['p99_ms']} max_ms={d['max_ms']}")
print(f"{backend}: by_status={json.dumps(d['by_status'])}")
for kind in ("unknown_key", "malformed_body"):
    print(f"{backend}: {kind}={json.dumps(d['by_kind'].get(kind, {}))}")
print(f"{backend}: 5xx_not_503={d['5xx_not_503']} timeouts={d['timeouts']} "
      f"connection_errors={d['connection_errors']} valid_key_refused={d['valid_key_refused']} "
      f"stuck_workers={d['stuck_workers']}")
print(f"{backend}: valid requests answered 200 with rpc_error={d['valid_rpc_errors']} "
      f"tool_error={d['valid_tool_errors']}")
print(f"{backend}: panics_in_log={panics} error_lines={errors} warn_lines={warns} "
      f"log_lines={lines} log_bytes={size}")
print(f"{backend}: rss_mb start={int(rss0)/1024:.1f} end={int(rss1)/1024:.1f} peak={int(hwm)/1024:.1f} "
      f"fds start={fd0} end={fd1} healthz_after={healthz}")
for line in kills.splitlines():
    print(f"{backend}: kill {line}")
for category, (count, example) in sorted(d["problems"].items()):
    print(f"{backend}: problem: {count} x {category}, e.g. {example}")
bad = d["5xx_not_503"] or d["timeouts"] or d["valid_key_refused"] or d["stuck_workers"] or int(panics)
print(f"{backend}: RESULT {'FAIL' if bad else 'PASS'}")
sys.exit(1 if bad else 0)
EOF
    PIDS=()
done
exit $STATUS
