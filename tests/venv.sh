# Sourced by the test scripts that run Python (tests/s3/serve.sh,
# tests/delta/read.sh, tests/python/run.sh).
#
# ensure_venv VENV REQUIREMENTS: makes the virtual environment VENV with
# REQUIREMENTS installed, or keeps the one there when it was made from the
# same file. pip's output goes to standard error, so that a script's standard
# output stays its own. Exits 77 when the environment cannot be set up (no
# venv, pip or package index): the callers' tests are then skipped.
ensure_venv() {
    local venv=$1 requirements=$2
    local stamp="$venv/.requirements"
    if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 || exit 77
        "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 30 --retries 2 \
            -r "$requirements" >&2 || exit 77
        cp "$requirements" "$stamp"
    fi
}
