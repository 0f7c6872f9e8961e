#!/usr/bin/env python3
"""Plays Claude Desktop for one entry of a claude_desktop_config.json.

Usage: desktop.py CONFIG [SERVER] [--protocol V] [--timeout S]

Starts the entry's `command` with its `args` and `env` exactly as written
(Claude Desktop expands nothing; mcp-remote itself expands ${VAR} in headers),
then speaks MCP on its stdio: initialize, notifications/initialized,
tools/list, tools/call whoami, prompts/list. Prints the conversation and the
child's stderr, keys masked as fm_***. Exit 0 when whoami answered.
The suite calls `converse` with the pinned mcp-remote in place of `npx`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402

KEY_RE = re.compile(r"fm_[A-Za-z0-9_-]{43}")


def masked(text: str) -> str:
    return KEY_RE.sub("fm_***", suite.mask(text))


def converse(command: list[str], env: dict[str, str], workdir: Path, protocol: str = "2025-11-25",
             timeout: float = 60) -> dict[str, Any]:
    """One desktop session with a stdio MCP server; returns the transcript."""
    cfg = workdir / "mcp-auth"
    cfg.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, MCP_REMOTE_CONFIG_DIR=str(cfg), BROWSER="true", **env)
    s = suite.Stdio(command, full_env, workdir / "server.stderr")
    lines: list[str] = []
    out: dict[str, Any] = {"lines": lines}
    t0 = time.monotonic()

    def exchange(rid: int, method: str, params: dict) -> tuple[str, Any]:
        lines.append(f"-> {method} {json.dumps(params)}")
        kind, res = s.request(rid, method, params, timeout)
        lines.append(f"<- {kind}: {json.dumps(res)[:400]}")
        return kind, res

    try:
        kind, res = exchange(1, "initialize", {"protocolVersion": protocol, "capabilities": {},
                                               "clientInfo": {"name": "claude-ai", "version": "0.1.0"}})
        if kind == "result":
            out["protocol"] = res.get("protocolVersion")
            s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            lines.append("-> notifications/initialized")
            kind, res = exchange(2, "tools/list", {})
            out["tools"] = [t["name"] for t in (res or {}).get("tools", [])]
            kind, res = exchange(3, "tools/call", {"name": "whoami", "arguments": {}})
            out["whoami"] = (res or {}).get("structuredContent") if kind == "result" else None
            kind, res = exchange(4, "prompts/list", {})
            out["prompts"] = [p["name"] for p in (res or {}).get("prompts", [])] if kind == "result" else []
    finally:
        rc, err = s.close()
    out["rc"], out["stderr"], out["seconds"] = rc, err, time.monotonic() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("server", nargs="?")
    ap.add_argument("--protocol", default="2025-11-25")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    servers = json.loads(Path(a.config).read_text())["mcpServers"]
    name = a.server or next(iter(servers))
    entry = servers[name]
    command = [entry["command"], *entry.get("args", [])]
    print(f"$ {masked(' '.join(command))}   # server '{name}'")
    with tempfile.TemporaryDirectory(prefix="fleetmind-desktop.") as tmp:
        out = converse(command, entry.get("env", {}), Path(tmp), a.protocol, a.timeout)
    for line in out["lines"]:
        print(masked(line))
    print("--- stderr ---")
    print(masked(out["stderr"]).rstrip())
    print(f"--- exit {out['rc']} after {out['seconds']:.1f}s")
    return 0 if out.get("whoami") else 1


if __name__ == "__main__":
    sys.exit(main())
