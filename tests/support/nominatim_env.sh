#!/usr/bin/env bash
# A real Nominatim for the geocoder tests (tests/it/geocoder.rs): Debian's
# PostGIS for the running PostgreSQL, osm2pgsql (the importer Nominatim
# drives) and PyICU, then PyPI's nominatim-db (`nominatim import`) and
# nominatim-api (`nominatim serve`) in a venv of Debian's python3 that sees
# the system's PyICU.
# Idempotent. `--print` prints the `nominatim` command's path and does
# nothing else.
set -euo pipefail
home="${FLEETMIND_NOMINATIM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmind-nominatim}"
nominatim="$home/bin/nominatim"
req="$(dirname "$0")/nominatim_requirements.txt"
if [ "${1:-}" = "--print" ]; then
    echo "$nominatim"
    exit 0
fi

# PostGIS must match the server's major version (15 on Debian 12).
major="$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n1)"
if [ -z "$major" ]; then
    echo "no PostgreSQL cluster under /etc/postgresql: Nominatim needs one" >&2
    exit 1
fi
missing=()
[ -e "/usr/share/postgresql/$major/extension/postgis.control" ] || missing+=("postgresql-$major-postgis-3")
command -v osm2pgsql >/dev/null || missing+=(osm2pgsql)
/usr/bin/python3 -c 'import icu' 2>/dev/null || missing+=(python3-icu)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi

stamp="$home/.stamp"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$nominatim" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "nominatim env up to date: $home"
    exit 0
fi
rm -rf "$home"
/usr/bin/python3 -m venv --system-site-packages "$home"
"$home/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$nominatim" --version
echo "$want" > "$stamp"
echo "nominatim env ready: $home"
