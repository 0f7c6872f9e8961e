#!/usr/bin/env python3
"""Hammers MCP replicas with whoami calls for a fixed time (bench/limits_replicas.sh).

    limits_driver.py DURATION_S KEY URL [URL ...]

Two threads per URL, each on its own keep-alive connection, send
`tools/call whoami` as fast as answers come. A refused connection (a replica
restarting) is retried every 50 ms. Prints one JSON object: per URL the
counts of 200, 429 and other answers and of connection failures, and per
second the 200s of all URLs together. 127.0.0.1 only; stops at DURATION.
"""
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse

BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "whoami", "arguments": {}}})


def hammer(url, key, stop_at, tally, per_second, start, lock):
    parsed = urlparse(url)
    assert parsed.hostname in ("127.0.0.1", "localhost"), "127.0.0.1 only"
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    conn = None
    while time.monotonic() < stop_at:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
            conn.request("POST", parsed.path, BODY, headers)
            response = conn.getresponse()
            response.read()
            status = response.status
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            with lock:
                tally["down"] += 1
            time.sleep(0.05)
            continue
        second = int(time.monotonic() - start)
        with lock:
            key_name = {200: "ok", 429: "limited"}.get(status, "other")
            tally[key_name] += 1
            if status == 200:
                per_second[second] = per_second.get(second, 0) + 1


def main():
    duration, key, urls = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    start = time.monotonic()
    stop_at = start + duration
    lock = threading.Lock()
    tallies = {url: {"ok": 0, "limited": 0, "other": 0, "down": 0} for url in urls}
    per_second = {}
    threads = [threading.Thread(target=hammer,
                                args=(url, key, stop_at, tallies[url], per_second, start, lock))
               for url in urls for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"replicas": tallies,
                      "ok_total": sum(t["ok"] for t in tallies.values()),
                      "ok_per_second": [per_second.get(s, 0) for s in range(int(duration) + 1)]}))


if __name__ == "__main__":
    main()
