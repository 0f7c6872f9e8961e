#!/usr/bin/env python3
"""The first-start transcript of docs/clients.md, from a real run.

    python3 tests/e2e/transcript.py --clients DIR [--binary target/debug/fleetmind] [--write]

Runs the documented steps in a fresh directory: `fleetmind serve` (the first
start, which prints the admin key and the setup lines), then `fleetmind keys
create` for the dispatcher, then Claude Desktop's side of a session with that
key (tests/e2e/desktop.py through the pinned mcp-remote in DIR, the e2e
suite's client home, in place of `npx`); masks what changes from run to run
(keys as fm_***, the port as the default 8787, the directory as
/home/you/fleet, the key prefix) and compares each block with the
one between its markers in docs/clients.md
(`<!-- transcript:NAME -->` ... `<!-- /transcript:NAME -->`). Exit 1 with a
diff when the docs drifted; `--write` puts the new blocks in instead. The e2e
suite (tests/e2e/run.sh) runs the check.
"""

import argparse
import difflib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "clients.md")
SHOWN_DIR = "/home/you/fleet"
SHOWN_PORT = 8787


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def masker(tmp: str, port: int):
    def mask(text: str) -> str:
        text = re.sub(r"fm_[A-Za-z0-9_-]{43}", "fm_***", text)
        text = text.replace(os.path.realpath(tmp), SHOWN_DIR).replace(tmp, SHOWN_DIR)
        return text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{SHOWN_PORT}")
    return mask


class Server:
    """`fleetmind serve` in `cwd` on a free port, until `stop`; `lines` is
    what it printed on stdout up to saying where it listens."""

    def __init__(self, cwd: str, env: dict):
        self.port = free_port()
        cmd = ["fleetmind", "serve", "--bind", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        # readline returns at the server's exit; this ends a server that says
        # nothing and does not exit.
        watchdog = threading.Timer(30, self.proc.kill)
        watchdog.start()
        try:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("FleetMind MCP listening on "):
                    return
            raise RuntimeError(f"fleetmind serve exited before it listened: {self.lines}")
        except BaseException:
            self.stop()
            raise
        finally:
            watchdog.cancel()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def desktop_block(work: str, env: dict, key: str, clients: str) -> tuple[int, str]:
    """Claude Desktop's side of a session with `key` (step 4 of the page)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import desktop  # noqa: E402  (the e2e suite's own player)

    proxy = os.path.join(clients, "node_modules", "mcp-remote", "dist", "proxy.js")
    if not os.path.isfile(proxy):
        raise RuntimeError(f"no pinned mcp-remote at {proxy} (tests/e2e/run.sh installs it)")
    server = Server(work, env)
    try:
        url = f"http://127.0.0.1:{server.port}/mcp"
        command = [shutil.which("node") or "node", proxy, url, "--header", "Authorization:${FLEETMIND_AUTH}"]
        out = desktop.converse(command, {"FLEETMIND_AUTH": f"Bearer {key}"}, Path(work) / "desktop")
    finally:
        server.stop()
    if not out.get("whoami"):
        raise RuntimeError(f"the desktop session got no whoami answer: {out['lines']} {out['stderr'][-2000:]}")
    shown = ["$ python tests/e2e/desktop.py claude_desktop_config.json fleetmind",
             f"$ npx -y mcp-remote@0.15.1 {url} --header Authorization:${{FLEETMIND_AUTH}}   # server 'fleetmind'",
             *out["lines"], f"--- exit {out['rc']}"]
    text = desktop.masked("\n".join(shown))
    # The key prefix changes with every key, in the structured answer and in
    # its JSON text (quotes escaped there); the user id follows the email.
    text = re.sub(r'(key_prefix\\?"\s*:\s*\\?")fm_[A-Za-z0-9_-]{9}', r"\1fm_…", text)
    return server.port, text


def blocks(binary: str, clients: str) -> dict[str, str]:
    tmp = tempfile.mkdtemp(prefix="fleetmind-transcript-")
    try:
        # `fleetmind` on the PATH, as after `cargo install --path .`.
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        os.symlink(os.path.abspath(binary), os.path.join(bindir, "fleetmind"))
        work = os.path.join(tmp, "fleet")
        os.mkdir(work)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETMIND_", "DATABASE_URL"))}
        env.update(PATH=bindir + os.pathsep + env.get("PATH", ""), FLEETMIND_LOG="warn", NO_COLOR="1")

        first = Server(work, env)
        first.stop()
        port, served = first.port, first.lines
        create = ["fleetmind", "keys", "create", "--email", "dispatcher@example.com", "--name", "Claude Desktop"]
        done = subprocess.run(create, cwd=work, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"keys create failed: {done.stderr}")
        key = re.search(r"fm_[A-Za-z0-9_-]{43}", done.stdout)
        if not key:
            raise RuntimeError("keys create printed no key")
        desktop_port, desktop_text = desktop_block(work, env, key.group(0), clients)
        mask = masker(work, port)
        serve_block = "$ fleetmind serve\n" + "\n".join(served)
        create_block = ('$ fleetmind keys create --email dispatcher@example.com --name "Claude Desktop"\n'
                        + done.stderr + done.stdout)
        return {"serve": mask(serve_block).rstrip() + "\n", "keys-create": mask(create_block).rstrip() + "\n",
                "desktop": masker(work, desktop_port)(desktop_text).rstrip() + "\n"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_blocks(doc: str, new: dict[str, str]) -> str:
    for name, text in new.items():
        pattern = re.compile(
            rf"(<!-- transcript:{re.escape(name)} -->\n```\n)(.*?)(```\n<!-- /transcript:{re.escape(name)} -->)",
            re.S)
        if not pattern.search(doc):
            raise RuntimeError(f"docs/clients.md has no transcript:{name} markers")
        doc = pattern.sub(lambda m: m.group(1) + text + m.group(3), doc)
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "fleetmind"))
    ap.add_argument("--clients", required=True,
                    help="the e2e suite's client home (FLEETMIND_E2E_HOME/<hash>, made by tests/e2e/run.sh)")
    ap.add_argument("--write", action="store_true", help="write the new transcript into docs/clients.md")
    args = ap.parse_args()
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    fresh = replace_blocks(doc, blocks(args.binary, args.clients))
    if fresh == doc:
        print("docs/clients.md: the transcript matches a real run")
        return 0
    if args.write:
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(fresh)
        print("docs/clients.md: transcript rewritten from a real run")
        return 0
    sys.stdout.writelines(difflib.unified_diff(
        doc.splitlines(keepends=True), fresh.splitlines(keepends=True),
        "docs/clients.md", "a real run"))
    print("docs/clients.md drifted from what the binary prints; "
          "run `python3 tests/e2e/transcript.py --write` and review the diff", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
