#!/usr/bin/env bash
# Starts an S3-compatible server (moto) on 127.0.0.1 for Ingot's tests and
# benchmarks: serve.sh PORT BUCKET... prints "ready" once the buckets exist
# and serves until its standard input closes.
#
# The virtual environment is cached in ~/.cache/ingot-s3-venv and rebuilt
# when requirements.txt changes. Exit status 77: the Python environment could
# not be set up (no venv, pip or package index).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="${INGOT_S3_VENV:-$HOME/.cache/ingot-s3-venv}"
. "$here/../venv.sh"
ensure_venv "$venv" "$here/requirements.txt"
exec "$venv/bin/python" "$here/serve.py" "$@"
