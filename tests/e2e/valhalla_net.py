"""The Rust tests' road network (tests/it/support/valhalla.rs), served by a
real Valhalla for the e2e sessions: the same four streets (and houses and
town, which a road engine ignores) written as OSM XML, turned into .osm.pbf by pyosmium, into tiles by valhalla_build_tiles,
served by valhalla_service on 127.0.0.1.

A port of the Rust builder (the e2e suite is Python and starts no cargo
test); the Rust test routing_assign::the_nearer_by_road_wins checks that
`network_xml` here writes byte for byte what valhalla.rs writes. Needs the
Python of tests/support/valhalla_env.sh (pyvalhalla + osmium). Stdlib
otherwise.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request

# The corners of the test block and a bend east of it: (lat, lng).
SW = (52.5000, 13.4000)
NW = (52.5050, 13.4000)
NE = (52.5050, 13.4080)
SE = (52.5000, 13.4080)
BEND = (52.5025, 13.4140)

STREETS = [
    ("First Street", [SW, NW]),
    ("Second Street", [NW, NE]),
    ("Third Street", [SW, SE]),
    ("Fourth Street", [SE, BEND, NE]),
]

# The town, and the houses with an address: (number, street, door).
TOWN = "Testville"
POSTCODE = "10999"
HOUSES = [
    ("12", "Second Street", (52.5051, 13.4040)),
    ("3", "Third Street", (52.4999, 13.4020)),
]


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle metres (the server's earth radius, 6371 km)."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h)) * 1000


def length_of(names: list[str]) -> float:
    """Metres along the named streets."""
    total = 0.0
    for name in names:
        points = dict(STREETS)[name]
        total += sum(haversine_m(p, q) for p, q in zip(points, points[1:]))
    return total


def network_xml(blocked: list[str]) -> str:
    nodes = [SW, NW, NE, SE, BEND]
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="fleetmind-test">']
    for i, (lat, lng) in enumerate(nodes, start=1):
        out.append(f'  <node id="{i}" version="1" lat="{lat}" lon="{lng}"/>')
    for i, (number, street, (lat, lng)) in enumerate(HOUSES):
        out.append(f'  <node id="{11 + i}" version="1" lat="{lat}" lon="{lng}">'
                   f'<tag k="addr:housenumber" v="{number}"/><tag k="addr:street" v="{street}"/>'
                   f'<tag k="addr:city" v="{TOWN}"/><tag k="addr:postcode" v="{POSTCODE}"/></node>')
    out.append(f'  <node id="20" version="1" lat="52.5025" lon="13.404">'
               f'<tag k="place" v="town"/><tag k="name" v="{TOWN}"/></node>')
    for w, (name, points) in enumerate(STREETS):
        refs = "".join(f'<nd ref="{nodes.index(p) + 1}"/>' for p in points)
        tags = f'<tag k="highway" v="residential"/><tag k="name" v="{name}"/>'
        if name in blocked:
            tags += '<tag k="access" v="no"/>'
        out.append(f'  <way id="{100 + w}" version="1">{refs}{tags}</way>')
    return "\n".join(out + ["</osm>", ""])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Valhalla:
    """valhalla_service on the network (with `blocked` streets closed) in
    `workdir`, until `stop`."""

    def __init__(self, python: str, workdir: str, blocked: list[str]):
        os.makedirs(workdir, exist_ok=True)
        run = lambda what, cmd: _run(what, cmd, workdir)  # noqa: E731
        with open(os.path.join(workdir, "net.osm"), "w", encoding="utf-8") as f:
            f.write(network_xml(blocked))
        run("osm to pbf", [python, "-c", "import osmium\nw = osmium.SimpleWriter('net.osm.pbf')\n"
                           "for o in osmium.FileProcessor('net.osm'): w.add(o)\nw.close()"])
        self.port = _free_port()
        config = run("valhalla_build_config", [
            python, "-m", "valhalla.valhalla_build_config",
            "--mjolnir-tile-dir", os.path.join(workdir, "tiles"),
            "--mjolnir-tile-extract", "", "--mjolnir-timezone", "", "--mjolnir-admin", "",
            "--httpd-service-listen", f"tcp://127.0.0.1:{self.port}",
            "--httpd-service-loopback", f"ipc://{os.path.join(workdir, 'loopback')}",
            "--httpd-service-interrupt", f"ipc://{os.path.join(workdir, 'interrupt')}"])
        json.loads(config)
        config_path = os.path.join(workdir, "valhalla.json")
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(config)
        bin_dir = run("valhalla print_bin_path", [python, "-m", "valhalla", "print_bin_path"]).strip()
        run("valhalla_build_tiles", [os.path.join(bin_dir, "valhalla_build_tiles"), "-c", config_path,
                                     "net.osm.pbf"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([os.path.join(bin_dir, "valhalla_service"), config_path, "1"],
                                     cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/status", timeout=2)
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("valhalla_service did not start in 30 s")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _run(what: str, cmd: list[str], cwd: str) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    return done.stdout
