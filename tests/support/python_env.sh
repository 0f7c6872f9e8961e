#!/usr/bin/env bash
# A pinned Python environment for the predecessor-compatibility test (it runs
# the Python server's own key module against the same Postgres database).
# Idempotent. `--print` prints the interpreter's path and does nothing else.
set -euo pipefail
home="${FLEETMIND_PY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmind-py}"
python="$home/bin/python"
req="$(dirname "$0")/requirements.txt"
if [ "${1:-}" = "--print" ]; then
    echo "$python"
    exit 0
fi
stamp="$home/.stamp"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "python env up to date: $home"
    exit 0
fi
python3 -m venv "$home"
"$python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "python env ready: $home"
