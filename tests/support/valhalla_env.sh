#!/usr/bin/env bash
# A Python environment with the real Valhalla (pyvalhalla's wheel ships
# valhalla_build_tiles and valhalla_service) and pyosmium (to write the test
# network as .osm.pbf), for tests/it/routing.rs. pyvalhalla's current wheel is
# abi3 for CPython >= 3.12; the machine's python3 is 3.11, so a 3.12+
# interpreter is looked for (PATH, then pyenv's versions).
# Idempotent. `--print` prints the interpreter's path and does nothing else.
set -euo pipefail
home="${FLEETMIND_VALHALLA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmind-valhalla}"
python="$home/bin/python"
req="$(dirname "$0")/valhalla_requirements.txt"
if [ "${1:-}" = "--print" ]; then
    echo "$python"
    exit 0
fi
stamp="$home/.stamp"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "valhalla env up to date: $home"
    exit 0
fi
base=""
for candidate in python3.13 python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        base="$candidate"
        break
    fi
done
if [ -z "$base" ]; then
    echo "no Python 3.12 or newer found for pyvalhalla's wheel" >&2
    exit 1
fi
rm -rf "$home"
"$base" -m venv "$home"
"$python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "valhalla env ready: $home"
