#!/usr/bin/env bash
# Reads a Delta table that Ingot published with readers that know nothing of
# Ingot (Python deltalake and Polars) and prints what they see as JSON:
# read.sh TABLE_URI. For s3:// URIs the AWS_* variables say where and how.
#
# The virtual environment is cached in ~/.cache/ingot-delta-venv and rebuilt
# when requirements.txt changes. Exit status 77: the Python environment could
# not be set up (no venv, pip or package index).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="${INGOT_DELTA_VENV:-$HOME/.cache/ingot-delta-venv}"
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || exit 77
    "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 30 --retries 2 \
        -r "$here/requirements.txt" >&2 || exit 77
    cp "$here/requirements.txt" "$stamp"
fi
exec "$venv/bin/python" "$here/read.py" "$@"
