#!/usr/bin/env bash
# Ingot vs DuckDB, chDB and DataFusion on the plant-telemetry workload: sets up what
# bench/compare.py needs, then runs it with these arguments.
#
#   bench/compare.sh --preset small --json compare.json
#   bench/compare.sh --no-build --preset tiny      # reuse the ingot-bench binary as it is
#
# - a venv at $INGOT_BENCH_VENV (default ~/.cache/ingot-bench-venv), created
#   with `python3 -m venv` and reused, with bench/requirements.txt installed;
# - `cargo build --release -p ingot-bench` with CARGO_TARGET_DIR defaulting to
#   ~/.cache/ingot-target (skipped with --no-build);
# - python bench/compare.py "$@" (see its docstring, or --help).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${INGOT_BENCH_VENV:-$HOME/.cache/ingot-bench-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ingot-target}"

build=1
args=()
for a in "$@"; do
    if [ "$a" = "--no-build" ]; then build=0; else args+=("$a"); fi
done

if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv"; then
        echo "compare.sh: 'python3 -m venv' failed: install Python's venv module" \
             "(Debian: apt-get install python3-venv) or point INGOT_BENCH_VENV at a working venv" >&2
        rm -rf "$venv"
        exit 1
    fi
fi
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

if [ "$build" = 1 ]; then
    echo "compare.sh: cd $repo && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -p ingot-bench" >&2
    (cd "$repo" && cargo build --release -p ingot-bench)
fi

exec "$venv/bin/python" "$here/compare.py" "${args[@]+"${args[@]}"}"
