#!/usr/bin/env python3
"""One run of the official MCP Python SDK (PyPI `mcp`) against FleetMind.

Usage: py_client.py URL [--query] [--mode auto|legacy] [--timeout S]
The key comes from $FM_KEY (never argv); empty or unset sends none.
--query sends it as ?api_key= instead of `Authorization: Bearer`.

Connects, lists tools (all pages), calls `whoami`; when the server offers
prompts, lists them, gets each with example arguments and asks for a
completion of the first argument it can. Prints one JSON object on stdout:
protocol version, tools, whoami's answer, prompts, the error message if the
connection failed, and the HTTP status of every request (an httpx hook: the
SDK itself hides statuses). Exit 0 when connected and every step worked,
1 otherwise, 4 on timeout. Adapted from the shared MCP client harness.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Example arguments for FleetMind's prompts (their schemas have no examples).
PROMPT_ARGS = {"assignment_review": {"order_id": "ORD-E2E-1"}}


def with_query_key(url: str, key: str) -> str:
    parts = urlsplit(url)
    q = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "api_key"]
    q.append(("api_key", key))
    return urlunsplit(parts._replace(query=urlencode(q)))


def first_error(e: BaseException) -> BaseException:
    try:
        from builtins import BaseExceptionGroup as group
    except ImportError:  # pragma: no cover - Python 3.10
        from exceptiongroup import BaseExceptionGroup as group
    while isinstance(e, group) and e.exceptions:
        e = e.exceptions[0]
    return e


async def run(args: argparse.Namespace, out: dict[str, Any]) -> int:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.exceptions import MCPError

    key = os.environ.get("FM_KEY", "")
    url, headers = args.url, {}
    if key:
        if args.query:
            url = with_query_key(url, key)
        else:
            headers["Authorization"] = f"Bearer {key}"
    http_log: list[str] = []

    async def on_response(resp: Any) -> None:
        http_log.append(f"{resp.request.method}:{resp.status_code}")

    http_client = create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(args.timeout))
    http_client.event_hooks["response"].append(on_response)
    t0 = time.monotonic()
    rc = 0
    try:
        with anyio.fail_after(args.timeout):
            async with http_client:
                transport = streamable_http_client(url, http_client=http_client)
                async with Client(transport, mode=args.mode, read_timeout_seconds=args.timeout) as client:
                    out["protocol_version"] = client.protocol_version
                    si = client.server_info
                    out["server"] = f"{si.name} {si.version}" if si else None
                    caps = client.server_capabilities.model_dump(exclude_none=True)
                    out["capabilities"] = sorted(k for k, v in caps.items() if v is not None)
                    tools, cursor = [], None
                    for _ in range(50):
                        page = await client.list_tools(cursor=cursor)
                        tools.extend(t.name for t in page.tools)
                        cursor = page.next_cursor
                        if not cursor:
                            break
                    out["tools"] = tools
                    res = await client.call_tool("whoami", {})
                    out["whoami"] = res.structured_content
                    if res.is_error:
                        out["error"] = "whoami returned isError=true"
                        rc = 1
                    if "prompts" in out["capabilities"]:
                        rc |= await exercise_prompts(client, out)
    except TimeoutError:
        out["error"] = f"timed out after {args.timeout}s"
        rc = 4
    except MCPError as e:
        out["error"] = e.error.message if getattr(e, "error", None) else str(e)
        rc = 1
    except BaseException as e:  # noqa: BLE001 - report anything, incl. groups
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        inner = first_error(e)
        out["error"] = f"{type(inner).__name__}: {inner}"
        rc = 1
    out["elapsed_s"] = round(time.monotonic() - t0, 3)
    out["http"] = http_log[:40]
    return rc


async def exercise_prompts(client: Any, out: dict[str, Any]) -> int:
    from mcp_types import PromptReference

    listed = await client.list_prompts()
    out["prompts"] = {}
    rc = 0
    for p in listed.prompts:
        args = PROMPT_ARGS.get(p.name, {})
        got = await client.get_prompt(p.name, args)
        text = " ".join(getattr(m.content, "text", "") for m in got.messages)
        out["prompts"][p.name] = {"messages": len(got.messages), "chars": len(text), "text_head": text[:120]}
        if not got.messages or not text:
            rc = 1
        for arg in p.arguments or []:
            done = await client.complete(PromptReference(type="ref/prompt", name=p.name), {"name": arg.name, "value": ""})
            out.setdefault("completions", {})[f"{p.name}.{arg.name}"] = done.completion.values[:5]
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--query", action="store_true")
    ap.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    import anyio

    out: dict[str, Any] = {"mode": a.mode, "key_via": "query" if a.query else "header"}
    rc = anyio.run(run, a, out)
    key = os.environ.get("FM_KEY", "")
    text = json.dumps(out)
    if key:
        text = text.replace(key, "fm_***")
    print(text)
    return rc


if __name__ == "__main__":
    sys.exit(main())
