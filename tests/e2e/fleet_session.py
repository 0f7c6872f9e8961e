#!/usr/bin/env python3
"""A scripted delivery through mcp-remote (the stdio<->HTTP proxy Claude
Desktop uses) against the real fleetmind binary: create a driver and an
order, auto-assign, complete the delivery, read the order back.

  python3 tests/e2e/fleet_session.py [--binary target/debug/fleetmind]
      --mcp-remote PATH/node_modules/mcp-remote/dist/proxy.js
      [--database-url sqlite://...]   (default: a fresh SQLite file)

Starts the server on a free 127.0.0.1 port with a key issued by
`fleetmind keys create`, drives mcp-remote over stdio with JSON-RPC, prints
the session (the key masked), and stops both processes by PID. Exit 0 only
if every step gave the expected result. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Stdio:
    """Newline-delimited JSON-RPC over a child's stdin/stdout."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)
        self.buf = b""
        self.next_id = 1

    def send(self, msg: dict) -> None:
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method: str, params: dict, timeout: float = 30) -> dict:
        rid = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if not line.strip():
                    continue
                msg = json.loads(line)
                if msg.get("id") == rid:
                    return msg
            for _ in self.sel.select(timeout=max(0.0, deadline - time.time())):
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"mcp-remote closed its stdout during {method}")
                self.buf += chunk
        raise RuntimeError(f"{method}: no answer in {timeout}s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/debug/fleetmind"))
    # No default: mcp-remote lives outside the repository (tests/e2e/run.sh
    # installs it under $FLEETMIND_E2E_HOME and passes the path).
    ap.add_argument("--mcp-remote", required=True,
                    help="mcp-remote's dist/proxy.js (tests/e2e/run.sh installs it)")
    ap.add_argument("--database-url")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="fleet-session-")
    db = args.database_url or f"sqlite://{tmp.name}/fleetmind.db"
    # `keys` never creates a database; `migrate` does.
    subprocess.run([args.binary, "--database-url", db, "--log", "error", "migrate"],
                   check=True, capture_output=True, text=True)
    issued = json.loads(subprocess.run(
        [args.binary, "--database-url", db, "--log", "error", "keys", "create",
         "--email", "dispatch@example.com", "--json"],
        check=True, capture_output=True, text=True).stdout)
    key = issued["api_key"]
    mask = lambda text: text.replace(key, "fm_***")  # noqa: E731

    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    server = subprocess.Popen(
        [args.binary, "--database-url", db, "--log", "warn", "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp.name, "server.log"), "wb"),
        start_new_session=True)
    remote = None
    ok = True
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, MCP_REMOTE_CONFIG_DIR=os.path.join(tmp.name, "mcp-auth"), BROWSER="true")
        remote = subprocess.Popen(
            ["node", args.mcp_remote, url, "--header", f"Authorization: Bearer {key}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(os.path.join(tmp.name, "mcp-remote.log"), "wb"), env=env,
            start_new_session=True)
        rpc = Stdio(remote)
        version = subprocess.run(["node", "-e", f"console.log(require('{os.path.dirname(os.path.dirname(args.mcp_remote))}/package.json').version)"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"mcp-remote {version} -> {url} (key fm_*** as Authorization: Bearer)")
        init = rpc.request("initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "fleet-session", "version": "1"}})
        info = init["result"]["serverInfo"]
        print(f"initialize -> {info['name']} {info['version']}, protocol {init['result']['protocolVersion']}")
        rpc.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = rpc.request("tools/list", {})["result"]["tools"]
        print(f"tools/list -> {len(tools)} tools")

        def call(name: str, arguments: dict, show) -> dict:
            nonlocal ok
            answer = rpc.request("tools/call", {"name": name, "arguments": arguments})
            result = answer.get("result") or {}
            data = result.get("structuredContent")
            text = "".join(c.get("text", "") for c in result.get("content", []))
            if "error" in answer or result.get("isError") or data is None or json.loads(text) != data:
                ok = False
                print(f"FAIL {name}: {mask(json.dumps(answer))[:500]}")
                return {}
            print(f"{name} {mask(json.dumps(arguments))}\n  -> {show(data)}")
            return data

        driver = call("create_driver", {
            "name": "Dana Driver", "vehicle_type": "van", "current_address": "Depot, 1 Quai de la Gare",
            "current_lat": 48.8339, "current_lng": 2.3760, "skills": ["fragile_handler"]},
            lambda d: f"{d['driver']['driver_id']} status={d['driver']['status']}")
        order = call("create_order", {
            "customer_name": "Olive Customer", "delivery_address": "10 Rue de Rivoli, Paris",
            "delivery_lat": 48.8556, "delivery_lng": 2.3600,
            "expected_delivery_time": "2099-01-01T12:00:00Z", "weight_kg": 12, "is_fragile": True},
            lambda d: f"{d['order']['order_id']} status={d['order']['status']}")
        oid = order.get("order", {}).get("order_id", "ORD-?")
        assigned = call("auto_assign_order", {"order_id": oid},
                        lambda d: f"{d['assignment']['assignment_id']} driver={d['driver']['driver_id']} "
                                  f"({d['driver']['status']}) order={d['order']['status']} "
                                  f"distance_km={d['distance_km']} eta_min={d['estimated_duration_minutes']}\n"
                                  f"     reason: {d['reason']}")
        aid = assigned.get("assignment", {}).get("assignment_id", "ASN-?")
        done = call("complete_delivery", {"assignment_id": aid, "confirm": True, "actual_distance_meters": 2600},
                    lambda d: f"assignment={d['assignment']['status']} order={d['order']['status']} "
                              f"({d['order']['delivery_status']}) driver={d['driver']['status']} "
                              f"at {d['driver']['current_address']}")
        final = call("get_order_details", {"order_id": oid},
                     lambda d: f"{d['order']['order_id']} status={d['order']['status']} "
                               f"delivered_at={d['order']['delivered_at']}")
        expected = (driver.get("driver", {}).get("driver_id") == assigned.get("driver", {}).get("driver_id")
                    and done.get("order", {}).get("status") == "delivered"
                    and final.get("order", {}).get("status") == "delivered")
        ok = ok and expected
    except Exception as exc:  # noqa: BLE001 - report any failure as FAIL
        ok = False
        print(f"FAIL: {mask(str(exc))}")
    finally:
        if remote is not None:
            stop(remote)
        stop(server)
        tmp.cleanup()
    print("RESULT: PASS" if ok else "RESULT: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
