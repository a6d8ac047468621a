#!/usr/bin/env bash
# tests/postgres/run.sh ARGS...: runs client.py with psycopg in
# ~/.cache/ingot-pg-venv (made on first use). Exits 77 when Python or the
# package cannot be set up: the calling test then skips this part.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../venv.sh"
venv="${INGOT_PG_VENV:-$HOME/.cache/ingot-pg-venv}"
ensure_venv "$venv" "$here/requirements.txt"
exec "$venv/bin/python" "$here/client.py" "$@"
