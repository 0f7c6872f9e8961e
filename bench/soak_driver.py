#!/usr/bin/env python3
"""Mixed load for bench/soak.sh (Python standard library only).

    soak_driver.py URL --keys KEY1,KEY2 [--seconds 600] [--connections 8]
                   [--unknown-rate 0.01] [--malformed-rate 0.01]
                   [--max-requests N] [--timeout 10]

Each connection is one thread with one HTTP/1.1 keep-alive connection to a
loopback server. Requests: fleet tool calls of the given tenants (reads,
order and driver creation, assign-and-complete), 1 % with an unknown key,
1 % with a malformed body. Stops after --seconds or --max-requests, whichever
comes first; no request waits longer than --timeout. Prints one JSON object:
requests, answers by status, by kind, timeouts, connection errors, valid
requests refused (401/429), latency percentiles.
"""

import argparse
import http.client
import json
import random
import secrets
import string
import sys
import threading
import time
import urllib.parse

ACCEPT = "application/json, text/event-stream"
MALFORMED = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"',
    b"not json at all",
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}}',
    b"\xff\xfe\x00{",
    b"[" * 300 + b"]" * 300,
]


def unknown_key():
    alphabet = string.ascii_letters + string.digits + "-_"
    return "fm_" + "".join(secrets.choice(alphabet) for _ in range(43))


def tool(name, arguments, id_):
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode()


def order_args(rng):
    return {"customer_name": "Soak Customer %d" % rng.randrange(10**6),
            "delivery_address": "%d Soak Street" % rng.randrange(1000),
            "delivery_lat": 48.8 + rng.random() / 10, "delivery_lng": 2.3 + rng.random() / 10,
            "expected_delivery_time": "2030-01-01T12:00:00Z", "weight_kg": 2.0}


def driver_args(rng):
    return {"name": "Soak Driver %d" % rng.randrange(10**6), "vehicle_type": "van",
            "current_address": "Depot", "current_lat": 48.85, "current_lng": 2.35}


# (weight, kind, arguments maker): what a valid request does.
READS = [
    (30, "whoami", lambda rng: {}),
    (12, "count_orders", lambda rng: {}),
    (12, "fetch_orders", lambda rng: {"limit": 10}),
    (8, "get_incomplete_orders", lambda rng: {"limit": 10}),
    (8, "search_orders", lambda rng: {"search_term": "Soak Customer %d" % rng.randrange(10)}),
    (8, "fetch_drivers", lambda rng: {"limit": 10}),
    (6, "get_available_drivers", lambda rng: {"limit": 5}),
    (5, "count_drivers", lambda rng: {}),
    (4, "create_order", order_args),
    (2, "create_driver", driver_args),
]
DELIVERY_WEIGHT = 5   # create order, auto-assign, complete (three requests)


class Done(Exception):
    """The plan is spent: the worker stops."""


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_status = {}
        self.by_kind = {}
        self.timeouts = 0
        self.connection_errors = 0
        self.valid_refused = 0
        # Valid requests answered 200 with a JSON-RPC error, or a tool error.
        self.rpc_errors = 0
        self.tool_errors = 0
        self.problems = {}
        self.latencies = []

    def add(self, kind, status, latency):
        with self.lock:
            self.requests += 1
            self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
            per_kind = self.by_kind.setdefault(kind, {})
            per_kind[str(status)] = per_kind.get(str(status), 0) + 1
            if latency is not None:
                self.latencies.append(latency)

    def problem(self, category, example):
        """Counts a problem under `category`, keeping its first example."""
        with self.lock:
            entry = self.problems.setdefault(category, [0, example])
            entry[0] += 1


class Worker(threading.Thread):
    def __init__(self, n, opts, plan, tally):
        super().__init__(daemon=True)
        self.rng = random.Random(n * 7919 + int(time.time()))
        self.opts, self.plan, self.tally = opts, plan, tally
        url = urllib.parse.urlsplit(opts.url)
        self.host, self.port, self.path = url.hostname, url.port or 80, url.path or "/mcp"
        self.conn = None
        self.id = 0
        # What the connection answered last, to tell what a broken one followed.
        self.last = "nothing (new connection)"

    def post(self, kind, body, key, expect_valid):
        """One request; returns the parsed JSON answer or None."""
        if not self.plan.take():
            raise Done
        self.id += 1
        headers = {"Content-Type": "application/json", "Accept": ACCEPT,
                   "MCP-Protocol-Version": "2025-11-25", "Authorization": "Bearer " + key}
        started = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.opts.timeout)
                self.last = "nothing (new connection)"
            self.conn.request("POST", self.path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            status = response.status
            self.last = "%s %s" % (kind, status)
            if response.getheader("connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
        except TimeoutError:
            self.tally.add(kind, "timeout", None)
            with self.tally.lock:
                self.tally.timeouts += 1
            self.tally.problem("timeout", "%s: no answer within %ss" % (kind, self.opts.timeout))
            self.reset()
            return None
        except (OSError, http.client.HTTPException) as err:
            self.tally.add(kind, "connection_error", None)
            with self.tally.lock:
                self.tally.connection_errors += 1
            self.tally.problem("connection error after %s" % self.last, "%s: %s" % (kind, err))
            self.reset()
            return None
        self.tally.add(kind, status, time.monotonic() - started)
        if status >= 500 and status != 503:
            self.tally.problem("HTTP %d" % status, "%s: %s" % (kind, data[:200]))
        if expect_valid and status in (401, 429):
            with self.tally.lock:
                self.tally.valid_refused += 1
            self.tally.problem("valid key refused with %d" % status, "%s: %s" % (kind, data[:200]))
        if status != 200:
            return None
        try:
            answer = json.loads(data)
        except ValueError:
            self.tally.problem("HTTP 200, body not JSON", "%s: %s" % (kind, data[:200]))
            return None
        if expect_valid and "error" in answer:
            with self.tally.lock:
                self.tally.rpc_errors += 1
            self.tally.problem("valid request, JSON-RPC error %s" % answer["error"].get("code"),
                              "%s: %s" % (kind, json.dumps(answer["error"])[:200]))
        elif expect_valid and (answer.get("result") or {}).get("isError"):
            with self.tally.lock:
                self.tally.tool_errors += 1
            text = " ".join(c.get("text", "") for c in answer["result"].get("content", []))
            self.tally.problem("tool error from %s (expected for some)" % kind, text[:200])
        return answer

    def reset(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def valid(self):
        keys = self.opts.keys
        key = keys[self.rng.randrange(len(keys))]
        total = sum(w for w, _, _ in READS) + DELIVERY_WEIGHT
        pick = self.rng.uniform(0, total)
        if pick >= total - DELIVERY_WEIGHT:
            return self.delivery(key)
        for weight, name, make in READS:
            pick -= weight
            if pick < 0:
                self.post(name, tool(name, make(self.rng), self.id + 1), key, True)
                return

    def delivery(self, key):
        """An order through its whole life: create, auto-assign, complete."""
        answer = self.post("create_order", tool("create_order", order_args(self.rng), self.id + 1), key, True)
        order_id = (((answer or {}).get("result") or {}).get("structuredContent") or {}) \
            .get("order", {}).get("order_id")
        if not order_id:
            return
        answer = self.post("auto_assign_order", tool("auto_assign_order", {"order_id": order_id}, self.id + 1),
                           key, True)
        content = ((answer or {}).get("result") or {}).get("structuredContent") or {}
        assignment = (content.get("assignment") or {}).get("assignment_id")
        if not assignment:
            return   # no free driver right now: fine
        self.post("complete_delivery",
                  tool("complete_delivery", {"assignment_id": assignment, "confirm": True}, self.id + 1),
                  key, True)

    def run(self):
        try:
            while self.plan.open():
                pick = self.rng.random()
                if pick < self.opts.unknown_rate:
                    self.post("unknown_key", tool("whoami", {}, self.id + 1), unknown_key(), False)
                elif pick < self.opts.unknown_rate + self.opts.malformed_rate:
                    key = self.opts.keys[0]
                    self.post("malformed_body", self.rng.choice(MALFORMED), key, False)
                else:
                    self.valid()
        except Done:
            pass
        finally:
            self.reset()


class Plan:
    def __init__(self, seconds, max_requests):
        self.deadline = time.monotonic() + seconds
        self.left = max_requests
        self.lock = threading.Lock()

    def open(self):
        return time.monotonic() < self.deadline and self.left > 0

    def take(self):
        with self.lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                return False
            self.left -= 1
            return True


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(len(values) * p + 0.999999) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--keys", required=True, help="comma-separated fm_ keys (one per tenant)")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--unknown-rate", type=float, default=0.01)
    parser.add_argument("--malformed-rate", type=float, default=0.01)
    parser.add_argument("--max-requests", type=int, default=5_000_000)
    parser.add_argument("--timeout", type=float, default=10)
    opts = parser.parse_args()
    opts.keys = [k for k in opts.keys.split(",") if k]
    host = urllib.parse.urlsplit(opts.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("soak_driver: loopback servers only")

    tally = Tally()
    plan = Plan(opts.seconds, opts.max_requests)
    started = time.monotonic()
    workers = [Worker(n, opts, plan, tally) for n in range(opts.connections)]
    for w in workers:
        w.start()
    for w in workers:
        # A worker finishes its last request within --timeout of the deadline.
        w.join(timeout=max(0.0, plan.deadline - time.monotonic()) + 2 * opts.timeout + 5)
    elapsed = time.monotonic() - started
    with tally.lock:
        fivexx = sum(n for s, n in tally.by_status.items() if s.isdigit() and int(s) >= 500 and s != "503")
        print(json.dumps({
            "seconds": round(elapsed, 1),
            "requests": tally.requests,
            "rps": round(tally.requests / max(elapsed, 1e-9), 1),
            "by_status": dict(sorted(tally.by_status.items())),
            "by_kind": tally.by_kind,
            "5xx_not_503": fivexx,
            "timeouts": tally.timeouts,
            "connection_errors": tally.connection_errors,
            "valid_key_refused": tally.valid_refused,
            "valid_rpc_errors": tally.rpc_errors,
            "valid_tool_errors": tally.tool_errors,
            "p50_ms": round(percentile(tally.latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 2),
            "max_ms": round(max(tally.latencies, default=0) * 1000, 2),
            "stuck_workers": sum(1 for w in workers if w.is_alive()),
            "problems": tally.problems,
        }))


if __name__ == "__main__":
    main()
