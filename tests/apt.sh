#!/usr/bin/env bash
# tests/apt.sh COMMAND PACKAGE...: makes sure COMMAND is on the PATH,
# installing the Debian PACKAGEs with apt-get when it is not. The tests that
# run real servers (Prometheus, Mosquitto) call it before they start.
# Exits 0 when COMMAND is there, 77 when it cannot be installed (not root,
# no apt-get, no package index): the calling test is then skipped.
set -u
command=$1
shift
if command -v "$command" > /dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null 2>&1; then
    echo "apt.sh: $command is missing and apt-get cannot install ${*} here" >&2
    exit 77
fi
export DEBIAN_FRONTEND=noninteractive
# Packages' maintainer scripts must not try to start services.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
install() {
    apt-get install -qq -y --no-install-recommends "$@" >&2
}
if ! install "$@"; then
    apt-get update -qq >&2 || exit 77
    install "$@" || exit 77
fi
command -v "$command" > /dev/null 2>&1 || exit 77
