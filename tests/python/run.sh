#!/usr/bin/env bash
# Runs the Python client tests (ADBC Flight SQL, influxdb-client) against a
# running server named by INGOT_GRPC_ADDR, INGOT_HTTP_ADDR and
# INGOT_TEST_TOKEN. The virtual environment is cached in
# ~/.cache/ingot-python-venv and rebuilt when requirements.txt changes.
# Exit status 77: the Python environment could not be set up (no venv, pip
# or package index), so the tests were skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="${INGOT_PYTHON_VENV:-$HOME/.cache/ingot-python-venv}"
. "$here/../venv.sh"
ensure_venv "$venv" "$here/requirements.txt"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_clients.py"
