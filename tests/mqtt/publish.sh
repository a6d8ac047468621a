#!/usr/bin/env bash
# tests/mqtt/publish.sh PORT TOPIC COUNT: runs publish.py with paho-mqtt in
# ~/.cache/ingot-mqtt-venv (made on first use). Exits 77 when Python or the
# package cannot be set up: the calling test then skips this part.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../venv.sh"
venv="${INGOT_MQTT_VENV:-$HOME/.cache/ingot-mqtt-venv}"
ensure_venv "$venv" "$here/requirements.txt"
exec "$venv/bin/python" "$here/publish.py" "$@"
