#!/usr/bin/env python3
"""A Claude session through mcp-remote with a road engine (issue 14): save a
depot, route from it to an order's address, assign the order by road.

  python3 tests/e2e/routing_session.py --mcp-remote PATH/node_modules/mcp-remote/dist/proxy.js
      [--binary target/debug/fleetmind] [--valhalla-python PY] [--write]

Builds the Rust tests' road network (tests/e2e/valhalla_net.py) with Second
Street closed, serves it with a real Valhalla, starts the real binary with
`serve --routing-url` of it and a key from `fleetmind keys create`, and
speaks MCP through mcp-remote over stdio as Claude Desktop does. The driver
nearer the order by the straight line is 2.1 km away by road (round the
closed street), the other 1 km: the assignment must go to the other one,
with the route by road stored.

The session, with what changes from run to run masked (ids, times, ports,
the key), is the block `<!-- transcript:routing-session -->` of
docs/tools.md: a drift is a failure (exit 1 with a diff); `--write` puts the
new block in instead. Every process is stopped by PID. Exit 0 only if every
step gave the expected answer and the docs match. Stdlib only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(ROOT, "docs", "tools.md")
sys.path.insert(0, HERE)
import valhalla_net as net  # noqa: E402
from fleet_session import Stdio, free_port, stop  # noqa: E402
from transcript import replace_blocks  # noqa: E402


def masker(key: str, port: int, engine_port: int):
    """Masks what changes from run to run: the key, ids, the ports (shown
    as the defaults, 8787 for the server, 8002 for Valhalla)."""
    def mask(text: str) -> str:
        text = text.replace(key, "fm_***")
        text = re.sub(r"\b(ORD|DRV|ASN)-[0-9A-F]{12}\b", lambda m: f"{m.group(1)}-…", text)
        text = text.replace(f"127.0.0.1:{port}", "127.0.0.1:8787")
        return text.replace(f"127.0.0.1:{engine_port}", "127.0.0.1:8002")
    return mask


def valhalla_python(given: str | None) -> str:
    python = given or os.environ.get("FLEETMIND_TEST_VALHALLA") or subprocess.run(
        ["bash", os.path.join(ROOT, "tests", "support", "valhalla_env.sh"), "--print"],
        capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    try:
        usable = subprocess.run([python, "-c", "import valhalla, osmium"], capture_output=True,
                                timeout=60).returncode == 0
    except OSError:
        usable = False
    if not usable:
        raise RuntimeError(f"'{python}' has no valhalla and osmium: run tests/support/valhalla_env.sh "
                           "(it prints the Python with --print)")
    return python


def session(binary: str, proxy: str, python: str, tmp: str) -> tuple[bool, list[str]]:
    lines: list[str] = []
    checks: list[tuple[str, bool]] = []
    engine = net.Valhalla(python, os.path.join(tmp, "valhalla"), blocked=["Second Street"])
    server = remote = None
    try:
        db = f"sqlite://{tmp}/fleetmind.db"
        subprocess.run([binary, "--database-url", db, "--log", "error", "migrate"],
                       check=True, capture_output=True, text=True, timeout=60)
        issued = json.loads(subprocess.run(
            [binary, "--database-url", db, "--log", "error", "keys", "create",
             "--email", "dispatch@example.com", "--json"],
            check=True, capture_output=True, text=True, timeout=60).stdout)
        key = issued["api_key"]
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        server = subprocess.Popen(
            [binary, "--database-url", db, "--log", "warn", "serve", "--bind", f"127.0.0.1:{port}",
             "--routing-url", engine.url],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "server.log"), "wb"),
            start_new_session=True)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        lines.append(f"$ fleetmind serve --routing-url {engine.url}   # Valhalla on the test streets, "
                     "Second Street closed")
        lines.append(f"$ npx -y mcp-remote@0.15.1 {url} --header 'Authorization: Bearer fm_***'")
        env = dict(os.environ, MCP_REMOTE_CONFIG_DIR=os.path.join(tmp, "mcp-auth"), BROWSER="true")
        remote = subprocess.Popen(
            ["node", proxy, url, "--header", f"Authorization: Bearer {key}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(os.path.join(tmp, "mcp-remote.log"), "wb"), env=env, start_new_session=True)
        rpc = Stdio(remote)
        init = rpc.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                          "clientInfo": {"name": "claude-ai", "version": "0.1.0"}})
        lines.append(f"initialize -> {init['result']['serverInfo']['name']}, "
                     f"protocol {init['result']['protocolVersion']}")
        rpc.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        names = {t["name"] for t in rpc.request("tools/list", {})["result"]["tools"]}
        wanted = {"save_place", "calculate_route", "auto_assign_order"}
        checks.append(("tools/list has the routing tools", wanted <= names))

        def call(name: str, arguments: dict) -> dict:
            answer = rpc.request("tools/call", {"name": name, "arguments": arguments})
            result = answer.get("result") or {}
            data = result.get("structuredContent")
            if "error" in answer or result.get("isError") or data is None:
                raise RuntimeError(f"{name}: {json.dumps(answer)[:500]}")
            lines.append(f"-> {name} {json.dumps(arguments)}")
            return data

        depot = {"name": "Depot", "address": "1 Third Street", "lat": net.SW[0], "lng": net.SW[1]}
        saved = call("save_place", depot)
        lines.append(f"<- place {saved['place']['name']!r} at {saved['place']['lat']},{saved['place']['lng']}")
        order = call("create_order", {
            "customer_name": "Olive Customer", "delivery_address": "12 Fourth Street",
            "delivery_lat": net.NE[0], "delivery_lng": net.NE[1],
            "expected_delivery_time": "2099-01-01T12:00:00Z", "weight_kg": 12})["order"]
        lines.append(f"<- {order['order_id']} to {order['delivery_address']!r} "
                     f"({order['delivery_lat']},{order['delivery_lng']})")
        route = call("calculate_route", {"origin": "Depot",
                                         "destination": f"{order['delivery_lat']},{order['delivery_lng']}"})
        lines.append(f"<- {route['distance_meters']:.0f} m, {route['duration_seconds']} s, "
                     f"engine={route['engine']} estimated={str(route['estimated']).lower()}: {route['summary']}")
        by_road = net.length_of(["Third Street", "Fourth Street"])
        checks.append(("the depot route is by road, round the closed street",
                       route["engine"] == "valhalla" and not route["estimated"]
                       and abs(route["distance_meters"] - by_road) <= by_road * 0.01))
        drivers = {}
        for name, (lat, lng) in (("West", net.NW), ("South", net.SE)):
            d = call("create_driver", {"name": name, "vehicle_type": "van", "current_address": f"{name} corner",
                                       "current_lat": lat, "current_lng": lng})["driver"]
            drivers[name] = d["driver_id"]
            line_m = net.haversine_m((lat, lng), net.NE)
            lines.append(f"<- {d['driver_id']} {name} at ({lat},{lng}), {line_m:.0f} m from the order "
                         "by the straight line")
        done = call("auto_assign_order", {"order_id": order["order_id"]})
        way = done["route"]
        lines.append(f"<- {done['driver']['name']} ({done['driver']['driver_id']}): {way['distance_meters']:.0f} m, "
                     f"{way['duration_seconds']} s, engine={way['engine']} "
                     f"estimated={str(way['estimated']).lower()}")
        lines.append(f"   reason: {done['reason']}")
        to_ne = net.length_of(["Fourth Street"])
        checks.append(("assigned to the driver nearer by road",
                       done["driver"]["driver_id"] == drivers["South"] and way["engine"] == "valhalla"
                       and not way["estimated"] and abs(way["distance_meters"] - to_ne) <= to_ne * 0.01))
        stored = call("get_assignment_details",
                      {"assignment_id": done["assignment"]["assignment_id"]})["assignments"][0]
        lines.append(f"<- stored route: {stored['route_distance_meters']:.0f} m, "
                     f"{stored['route_duration_seconds']} s, {stored['route_summary']!r}")
        checks.append(("the stored route is the road one",
                       stored["route_distance_meters"] == way["distance_meters"]
                       and stored["route_duration_seconds"] == way["duration_seconds"]))
        lines = [masker(key, port, engine.port)(line) for line in lines]
    finally:
        if remote is not None:
            stop(remote)
        if server is not None:
            stop(server)
        engine.stop()
    failed = [name for name, good in checks if not good]
    for name in failed:
        print(f"FAIL: {name}")
    return not failed, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "fleetmind"))
    ap.add_argument("--mcp-remote", required=True,
                    help="mcp-remote's dist/proxy.js (tests/e2e/run.sh installs it)")
    ap.add_argument("--valhalla-python",
                    help="the Python of tests/support/valhalla_env.sh (default: $FLEETMIND_TEST_VALHALLA)")
    ap.add_argument("--write", action="store_true", help="write the transcript into docs/tools.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="routing-session-") as tmp:
        try:
            ok, lines = session(args.binary, args.mcp_remote, valhalla_python(args.valhalla_python), tmp)
        except Exception as exc:  # noqa: BLE001 - report any failure as FAIL
            print(f"FAIL: {exc}")
            print("RESULT: FAIL")
            return 1
    text = "\n".join(lines) + "\n"
    print(text, end="")
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    fresh = replace_blocks(doc, {"routing-session": text})
    if fresh != doc and ok and args.write:
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(fresh)
        print("docs/tools.md: routing-session transcript rewritten")
    elif fresh != doc:
        sys.stdout.writelines(difflib.unified_diff(doc.splitlines(keepends=True), fresh.splitlines(keepends=True),
                                                   "docs/tools.md", "a real run"))
        print("FAIL: docs/tools.md drifted from the session; run with --write and review the diff")
        ok = False
    print("RESULT: PASS" if ok else "RESULT: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
