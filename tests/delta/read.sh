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
. "$here/../venv.sh"
ensure_venv "$venv" "$here/requirements.txt"
exec "$venv/bin/python" "$here/read.py" "$@"
